//! Running one projection: batches of entries, each batch one transaction that also moves
//! the checkpoint.

use std::future::Future;
use std::time::Duration;

use release_pilot_ledger::db::entries_after;
use release_pilot_ledger::db::{Db, Tx};
use release_pilot_ledger::entry::Entry;
use release_pilot_ledger::LedgerError;
use release_pilot_ledger::{on, on_tx};
use tokio::sync::watch;

use crate::metrics::ProjectorMetrics;

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
    /// A replay did not reach the ledger's head, so nothing was swapped in.
    #[error("the rebuild reached position {rebuilt} of {head}; the live tables are unchanged")]
    Incomplete {
        /// How far the rebuild got.
        rebuilt: i64,
        /// The head when the replay started.
        head: i64,
    },
}

/// A read model built from ledger entries.
pub trait Projection: Send + Sync + 'static {
    /// Its name in `projection_checkpoints`.
    fn name(&self) -> &'static str;

    /// The tables it owns and nothing else writes (a replay rebuilds and swaps them).
    fn tables(&self) -> &'static [&'static str];

    /// Applies one entry inside the batch's transaction.
    fn apply<'a>(
        &'a self,
        tx: &'a mut Tx,
        entry: &'a Entry,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a;

    /// Applies consecutive entries inside the batch's transaction: one at a time unless
    /// the projection writes a batch with fewer statements. Whatever it does must leave
    /// the same rows as applying them one by one (the rebuild tests compare).
    fn apply_batch<'a>(
        &'a self,
        tx: &'a mut Tx,
        entries: &'a [Entry],
    ) -> impl Future<Output = Result<(), BatchError>> + Send + 'a {
        async move {
            for entry in entries {
                self.apply(&mut *tx, entry)
                    .await
                    .map_err(|error| BatchError::at(entry, error))?;
            }
            Ok(())
        }
    }
}

/// An entry of a batch that could not be applied.
#[derive(Debug)]
pub struct BatchError {
    /// Its position.
    pub position: i64,
    /// Why.
    pub error: ProjectionError,
}

impl BatchError {
    /// `error` while applying `entry`.
    pub fn at(entry: &Entry, error: ProjectionError) -> Self {
        Self {
            position: entry.position,
            error,
        }
    }
}

/// Runs one projection against the ledger.
#[derive(Debug, Clone)]
pub struct Projector<P> {
    db: Db,
    projection: std::sync::Arc<P>,
    batch_size: i64,
    metrics: ProjectorMetrics,
}

impl<P: Projection> Projector<P> {
    /// A projector for `projection` over `db`, in batches of `batch_size` entries.
    pub fn new(db: impl Into<Db>, projection: P, batch_size: i64) -> Self {
        Self {
            db: db.into(),
            projection: std::sync::Arc::new(projection),
            batch_size,
            metrics: ProjectorMetrics::default(),
        }
    }

    /// Records into `metrics` (shared by every projection of a process).
    pub fn with_metrics(mut self, metrics: ProjectorMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The projection applied.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The projection's checkpoint (0 before its first batch).
    pub async fn checkpoint(&self) -> Result<i64, sqlx::Error> {
        let position: Option<i64> = on!(&self.db, |pool| {
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
                .bind(self.projection.name())
                .fetch_optional(pool)
                .await?
        });
        Ok(position.unwrap_or(0))
    }

    /// Applies the next batch from the ledger; returns how many entries it applied.
    pub async fn apply_next(&self) -> Result<usize, RunError> {
        self.measured(None).await
    }

    /// Applies `entries` (in position order) in one transaction, skipping those at or
    /// below the checkpoint — a redelivery changes nothing.
    pub async fn apply(&self, entries: &[Entry]) -> Result<usize, RunError> {
        self.measured(Some(entries)).await
    }

    async fn measured(&self, given: Option<&[Entry]>) -> Result<usize, RunError> {
        let started = std::time::Instant::now();
        let result = self.batch(given).await;
        let name = self.projection.name();
        match &result {
            Ok(applied) => {
                self.metrics
                    .batch(name, *applied, started.elapsed().as_secs_f64());
                self.metrics.stopped(name, false);
            }
            Err(RunError::Stopped { .. }) => self.metrics.stopped(name, true),
            Err(_) => {}
        }
        result
    }

    /// Measures how far behind the ledger the projection is: entries sealed and not yet
    /// applied, and how long the oldest of them has waited. Returns the positions.
    pub async fn measure_lag(&self) -> Result<i64, sqlx::Error> {
        let checkpoint = self.checkpoint().await?;
        let (head, waited): (Option<i64>, Option<f64>) = on!(&self.db, |pool, lite| {
            let waited = if lite {
                "(julianday('now') - julianday(sealed_at)) * 86400.0"
            } else {
                "extract(epoch FROM clock_timestamp() - sealed_at)::float8"
            };
            sqlx::query_as(&format!(
                "SELECT (SELECT max(position) FROM ledger), \
                        (SELECT {waited} FROM ledger WHERE position = $1 + 1)"
            ))
            .bind(checkpoint)
            .fetch_one(pool)
            .await?
        });
        let behind = (head.unwrap_or(0) - checkpoint).max(0);
        self.metrics.lag(
            self.projection.name(),
            behind,
            waited.unwrap_or(0.0).max(0.0),
        );
        Ok(behind)
    }

    /// One transaction: take the lease, read the checkpoint, apply what follows it (the
    /// given entries, or the next ones from the ledger), move the checkpoint.
    async fn batch(&self, given: Option<&[Entry]>) -> Result<usize, RunError> {
        let name = self.projection.name();
        if given.is_none() && self.caught_up().await? {
            return Ok(0);
        }
        let mut tx = self.db.begin().await?;
        // The row lock is the projection's lease: one writer at a time. On SQLite the
        // write transaction holds the database's write lock already.
        let row: Option<(i64, Option<i64>, Option<String>)> = on_tx!(&mut tx, |conn, lite| {
            sqlx::query(
                "INSERT INTO projection_checkpoints (projection, position) VALUES ($1, 0) ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .execute(&mut *conn)
            .await?;
            let lease = if lite { "" } else { " FOR UPDATE SKIP LOCKED" };
            sqlx::query_as(&format!(
                "SELECT position, failed_at_position, failure FROM projection_checkpoints \
                 WHERE projection = $1{lease}"
            ))
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
        });
        let (checkpoint, failed_at, failure) = row.ok_or(RunError::Busy)?;
        if let Some(position) = failed_at {
            return Err(RunError::Stopped {
                projection: name,
                position,
                reason: failure.unwrap_or_default(),
            });
        }
        // Entries are read after the lease is taken, from the checkpoint it guards.
        let fetched: Vec<Entry>;
        let entries = match given {
            Some(entries) => entries,
            None => {
                fetched = entries_after(&self.db, checkpoint, self.batch_size)
                    .await?
                    .into_iter()
                    .map(|(entry, _)| entry)
                    .collect();
                &fetched
            }
        };
        // The entries after the checkpoint, up to the first gap (a gap means the feed
        // skipped something: never apply past it).
        let start = entries
            .iter()
            .position(|e| e.position > checkpoint)
            .unwrap_or(entries.len());
        let mut end = start;
        while end < entries.len() && entries[end].position == checkpoint + 1 + (end - start) as i64
        {
            end += 1;
        }
        let run = &entries[start..end];
        // Each entry's apply continues the trace of the command that recorded it; the
        // span covers the batch it is applied in.
        let spans: Vec<tracing::Span> = run
            .iter()
            .filter_map(|entry| {
                let traceparent = entry.meta("traceparent")?;
                let span = tracing::info_span!(
                    "projection.apply",
                    projection = name,
                    position = entry.position
                );
                release_pilot_ledger::telemetry::continue_trace(&span, Some(&traceparent));
                Some(span)
            })
            .collect();
        let outcome = self.projection.apply_batch(&mut tx, run).await;
        drop(spans);
        match outcome {
            Ok(()) => {}
            Err(BatchError {
                position,
                error: ProjectionError::Poison(reason),
            }) => {
                drop(tx);
                self.stop_at(position, &reason).await?;
                tracing::error!(projection = name, position, %reason, "projection stopped");
                return Err(RunError::Stopped {
                    projection: name,
                    position,
                    reason,
                });
            }
            Err(BatchError {
                error: ProjectionError::Database(e),
                ..
            }) => return Err(e.into()),
        }
        let applied = run.len();
        let last = run.last().map_or(checkpoint, |e| e.position);
        if applied > 0 {
            on_tx!(&mut tx, |conn| {
                sqlx::query(
                    "UPDATE projection_checkpoints SET position = $2, updated_at = $3 WHERE projection = $1",
                )
                .bind(name)
                .bind(last)
                .bind(chrono::Utc::now())
                .execute(&mut *conn)
                .await?;
            });
        }
        tx.commit().await?;
        Ok(applied)
    }

    /// On SQLite, whether the projection already stands at the ledger's head (a read
    /// that takes no lock), so an idle poll does not queue for the database's one write
    /// lock. On PostgreSQL the batch itself is as cheap, and this is always false.
    async fn caught_up(&self) -> Result<bool, sqlx::Error> {
        let Db::Sqlite(pool) = &self.db else {
            return Ok(false);
        };
        let (checkpoint, head, failed): (Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT position FROM projection_checkpoints WHERE projection = $1), \
                    (SELECT max(position) FROM ledger), \
                    (SELECT failed_at_position FROM projection_checkpoints WHERE projection = $1)",
        )
        .bind(self.projection.name())
        .fetch_one(pool)
        .await?;
        Ok(failed.is_none() && checkpoint.is_some() && checkpoint >= head.or(Some(0)))
    }

    async fn stop_at(&self, position: i64, reason: &str) -> Result<(), sqlx::Error> {
        // An upsert: the batch that created the checkpoint row may be the one rolled back.
        on!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO projection_checkpoints (projection, position, failed_at_position, failure) \
                 VALUES ($1, 0, $2, $3) ON CONFLICT (projection) DO UPDATE \
                 SET failed_at_position = $2, failure = $3, updated_at = $4",
            )
            .bind(self.projection.name())
            .bind(position)
            .bind(reason)
            .bind(chrono::Utc::now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Applies batches until `shutdown` turns true; stops for good when an entry cannot
    /// be applied, retries (with back-off) when PostgreSQL fails.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, poll: Duration) {
        let mut backoff = poll;
        let mut measured: Option<std::time::Instant> = None;
        while !*shutdown.borrow() {
            if measured.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                measured = Some(std::time::Instant::now());
                if let Err(error) = self.measure_lag().await {
                    tracing::debug!(projection = self.projection.name(), %error, "lag not measured");
                }
            }
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

/// What every projection reads from an entry, with failures reported as poison.
pub trait EntryExt {
    /// The payload decoded as the aggregate's event type.
    fn event<E: serde::de::DeserializeOwned>(&self) -> Result<E, ProjectionError>;
    /// When the ledger recorded the entry.
    fn recorded(&self) -> Result<chrono::DateTime<chrono::Utc>, ProjectionError>;
    /// A text field of the metadata (`actor`, `command`, …).
    fn meta(&self, key: &str) -> Option<String>;
    /// The aggregate id as a UUID.
    fn aggregate_uuid(&self) -> Result<uuid::Uuid, ProjectionError>;
    /// A poison error naming this entry.
    fn poison(&self, what: impl std::fmt::Display) -> ProjectionError;
}

impl EntryExt for Entry {
    fn event<E: serde::de::DeserializeOwned>(&self) -> Result<E, ProjectionError> {
        serde_json::from_value(self.payload.clone())
            .map_err(|e| self.poison(format_args!("does not decode: {e}")))
    }

    fn recorded(&self) -> Result<chrono::DateTime<chrono::Utc>, ProjectionError> {
        chrono::DateTime::parse_from_rfc3339(&self.recorded_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| self.poison(format_args!("recorded_at {:?}: {e}", self.recorded_at)))
    }

    fn meta(&self, key: &str) -> Option<String> {
        self.metadata
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }

    fn aggregate_uuid(&self) -> Result<uuid::Uuid, ProjectionError> {
        uuid::Uuid::parse_str(&self.aggregate_id)
            .map_err(|e| self.poison(format_args!("aggregate id {:?}: {e}", self.aggregate_id)))
    }

    fn poison(&self, what: impl std::fmt::Display) -> ProjectionError {
        ProjectionError::Poison(format!("{} at {}: {what}", self.event_type, self.position))
    }
}

/// An enum's serde name (`"blue_green"`, `"production"`), as stored in read models.
pub fn label<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
