//! Running one projection: batches of entries, each batch one transaction that also moves
//! the checkpoint.

use std::future::Future;
use std::time::Duration;

use release_pilot_ledger::db::entries_after;
use release_pilot_ledger::entry::Entry;
use release_pilot_ledger::LedgerError;
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::watch;

/// Why a projection could not apply an entry.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The entry cannot be applied, now or later: the projection stops here.
    #[error("cannot apply: {0}")]
    Poison(String),
    /// The database failed; the batch is retried.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Why a batch did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The projection is stopped at `position` by an entry it cannot apply.
    #[error("projection {projection} stopped at position {position}: {reason}")]
    Stopped {
        /// The projection.
        projection: &'static str,
        /// The entry it cannot apply.
        position: i64,
        /// Why.
        reason: String,
    },
    /// Another projector instance holds this projection right now.
    #[error("another instance is applying this projection")]
    Busy,
    /// PostgreSQL failed; retry.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Reading the ledger failed; retry.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The JetStream feed failed; retry.
    #[error("feed: {0}")]
    Feed(String),
}

/// A read model built from ledger entries.
pub trait Projection: Send + Sync + 'static {
    /// Its name in `projection_checkpoints`.
    fn name(&self) -> &'static str;

    /// Applies one entry inside the batch's transaction.
    fn apply<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        entry: &'a Entry,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a;
}

/// Runs one projection against the ledger.
#[derive(Debug, Clone)]
pub struct Projector<P> {
    pool: PgPool,
    projection: std::sync::Arc<P>,
    batch_size: i64,
}

impl<P: Projection> Projector<P> {
    /// A projector for `projection` over `pool`, in batches of `batch_size` entries.
    pub fn new(pool: PgPool, projection: P, batch_size: i64) -> Self {
        Self {
            pool,
            projection: std::sync::Arc::new(projection),
            batch_size,
        }
    }

    /// The projection's checkpoint (0 before its first batch).
    pub async fn checkpoint(&self) -> Result<i64, sqlx::Error> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
                .bind(self.projection.name())
                .fetch_optional(&self.pool)
                .await?;
        Ok(position.unwrap_or(0))
    }

    /// Applies the next batch from the ledger; returns how many entries it applied.
    pub async fn apply_next(&self) -> Result<usize, RunError> {
        self.batch(None).await
    }

    /// Applies `entries` (in position order) in one transaction, skipping those at or
    /// below the checkpoint — a redelivery changes nothing.
    pub async fn apply(&self, entries: &[Entry]) -> Result<usize, RunError> {
        self.batch(Some(entries)).await
    }

    /// One transaction: take the lease, read the checkpoint, apply what follows it (the
    /// given entries, or the next ones from the ledger), move the checkpoint.
    async fn batch(&self, given: Option<&[Entry]>) -> Result<usize, RunError> {
        let name = self.projection.name();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, position) VALUES ($1, 0) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        // The row lock is the projection's lease: one writer at a time.
        let row = sqlx::query(
            "SELECT position, failed_at_position, failure FROM projection_checkpoints \
             WHERE projection = $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(RunError::Busy)?;
        let checkpoint: i64 = row.try_get("position")?;
        if let Some(position) = row.try_get::<Option<i64>, _>("failed_at_position")? {
            let reason: Option<String> = row.try_get("failure")?;
            return Err(RunError::Stopped {
                projection: name,
                position,
                reason: reason.unwrap_or_default(),
            });
        }
        // Entries are read after the lease is taken, from the checkpoint it guards.
        let fetched: Vec<Entry>;
        let entries = match given {
            Some(entries) => entries,
            None => {
                fetched = entries_after(&self.pool, checkpoint, self.batch_size)
                    .await?
                    .into_iter()
                    .map(|(entry, _)| entry)
                    .collect();
                &fetched
            }
        };
        let mut applied = 0;
        let mut last = checkpoint;
        for entry in entries.iter().filter(|e| e.position > checkpoint) {
            if entry.position != last + 1 {
                // A gap means the feed skipped something: never apply past it.
                break;
            }
            match self.projection.apply(&mut tx, entry).await {
                Ok(()) => {
                    last = entry.position;
                    applied += 1;
                }
                Err(ProjectionError::Poison(reason)) => {
                    drop(tx);
                    self.stop_at(entry.position, &reason).await?;
                    tracing::error!(projection = name, position = entry.position, %reason, "projection stopped");
                    return Err(RunError::Stopped {
                        projection: name,
                        position: entry.position,
                        reason,
                    });
                }
                Err(ProjectionError::Database(e)) => return Err(e.into()),
            }
        }
        if applied > 0 {
            sqlx::query(
                "UPDATE projection_checkpoints SET position = $2, updated_at = clock_timestamp() WHERE projection = $1",
            )
            .bind(name)
            .bind(last)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn stop_at(&self, position: i64, reason: &str) -> Result<(), sqlx::Error> {
        // An upsert: the batch that created the checkpoint row may be the one rolled back.
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, position, failed_at_position, failure) \
             VALUES ($1, 0, $2, $3) ON CONFLICT (projection) DO UPDATE \
             SET failed_at_position = $2, failure = $3, updated_at = clock_timestamp()",
        )
        .bind(self.projection.name())
        .bind(position)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Applies batches until `shutdown` turns true; stops for good when an entry cannot
    /// be applied, retries (with back-off) when PostgreSQL fails.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, poll: Duration) {
        let mut backoff = poll;
        while !*shutdown.borrow() {
            let wait = match self.apply_next().await {
                Ok(n) if i64::try_from(n).unwrap_or(0) >= self.batch_size => {
                    backoff = poll;
                    Duration::ZERO
                }
                Ok(_) => {
                    backoff = poll;
                    poll
                }
                Err(RunError::Stopped { .. }) => return,
                Err(RunError::Busy) => Duration::from_millis(500),
                Err(error) => {
                    tracing::warn!(projection = self.projection.name(), %error, "projection batch failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}
