//! The event store: postgres-es for every aggregate, with snapshots, and the one way
//! commands are executed.
//!
//! [`EventStore::execute`] loads the aggregate, lets it decide, and commits the events
//! through the persisted store — what `CqrsFramework::execute` does, with three
//! differences that matter here:
//! - it returns the events (handlers answer with what was decided: the computed version,
//!   a triggered rollback);
//! - it can require an expected version (optimistic concurrency the caller chooses);
//! - it decides on a *clone* of the loaded state. cqrs-es 0.5 handles on the context's
//!   own aggregate, whose event sink applies the new events to it, and its commit then
//!   applies them again before serialising a snapshot; with an `apply` that is not
//!   idempotent (a stack of rollback targets, a canary stage counter) every snapshot would
//!   be wrong. Deciding on a clone leaves the context as loaded, so the snapshot gets
//!   each event exactly once.

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, EventStore as _};
use postgres_es::PostgresEventRepository;
use release_pilot_domain::DomainError;
use sqlx::PgPool;

use crate::error::LedgerError;
use crate::metadata::EventMetadata;

/// The persisted store of one aggregate type.
pub type Store<A> = PersistedEventStore<PostgresEventRepository, A>;

/// What a command did.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    /// The events it appended (empty when the aggregate decided nothing).
    pub events: Vec<A::Event>,
    /// The aggregate's version afterwards (its last sequence number).
    pub version: usize,
    /// The aggregate's state afterwards.
    pub state: A,
}

/// Every aggregate's persisted store over one PostgreSQL pool.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: PgPool,
    snapshot_every: usize,
}

impl EventStore {
    /// A store over `pool`, snapshotting each aggregate every `snapshot_every` events.
    pub fn new(pool: PgPool, snapshot_every: usize) -> Self {
        Self {
            pool,
            snapshot_every,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A store for loading and committing one aggregate type directly.
    pub fn store<A: Aggregate>(&self) -> Store<A> {
        PersistedEventStore::new_snapshot_store(
            PostgresEventRepository::new(self.pool.clone()),
            self.snapshot_every,
        )
    }

    /// Loads an aggregate's current state and version (0 when it has no events).
    pub async fn load<A>(&self, id: &str) -> Result<(A, usize), LedgerError>
    where
        A: Aggregate<Error = DomainError>,
    {
        let context = self
            .store::<A>()
            .load_aggregate(id)
            .await
            .map_err(map_error)?;
        Ok((context.aggregate, context.current_sequence))
    }

    /// Executes `command` on aggregate `id`, recording `metadata` with its events.
    pub async fn execute<A>(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Executed<A>, LedgerError>
    where
        A: Aggregate<Error = DomainError, Services = ()> + Clone,
    {
        self.execute_expecting(id, command, metadata, None).await
    }

    /// As [`EventStore::execute`], refusing with [`LedgerError::Conflict`] unless the
    /// aggregate is at `expected` version.
    pub async fn execute_expecting<A>(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        expected: Option<usize>,
    ) -> Result<Executed<A>, LedgerError>
    where
        A: Aggregate<Error = DomainError, Services = ()> + Clone,
    {
        let store = self.store::<A>();
        let context = store.load_aggregate(id).await.map_err(map_error)?;
        if expected.is_some_and(|v| v != context.current_sequence) {
            return Err(LedgerError::Conflict);
        }
        let mut state = context.aggregate.clone();
        let sink = EventSink::default();
        state.handle(command, &(), &sink).await?;
        let events = sink.collect().await;
        let version = context.current_sequence + events.len();
        if !events.is_empty() {
            store
                .commit(events.clone(), context, metadata.to_map())
                .await
                .map_err(map_error)?;
        }
        Ok(Executed {
            events,
            version,
            state,
        })
    }
}

/// Classifies a framework error: refusals, conflicts and outages stay distinct.
pub fn map_error(error: AggregateError<DomainError>) -> LedgerError {
    match error {
        AggregateError::UserError(e) => LedgerError::Domain(e),
        AggregateError::AggregateConflict => LedgerError::Conflict,
        AggregateError::DatabaseConnectionError(e) => LedgerError::StoreUnavailable(e.to_string()),
        AggregateError::DeserializationError(e) => LedgerError::Corrupt(e.to_string()),
        AggregateError::UnexpectedError(e) => LedgerError::Corrupt(e.to_string()),
    }
}
