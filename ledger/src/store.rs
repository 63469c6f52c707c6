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
//!
//! The store also keeps recently used aggregates in memory (state, version, snapshot
//! counter), which saves loading them again on the next command:
//! - a command decides on the cached state; if another process appended meanwhile, the
//!   commit conflicts on the event's sequence, the entry is dropped, and the command is
//!   decided once more on freshly loaded state — so nothing is ever committed on stale
//!   state;
//! - a read ([`EventStore::load`]) first asks the database for the aggregate's current
//!   version (one index lookup) and uses the cached state only when it matches.

use std::any::Any;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::{Aggregate, AggregateError, EventStore as _};
use lru::LruCache;
use postgres_es::PostgresEventRepository;
use release_pilot_domain::DomainError;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;

use crate::db::Db;
use crate::error::LedgerError;
use crate::metadata::EventMetadata;

/// The persisted store of one aggregate type.
pub type Store<A> = PersistedEventStore<Repository, A>;

/// The cqrs-es event repository of the backend: postgres-es or sqlite-es over the same
/// `events` and `snapshots` tables.
pub enum Repository {
    /// postgres-es.
    Postgres(PostgresEventRepository),
    /// sqlite-es.
    Sqlite(SqliteEventRepository),
}

impl Repository {
    /// The repository over `db`.
    pub fn new(db: &Db) -> Self {
        match db {
            Db::Postgres(pool) => Self::Postgres(PostgresEventRepository::new(pool.clone())),
            Db::Sqlite(pool) => Self::Sqlite(SqliteEventRepository::new(pool.clone())),
        }
    }
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Postgres(_) => "Repository::Postgres",
            Self::Sqlite(_) => "Repository::Sqlite",
        })
    }
}

/// sqlite-es reports only a primary-key violation as a conflict; the SQLite events table
/// keys events by `global_position` and makes `(aggregate_type, aggregate_id, sequence)`
/// (and a release's service and version) unique, which PostgreSQL reports as a conflict
/// too. Both backends answer a lost race the same way.
fn unique_is_conflict(error: PersistenceError) -> PersistenceError {
    match error {
        PersistenceError::UnknownError(e) if e.to_string().contains("UNIQUE constraint failed") => {
            PersistenceError::OptimisticLockError
        }
        other => other,
    }
}

macro_rules! delegate {
    ($self:ident, |$repo:ident| $body:expr) => {
        match $self {
            Repository::Postgres($repo) => $body,
            Repository::Sqlite($repo) => $body,
        }
    };
}

impl PersistedEventRepository for Repository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        delegate!(self, |repo| repo.get_events::<A>(aggregate_id).await)
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        delegate!(self, |repo| repo
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await)
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        delegate!(self, |repo| repo.get_snapshot::<A>(aggregate_id).await)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        delegate!(self, |repo| repo
            .persist::<A>(events, snapshot_update)
            .await
            .map_err(unique_is_conflict))
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, |repo| repo.stream_events::<A>(aggregate_id).await)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, |repo| repo.stream_all_events::<A>().await)
    }
}

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

/// A cached aggregate: its state, version and snapshot counter.
struct Cached {
    state: Box<dyn Any + Send + Sync>,
    version: usize,
    snapshot: Option<usize>,
}

type Cache = Arc<Mutex<LruCache<(&'static str, String), Cached>>>;

/// How many aggregates the store keeps in memory by default.
pub const DEFAULT_CACHED_AGGREGATES: usize = 10_000;

/// Every aggregate's persisted store over one database.
#[derive(Clone)]
pub struct EventStore {
    db: Db,
    snapshot_every: usize,
    cache: Cache,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("snapshot_every", &self.snapshot_every)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// A store over `pool`, snapshotting each aggregate every `snapshot_every` events and
    /// keeping up to [`DEFAULT_CACHED_AGGREGATES`] aggregates in memory.
    pub fn new(db: impl Into<Db>, snapshot_every: usize) -> Self {
        Self::with_cache(db, snapshot_every, DEFAULT_CACHED_AGGREGATES)
    }

    /// As [`EventStore::new`], keeping up to `cached` aggregates in memory (0 disables the
    /// cache).
    pub fn with_cache(db: impl Into<Db>, snapshot_every: usize, cached: usize) -> Self {
        let capacity = NonZeroUsize::new(cached).unwrap_or(NonZeroUsize::MIN);
        let cache = LruCache::new(capacity);
        let cache = Arc::new(Mutex::new(cache));
        let store = Self {
            db: db.into(),
            snapshot_every,
            cache,
        };
        if cached == 0 {
            store.forget_all();
        }
        store
    }

    fn forget_all(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.resize(NonZeroUsize::MIN);
            cache.clear();
        }
    }

    fn cached<A>(&self, id: &str) -> Option<EventStoreAggregateContext<A>>
    where
        A: Aggregate + Clone + Send + Sync + 'static,
    {
        let mut cache = self.cache.lock().ok()?;
        let entry = cache.get(&(A::TYPE, id.to_owned()))?;
        let state = entry.state.downcast_ref::<A>()?.clone();
        Some(EventStoreAggregateContext {
            aggregate_id: id.to_owned(),
            aggregate: state,
            current_sequence: entry.version,
            current_snapshot: entry.snapshot,
        })
    }

    fn remember<A>(&self, id: &str, state: &A, version: usize, snapshot: Option<usize>)
    where
        A: Aggregate + Clone + Send + Sync + 'static,
    {
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(
                (A::TYPE, id.to_owned()),
                Cached {
                    state: Box::new(state.clone()),
                    version,
                    snapshot,
                },
            );
        }
    }

    fn forget<A: Aggregate>(&self, id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.pop(&(A::TYPE, id.to_owned()));
        }
    }

    /// The aggregate's version in the database (its last sequence, 0 when it has none).
    async fn stored_version<A: Aggregate>(&self, id: &str) -> Result<usize, LedgerError> {
        let version: i64 = crate::on!(&self.db, |pool| {
            sqlx::query_scalar(
                "SELECT COALESCE(max(sequence), 0) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
            )
            .bind(A::TYPE)
            .bind(id)
            .fetch_one(pool)
            .await?
        });
        Ok(usize::try_from(version).unwrap_or(0))
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A store for loading and committing one aggregate type directly.
    pub fn store<A: Aggregate>(&self) -> Store<A> {
        PersistedEventStore::new_snapshot_store(Repository::new(&self.db), self.snapshot_every)
    }

    /// Loads an aggregate's current state and version (0 when it has no events), from
    /// memory when the database confirms the cached version is current.
    pub async fn load<A>(&self, id: &str) -> Result<(A, usize), LedgerError>
    where
        A: Aggregate<Error = DomainError> + Clone + Send + Sync + 'static,
    {
        if let Some(cached) = self.cached::<A>(id) {
            if self.stored_version::<A>(id).await? == cached.current_sequence {
                return Ok((cached.aggregate, cached.current_sequence));
            }
        }
        let context = self
            .store::<A>()
            .load_aggregate(id)
            .await
            .map_err(map_error)?;
        self.remember(
            id,
            &context.aggregate,
            context.current_sequence,
            context.current_snapshot,
        );
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
        A: Aggregate<Error = DomainError, Services = ()> + Clone + Send + Sync + 'static,
        A::Command: Clone,
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
        A: Aggregate<Error = DomainError, Services = ()> + Clone + Send + Sync + 'static,
        A::Command: Clone,
    {
        let store = self.store::<A>();
        let mut from_cache = true;
        loop {
            let context = match self.cached::<A>(id).filter(|_| from_cache) {
                Some(context) => context,
                None => {
                    from_cache = false;
                    store.load_aggregate(id).await.map_err(map_error)?
                }
            };
            if expected.is_some_and(|v| v != context.current_sequence) {
                self.forget::<A>(id);
                return Err(LedgerError::Conflict);
            }
            let mut state = context.aggregate.clone();
            let sink = EventSink::default();
            state.handle(command.clone(), &(), &sink).await?;
            let events = sink.collect().await;
            let before = context.current_sequence;
            let version = before + events.len();
            let snapshot = if self.snapshot_every > 0
                && version / self.snapshot_every > before / self.snapshot_every
            {
                Some(context.current_snapshot.map_or(1, |s| s + 1))
            } else {
                context.current_snapshot
            };
            if !events.is_empty() {
                match store
                    .commit(events.clone(), context, metadata.to_map())
                    .await
                {
                    Ok(_) => {}
                    // The cached state was stale: decide again on what is stored.
                    Err(AggregateError::AggregateConflict) if from_cache => {
                        self.forget::<A>(id);
                        from_cache = false;
                        continue;
                    }
                    Err(error) => {
                        self.forget::<A>(id);
                        return Err(map_error(error));
                    }
                }
            }
            self.remember(id, &state, version, snapshot);
            return Ok(Executed {
                events,
                version,
                state,
            });
        }
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
