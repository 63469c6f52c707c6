//! The JetStream feed: a durable pull consumer on the `LEDGER` stream. Each fetched batch
//! goes through the projection's checkpointed `apply` (positions at or below the
//! checkpoint are skipped, so redeliveries change nothing), and a message is acknowledged
//! only once the transaction that applied it has committed; anything past a gap is
//! negatively acknowledged and comes back.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::context::Context;
use async_nats::jetstream::AckKind;
use futures::StreamExt;
use release_pilot_ledger::entry::Entry;

use crate::runner::{Projection, Projector, RunError};

/// A durable pull consumer of the ledger stream.
#[derive(Debug)]
pub struct JetStreamFeed {
    consumer: Consumer<pull::Config>,
}

fn feed_error(error: impl std::fmt::Display) -> RunError {
    RunError::Feed(error.to_string())
}

impl JetStreamFeed {
    /// The durable consumer `name` on `stream`, created when missing; it delivers from
    /// the start and expects explicit acknowledgements.
    pub async fn durable(jetstream: &Context, stream: &str, name: &str) -> Result<Self, RunError> {
        let stream = jetstream.get_stream(stream).await.map_err(feed_error)?;
        let consumer = stream
            .get_or_create_consumer(
                name,
                pull::Config {
                    durable_name: Some(name.to_owned()),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    ack_wait: Duration::from_secs(30),
                    ..Default::default()
                },
            )
            .await
            .map_err(feed_error)?;
        Ok(Self { consumer })
    }

    /// Fetches up to `max` messages and applies them; returns how many entries were
    /// applied (0 when nothing new arrived within `wait`).
    pub async fn apply_next<P: Projection>(
        &self,
        projector: &Projector<P>,
        max: usize,
        wait: Duration,
    ) -> Result<usize, RunError> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(wait)
            .messages()
            .await
            .map_err(feed_error)?;
        let mut messages = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.map_err(feed_error)?;
            let entry: Entry = serde_json::from_slice(&message.payload)
                .map_err(|e| feed_error(format!("a ledger message is not an entry: {e}")))?;
            messages.push((entry, message));
        }
        messages.sort_by_key(|(entry, _)| entry.position);
        let entries: Vec<Entry> = messages.iter().map(|(entry, _)| entry.clone()).collect();
        let applied = projector.apply(&entries).await?;
        let checkpoint = projector.checkpoint().await?;
        for (entry, message) in &messages {
            let ack = if entry.position <= checkpoint {
                message.ack().await
            } else {
                message.ack_with(AckKind::Nak(None)).await
            };
            ack.map_err(feed_error)?;
        }
        Ok(applied)
    }
}
