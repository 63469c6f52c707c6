//! The event store: cqrs-es frameworks over postgres-es for every aggregate, with
//! snapshots, and the mapping of framework errors onto [`LedgerError`].

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework, EventStore as _};
use postgres_es::PostgresEventRepository;
use release_pilot_domain::environment::Environment;
use release_pilot_domain::incident::Incident;
use release_pilot_domain::policy::Policy;
use release_pilot_domain::release::Release;
use release_pilot_domain::requirement::Requirement;
use release_pilot_domain::DomainError;
use sqlx::PgPool;

use crate::error::LedgerError;
use crate::metadata::EventMetadata;

/// The persisted store of one aggregate type.
pub type Store<A> = PersistedEventStore<PostgresEventRepository, A>;
/// The command framework of one aggregate type.
pub type Cqrs<A> = CqrsFramework<A, Store<A>>;

/// Every aggregate's framework and store over one PostgreSQL pool.
pub struct EventStore {
    pool: PgPool,
    snapshot_every: usize,
    /// Releases.
    pub releases: Cqrs<Release>,
    /// Service × environment streams.
    pub environments: Cqrs<Environment>,
    /// Incidents.
    pub incidents: Cqrs<Incident>,
    /// Environment policies.
    pub policies: Cqrs<Policy>,
    /// The requirement catalogue.
    pub requirements: Cqrs<Requirement>,
}

impl EventStore {
    /// Frameworks over `pool`, snapshotting each aggregate every `snapshot_every` events.
    pub fn new(pool: PgPool, snapshot_every: usize) -> Self {
        Self {
            releases: framework(&pool, snapshot_every),
            environments: framework(&pool, snapshot_every),
            incidents: framework(&pool, snapshot_every),
            policies: framework(&pool, snapshot_every),
            requirements: framework(&pool, snapshot_every),
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
        store(&self.pool, self.snapshot_every)
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
}

fn store<A: Aggregate>(pool: &PgPool, snapshot_every: usize) -> Store<A> {
    PersistedEventStore::new_snapshot_store(
        PostgresEventRepository::new(pool.clone()),
        snapshot_every,
    )
}

fn framework<A: Aggregate>(pool: &PgPool, snapshot_every: usize) -> Cqrs<A>
where
    A::Services: Default,
{
    CqrsFramework::new(store(pool, snapshot_every), vec![], A::Services::default())
}

/// Executes `command` on aggregate `id`, recording `metadata` with its events.
pub async fn execute<A>(
    cqrs: &Cqrs<A>,
    id: &str,
    command: A::Command,
    metadata: &EventMetadata,
) -> Result<(), LedgerError>
where
    A: Aggregate<Error = DomainError>,
{
    cqrs.execute_with_metadata(id, command, metadata.to_map())
        .await
        .map_err(map_error)
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
