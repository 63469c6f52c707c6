//! The ledger layer's errors, classified so callers can tell a refusal from an outage.

use release_pilot_domain::DomainError;

/// Errors of the ledger layer.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The domain refused the command.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Another command changed the aggregate first (optimistic concurrency); retry.
    #[error("the aggregate was changed concurrently; reload and retry")]
    Conflict,
    /// PostgreSQL is unreachable or failed.
    #[error("database unavailable: {0}")]
    Database(#[from] sqlx::Error),
    /// The event store could not reach the database.
    #[error("event store unavailable: {0}")]
    StoreUnavailable(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// NATS JetStream is unreachable or refused a publish.
    #[error("nats: {0}")]
    Nats(String),
    /// Stored data does not have the shape the ledger writes.
    #[error("corrupt ledger data: {0}")]
    Corrupt(String),
    /// A signing key could not be read, parsed or written.
    #[error("signing key: {0}")]
    Key(String),
    /// Another instance holds the lock for this role.
    #[error("another instance is active")]
    Busy,
}

impl LedgerError {
    /// Whether waiting and retrying may succeed (outages, conflicts, a busy lock).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Conflict
                | Self::Database(_)
                | Self::StoreUnavailable(_)
                | Self::Nats(_)
                | Self::Busy
        )
    }
}
