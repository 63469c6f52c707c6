//! The sealer: gives every committed event exactly one gap-free ledger position and a
//! link in the hash chain, and signs checkpoints.
//!
//! # Why it cannot skip an event
//!
//! Readers of an auto-increment column skip rows whose transaction commits after a
//! higher id was already read. The sealer instead orders events by
//! `(tx_id, global_position)` — the inserting transaction's id, then insertion order —
//! and reads only rows whose `tx_id` is below `pg_snapshot_xmin(pg_current_snapshot())`,
//! the oldest transaction still running, evaluated in the same statement's snapshot.
//! Every transaction below that horizon has finished: its rows are all visible now, or
//! it aborted and they never will be. A transaction still running has an id at or above
//! the horizon, so its rows sort after everything already sealed. The cursor (the last
//! sealed event's `(tx_id, global_position)`) lives in the ledger table itself, and each
//! batch is one transaction: crash anywhere and the batch never happened.
//!
//! # One active sealer
//!
//! Each batch transaction first takes `pg_try_advisory_xact_lock`. A second sealer that
//! cannot take it waits and retries, so it takes over the moment the first stops. Even
//! without the lock, the ledger's primary key on `position` and unique `global_position`
//! make a second concurrent batch fail rather than fork the chain.
//!
//! # On SQLite
//!
//! SQLite has one writer at a time and each batch runs in a write
//! transaction, which holds that write lock: no other transaction can be between
//! assigning a `global_position` and committing it, so rows become visible in
//! `global_position` order and the cursor is that column alone. The write lock also
//! makes the sealer role exclusive.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::db::{entry_columns, Db, EventRow, Tx};
use crate::entry::{hash_from_slice, Hash, GENESIS};
use crate::error::LedgerError;
use crate::pacing::{pause, Pace};
use crate::signing::{Checkpoint, LedgerKey};

/// The advisory lock key of the sealer role ("RPSEAL").
pub const SEALER_LOCK: i64 = 0x5250_5345_414c;

/// How the sealer batches and checkpoints.
#[derive(Debug, Clone)]
pub struct SealerConfig {
    /// Most events sealed per transaction.
    pub batch_size: i64,
    /// Sign a checkpoint after this many new entries…
    pub checkpoint_every: i64,
    /// …or when this much time passed since the last checkpoint and there are new entries.
    pub checkpoint_interval: Duration,
    /// How long to wait when there is nothing to seal.
    pub poll_interval: Duration,
}

impl Default for SealerConfig {
    fn default() -> Self {
        Self {
            batch_size: 2000,
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(5),
            poll_interval: Duration::from_millis(10),
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealOutcome {
    /// Entries sealed.
    pub sealed: usize,
    /// The last position after the batch.
    pub head: i64,
    /// The checkpoint signed in the batch, if any.
    pub checkpoint: Option<i64>,
}

/// The sealer.
#[derive(Debug, Clone)]
pub struct Sealer {
    db: Db,
    key: LedgerKey,
    config: SealerConfig,
}

struct Cursor {
    position: i64,
    hash: Hash,
    tx_id: String,
    global_position: i64,
}

impl Sealer {
    /// A sealer over `db`, signing with `key`.
    pub fn new(db: impl Into<Db>, key: LedgerKey, config: SealerConfig) -> Self {
        Self {
            db: db.into(),
            key,
            config,
        }
    }

    /// Seals the next batch of committed events. Returns [`LedgerError::Busy`] when
    /// another sealer holds the lock.
    pub async fn seal_batch(&self) -> Result<SealOutcome, LedgerError> {
        if let Some(head) = self.idle().await? {
            return Ok(SealOutcome {
                sealed: 0,
                head,
                checkpoint: None,
            });
        }
        let mut tx = self.db.begin().await?;
        lock(&mut tx, SEALER_LOCK).await?;
        let cursor = cursor(&mut tx).await?;
        let rows: Vec<SealRow> = crate::on_tx!(&mut tx, |conn, lite| {
            let sql = if lite {
                format!(
                    "SELECT e.global_position, {} FROM events e \
                     WHERE e.global_position > $2 \
                     ORDER BY e.global_position LIMIT $3",
                    entry_columns(true)
                )
            } else {
                format!(
                    "SELECT e.global_position, {} FROM events e \
                     WHERE (e.tx_id, e.global_position) > ($1::text::xid8, $2) \
                       AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
                     ORDER BY e.tx_id, e.global_position LIMIT $3",
                    entry_columns(false)
                )
            };
            sqlx::query_as(&sql)
                .bind(&cursor.tx_id)
                .bind(cursor.global_position)
                .bind(self.config.batch_size)
                .fetch_all(&mut *conn)
                .await?
        });
        let sealed = rows.len();
        let mut positions = Vec::with_capacity(sealed);
        let mut globals = Vec::with_capacity(sealed);
        let mut hashes: Vec<Vec<u8>> = Vec::with_capacity(sealed);
        let mut previous = cursor.hash;
        let mut position = cursor.position;
        for row in rows {
            position += 1;
            globals.push(row.global_position);
            let entry = row.event.entry(position)?;
            previous = entry.chain_hash(&previous)?;
            positions.push(position);
            hashes.push(previous.to_vec());
        }
        match &mut tx {
            Tx::Postgres(t) if sealed > 0 => {
                sqlx::query(
                    "INSERT INTO ledger (position, global_position, hash) \
                     SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::bytea[])",
                )
                .bind(&positions)
                .bind(&globals)
                .bind(&hashes)
                .execute(&mut **t)
                .await?;
            }
            Tx::Sqlite(t) => {
                for ((position, global), hash) in positions.iter().zip(&globals).zip(&hashes) {
                    sqlx::query(
                        "INSERT INTO ledger (position, global_position, hash) VALUES ($1, $2, $3)",
                    )
                    .bind(position)
                    .bind(global)
                    .bind(hash)
                    .execute(&mut **t)
                    .await?;
                }
            }
            Tx::Postgres(_) => {}
        }
        let checkpoint = self
            .checkpoint_if_due(&mut tx, position, previous, false)
            .await?;
        tx.commit().await?;
        Ok(SealOutcome {
            sealed,
            head: position,
            checkpoint: checkpoint.map(|c| c.position),
        })
    }

    /// On SQLite, the head when there is nothing to seal and no checkpoint due (a read
    /// that takes no lock), so an idle poll does not queue for the database's one write
    /// lock. On PostgreSQL the batch itself is as cheap, and this is always `None`.
    async fn idle(&self) -> Result<Option<i64>, LedgerError> {
        let Db::Sqlite(pool) = &self.db else {
            return Ok(None);
        };
        let (unsealed, head, checkpointed, signed): (i64, i64, i64, Option<DateTime<Utc>>) =
            sqlx::query_as(
                "SELECT (SELECT count(*) FROM events \
                          WHERE global_position > coalesce((SELECT max(global_position) FROM ledger), 0)), \
                        coalesce((SELECT max(position) FROM ledger), 0), \
                        coalesce((SELECT max(position) FROM ledger_checkpoints), 0), \
                        (SELECT signed_at FROM ledger_checkpoints ORDER BY position DESC LIMIT 1)",
            )
            .fetch_one(pool)
            .await?;
        let idle = unsealed == 0 && !self.due(head, checkpointed, signed, Utc::now());
        Ok(idle.then_some(head))
    }

    /// Whether a checkpoint of `head` is due, the last one being of `last_position` and
    /// signed at `last_signed`.
    fn due(
        &self,
        head: i64,
        last_position: i64,
        last_signed: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        let interval = chrono::Duration::from_std(self.config.checkpoint_interval)
            .unwrap_or(chrono::Duration::MAX);
        head > last_position
            && (head - last_position >= self.config.checkpoint_every
                || last_signed.is_none_or(|signed| now - signed >= interval))
    }

    /// Signs a checkpoint of the current head now, unless it is already checkpointed.
    pub async fn checkpoint_now(&self) -> Result<Option<Checkpoint>, LedgerError> {
        let mut tx = self.db.begin().await?;
        lock(&mut tx, SEALER_LOCK).await?;
        let cursor = cursor(&mut tx).await?;
        let checkpoint = self
            .checkpoint_if_due(&mut tx, cursor.position, cursor.hash, true)
            .await?;
        tx.commit().await?;
        Ok(checkpoint)
    }

    async fn checkpoint_if_due(
        &self,
        tx: &mut Tx,
        head: i64,
        hash: Hash,
        force: bool,
    ) -> Result<Option<Checkpoint>, LedgerError> {
        let last: Option<(i64, DateTime<Utc>)> = crate::on_tx!(tx, |conn| {
            sqlx::query_as(
                "SELECT position, signed_at FROM ledger_checkpoints ORDER BY position DESC LIMIT 1",
            )
            .fetch_optional(&mut *conn)
            .await?
        });
        let (last_position, last_signed) = match last {
            Some((position, signed)) => (position, Some(signed)),
            None => (0, None),
        };
        if head <= last_position {
            return Ok(None);
        }
        let now = Utc::now();
        if !force && !self.due(head, last_position, last_signed, now) {
            return Ok(None);
        }
        let checkpoint = self.key.sign(head, hash, now);
        crate::on_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO ledger_checkpoints (position, hash, signed_at, key_id, signature) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(checkpoint.position)
            .bind(checkpoint.hash.to_vec())
            .bind(checkpoint.signed_at)
            .bind(&checkpoint.key_id)
            .bind(checkpoint.signature.to_vec())
            .execute(&mut *conn)
            .await?;
        });
        Ok(Some(checkpoint))
    }

    /// Seals until `shutdown` turns true: back to back while there is work, polling when
    /// idle, backing off on errors (logged) and while another sealer is active. On
    /// shutdown it signs a final checkpoint of everything it sealed.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut pace = Pace::new("sealer", self.config.poll_interval, self.config.batch_size);
        loop {
            if *shutdown.borrow() {
                match self.checkpoint_now().await {
                    Ok(_) | Err(LedgerError::Busy) => {}
                    Err(error) => tracing::warn!(%error, "final checkpoint failed"),
                }
                return;
            }
            let result = self.seal_batch().await.map(|outcome| outcome.sealed);
            pause(pace.after(&result), &mut shutdown).await;
        }
    }
}

/// Takes a transaction-scoped advisory lock or reports [`LedgerError::Busy`]. On SQLite
/// the write transaction already holds the database's one write lock.
pub(crate) async fn lock(tx: &mut Tx, key: i64) -> Result<(), LedgerError> {
    let Tx::Postgres(tx) = tx else {
        return Ok(());
    };
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(key)
        .fetch_one(&mut **tx)
        .await?;
    if locked {
        Ok(())
    } else {
        Err(LedgerError::Busy)
    }
}

/// An event row the sealer reads.
#[derive(sqlx::FromRow)]
struct SealRow {
    global_position: i64,
    #[sqlx(flatten)]
    event: EventRow,
}

async fn cursor(tx: &mut Tx) -> Result<Cursor, LedgerError> {
    let row: Option<(i64, Vec<u8>, String, i64)> = crate::on_tx!(tx, |conn, lite| {
        let sql = if lite {
            "SELECT position, hash, '0' AS tx_id, global_position \
             FROM ledger ORDER BY position DESC LIMIT 1"
        } else {
            "SELECT l.position, l.hash, e.tx_id::text AS tx_id, e.global_position \
             FROM ledger l JOIN events e ON e.global_position = l.global_position \
             ORDER BY l.position DESC LIMIT 1"
        };
        sqlx::query_as(sql).fetch_optional(&mut *conn).await?
    });
    match row {
        Some((position, hash, tx_id, global_position)) => Ok(Cursor {
            position,
            hash: hash_from_slice(&hash)?,
            tx_id,
            global_position,
        }),
        None => Ok(Cursor {
            position: 0,
            hash: GENESIS,
            tx_id: "0".to_owned(),
            global_position: 0,
        }),
    }
}
