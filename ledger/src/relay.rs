//! The relay: publishes sealed ledger entries to NATS JetStream, in order, each once.
//!
//! Each entry becomes one message on `<prefix>.<aggregate_type>.<aggregate_id>` whose
//! body is the entry's canonical JSON (so a subscriber can recompute the chain) and whose
//! headers carry `Nats-Msg-Id` = position, `Ledger-Position`, `Ledger-Hash` and the
//! event's `traceparent`.
//!
//! # Exactly once in effect
//!
//! Before each batch the relay reads the stream's last message and continues after the
//! position it carries: the stream, not a local note, says what was published. Every
//! publish also sets `Nats-Expected-Last-Sequence`, so if one message of a pipelined
//! batch is lost the next is refused instead of leaving a hole, and `Nats-Msg-Id` lets
//! JetStream drop a repeat inside its duplicate window. After the acks the relay stores
//! its checkpoint (for lag reporting). When NATS is down the batch fails, the relay backs
//! off and retries; commands are unaffected because they only touch PostgreSQL.
//!
//! # Decisions
//!
//! Entries that outside tools act on are also published as decisions: a
//! `RollbackTriggered` entry becomes a message on
//! `<decisions prefix>.rollback.<service>.<environment>` in the `DECISIONS` stream, with
//! `Nats-Msg-Id` = `decision-<position>`. The decision is acknowledged before its ledger
//! entry is published, so a crash in between republishes both, and JetStream drops the
//! repeated decision.

use std::time::Duration;

use async_nats::jetstream::context::Context;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, Stream};
use sqlx::{PgPool, Row};
use tokio::sync::watch;

use crate::db::entries_after;
use crate::error::LedgerError;
use crate::pacing::{pause, Pace};
use crate::sealer::lock;

/// The advisory lock key of the relay role ("RPRELAY").
pub const RELAY_LOCK: i64 = 0x0052_5052_454c_4159;

/// Header carrying the ledger position.
pub const POSITION_HEADER: &str = "Ledger-Position";
/// Header carrying the chain hash (hex).
pub const HASH_HEADER: &str = "Ledger-Hash";

/// Where and how the relay publishes.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The relay's name in `relay_checkpoints`.
    pub name: String,
    /// The JetStream stream (`LEDGER`).
    pub stream: String,
    /// The subject prefix (`ledger`): subjects are `<prefix>.<type>.<id>`.
    pub subject_prefix: String,
    /// The JetStream stream for decisions (`DECISIONS`).
    pub decisions_stream: String,
    /// The decision subject prefix (`decisions`): `<prefix>.<kind>.<service>.<environment>`.
    pub decisions_prefix: String,
    /// Most entries per batch.
    pub batch_size: i64,
    /// How long to wait when there is nothing to publish.
    pub poll_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            name: "jetstream".to_owned(),
            stream: "LEDGER".to_owned(),
            subject_prefix: "ledger".to_owned(),
            decisions_stream: "DECISIONS".to_owned(),
            decisions_prefix: "decisions".to_owned(),
            batch_size: 1000,
            poll_interval: Duration::from_millis(10),
        }
    }
}

/// The relay.
#[derive(Debug, Clone)]
pub struct Relay {
    pool: PgPool,
    db: crate::db::Db,
    jetstream: Context,
    config: RelayConfig,
}

fn nats(error: impl std::fmt::Display) -> LedgerError {
    LedgerError::Nats(error.to_string())
}

impl Relay {
    /// A relay from `pool` to `jetstream`.
    pub fn new(pool: PgPool, jetstream: Context, config: RelayConfig) -> Self {
        Self {
            db: pool.clone().into(),
            pool,
            jetstream,
            config,
        }
    }

    /// Creates the ledger and decision streams, or updates their subjects; returns the
    /// ledger stream.
    pub async fn ensure_stream(&self) -> Result<Stream, LedgerError> {
        self.ensure(&self.config.decisions_stream, &self.config.decisions_prefix)
            .await?;
        self.ensure(&self.config.stream, &self.config.subject_prefix)
            .await
    }

    async fn ensure(&self, name: &str, prefix: &str) -> Result<Stream, LedgerError> {
        let config = StreamConfig {
            name: name.to_owned(),
            subjects: vec![format!("{prefix}.>")],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        match self.jetstream.get_stream(name).await {
            Ok(mut stream) => {
                let info = stream.info().await.map_err(nats)?;
                if info.config.subjects != config.subjects {
                    let mut updated = info.config.clone();
                    updated.subjects = config.subjects;
                    self.jetstream.update_stream(updated).await.map_err(nats)?;
                }
                Ok(stream)
            }
            Err(_) => self.jetstream.create_stream(config).await.map_err(nats),
        }
    }

    /// The last position in the stream and its stream sequence (`(0, 0)` when empty).
    async fn stream_head(&self, stream: &mut Stream) -> Result<(i64, u64), LedgerError> {
        let last_sequence = stream.info().await.map_err(nats)?.state.last_sequence;
        if last_sequence == 0 {
            return Ok((0, 0));
        }
        let message = stream.get_raw_message(last_sequence).await.map_err(nats)?;
        let position = message
            .headers
            .get(POSITION_HEADER)
            .and_then(|v| v.as_str().parse::<i64>().ok())
            .ok_or_else(|| {
                LedgerError::Corrupt(format!(
                    "stream {} ends with a message the relay did not write (sequence {last_sequence})",
                    self.config.stream
                ))
            })?;
        Ok((position, last_sequence))
    }

    /// Publishes the next batch; returns how many entries it published.
    pub async fn relay_batch(&self, stream: &mut Stream) -> Result<usize, LedgerError> {
        let mut tx = self.db.begin().await?;
        lock(&mut tx, RELAY_LOCK).await?;
        let crate::db::Tx::Postgres(mut tx) = tx else {
            return Err(LedgerError::Corrupt(
                "the JetStream relay runs on PostgreSQL only".to_owned(),
            ));
        };
        let (published, last_sequence) = self.stream_head(stream).await?;
        let entries = entries_after(&self.db, published, self.config.batch_size).await?;
        if entries.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        // Stream sequence of position p is offset + p for every entry this relay writes.
        let offset = last_sequence as i64 - published;
        let mut acks = Vec::with_capacity(entries.len());
        for (entry, hash) in &entries {
            let subject = format!(
                "{}.{}.{}",
                self.config.subject_prefix, entry.aggregate_type, entry.aggregate_id
            );
            let position = entry.position.to_string();
            let expected = u64::try_from(offset + entry.position - 1).map_err(|_| {
                LedgerError::Corrupt("stream sequences are behind ledger positions".to_owned())
            })?;
            let mut message = PublishMessage::build()
                .payload(entry.canonical()?.into())
                .message_id(&position)
                .expected_last_sequence(expected)
                .header(POSITION_HEADER, position.as_str())
                .header(HASH_HEADER, hex::encode(hash).as_str());
            // The publish continues the command's trace and hands it on to consumers.
            let recorded = entry.metadata.get("traceparent").and_then(|v| v.as_str());
            let span = tracing::info_span!("relay.publish", position = entry.position, %subject);
            crate::telemetry::continue_trace(&span, recorded);
            if let Some(traceparent) =
                crate::telemetry::traceparent(&span).or_else(|| recorded.map(str::to_owned))
            {
                message = message.header("traceparent", traceparent.as_str());
            }
            if let Some((subject, decision)) = self.decision(entry) {
                // Acknowledged before the entry itself, so it is never lost behind it.
                let publish = PublishMessage::build()
                    .payload(decision.to_string().into_bytes().into())
                    .message_id(format!("decision-{}", entry.position));
                self.jetstream
                    .send_publish(subject, publish)
                    .await
                    .map_err(nats)?
                    .await
                    .map_err(nats)?;
            }
            let ack = tracing::Instrument::instrument(
                self.jetstream.send_publish(subject, message),
                span,
            )
            .await
            .map_err(nats)?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(nats)?;
        }
        let last = entries
            .last()
            .map_or(published, |(entry, _)| entry.position);
        sqlx::query(
            "INSERT INTO relay_checkpoints (relay, position) VALUES ($1, $2) \
             ON CONFLICT (relay) DO UPDATE SET position = EXCLUDED.position, updated_at = clock_timestamp()",
        )
        .bind(&self.config.name)
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(entries.len())
    }

    /// The decision an entry carries, if any: its subject and JSON body.
    fn decision(&self, entry: &crate::entry::Entry) -> Option<(String, serde_json::Value)> {
        if entry.aggregate_type != "environment" || entry.event_type != "RollbackTriggered" {
            return None;
        }
        let (service, environment) = entry.aggregate_id.split_once('/')?;
        let triggered = entry.payload.get("RollbackTriggered")?;
        let subject = format!(
            "{}.rollback.{service}.{environment}",
            self.config.decisions_prefix
        );
        let body = serde_json::json!({
            "decision": "rollback",
            "service": service,
            "environment": environment,
            "deployment_id": triggered.get("deployment_id"),
            "evidence": triggered.get("evidence"),
            "target": triggered.get("target"),
            "ledger_position": entry.position,
            "recorded_at": entry.recorded_at,
        });
        Some((subject, body))
    }

    /// The relay's stored checkpoint (0 when it has published nothing).
    pub async fn checkpoint(&self) -> Result<i64, LedgerError> {
        let row = sqlx::query("SELECT position FROM relay_checkpoints WHERE relay = $1")
            .bind(&self.config.name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get("position")?,
            None => 0,
        })
    }

    /// Relays until `shutdown` turns true, backing off while NATS or PostgreSQL is down.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut pace = Pace::new("relay", self.config.poll_interval, self.config.batch_size);
        let mut stream: Option<Stream> = None;
        while !*shutdown.borrow() {
            let result = match stream.as_mut() {
                Some(stream) => self.relay_batch(stream).await,
                None => self.ensure_stream().await.map(|created| {
                    stream = Some(created);
                    usize::MAX
                }),
            };
            if matches!(result, Err(LedgerError::Nats(_))) {
                // Look the stream up again after NATS comes back.
                stream = None;
            }
            pause(pace.after(&result), &mut shutdown).await;
        }
    }
}
