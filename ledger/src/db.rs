//! The database behind the ledger and the read models — PostgreSQL, or SQLite for the
//! embedded default — connections, migrations, and reading event rows as ledger entries.
//!
//! Code that runs SQL holds a [`Db`] and writes each statement once inside [`on!`]; the
//! macro compiles the body for each backend's pool. Where the dialects differ, the body
//! picks its SQL by the backend flag `on!` also gives it.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

use crate::entry::{format_recorded_at, hash_from_slice, Entry, Hash};
use crate::error::LedgerError;

/// The PostgreSQL migrations, embedded at build time from `migrations/postgres/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// The SQLite migrations, embedded at build time from `migrations/sqlite/`.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// The database: a PostgreSQL pool (production) or a SQLite pool (embedded).
#[derive(Debug, Clone)]
pub enum Db {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite, in one file (WAL mode).
    Sqlite(SqlitePool),
}

/// A write transaction on either backend. On SQLite it takes the single write lock with
/// its first statement (as `BEGIN IMMEDIATE` does), so a transaction that reads and then
/// writes never fails to upgrade.
#[derive(Debug)]
pub enum Tx {
    /// PostgreSQL.
    Postgres(sqlx::Transaction<'static, Postgres>),
    /// SQLite.
    Sqlite(sqlx::Transaction<'static, Sqlite>),
}

/// Runs `body` with `$pool` bound to the backend's pool (`&PgPool` or `&SqlitePool`);
/// the second form also binds `$lite` to `true` on SQLite, to pick dialect-specific SQL.
#[macro_export]
macro_rules! on {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::Sqlite($pool) => $body,
        }
    };
    ($db:expr, |$pool:ident, $lite:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => {
                let $lite = false;
                $body
            }
            $crate::db::Db::Sqlite($pool) => {
                let $lite = true;
                $body
            }
        }
    };
}

/// As [`on!`] for a [`Tx`]: binds `$conn` to the transaction's connection
/// (`&mut PgConnection` or `&mut SqliteConnection`).
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::db::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
    ($tx:expr, |$conn:ident, $lite:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Postgres(t) => {
                let $conn = &mut **t;
                let $lite = false;
                $body
            }
            $crate::db::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                let $lite = true;
                $body
            }
        }
    };
}

impl From<PgPool> for Db {
    fn from(pool: PgPool) -> Self {
        Self::Postgres(pool)
    }
}

impl From<&PgPool> for Db {
    fn from(pool: &PgPool) -> Self {
        Self::Postgres(pool.clone())
    }
}

impl From<&Db> for Db {
    fn from(db: &Db) -> Self {
        db.clone()
    }
}

impl From<SqlitePool> for Db {
    fn from(pool: SqlitePool) -> Self {
        Self::Sqlite(pool)
    }
}

impl Db {
    /// Opens `url`: `postgres://…` (or `postgresql://…`) or `sqlite://PATH`, failing fast
    /// when the database cannot be reached.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, LedgerError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            return Self::open_sqlite(Path::new(path), max_connections).await;
        }
        Ok(Self::Postgres(
            PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await?,
        ))
    }

    /// Opens (creating it if needed) the SQLite database file at `path`, in WAL mode so
    /// readers never wait for the writer, with foreign keys enforced.
    pub async fn open_sqlite(path: &Path, max_connections: u32) -> Result<Self, LedgerError> {
        if let Some(directory) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(directory).map_err(|e| {
                LedgerError::Database(sqlx::Error::Configuration(
                    format!("cannot create {}: {e}", directory.display()).into(),
                ))
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        Ok(Self::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(max_connections.max(2))
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?,
        ))
    }

    /// The backend's name: `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }

    /// Whether this is the embedded SQLite backend.
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }

    /// The PostgreSQL pool, when this is PostgreSQL.
    pub fn postgres(&self) -> Option<&PgPool> {
        match self {
            Self::Postgres(pool) => Some(pool),
            Self::Sqlite(_) => None,
        }
    }

    /// Connections open in the pool.
    pub fn size(&self) -> u32 {
        on!(self, |pool| pool.size())
    }

    /// Idle connections in the pool.
    pub fn num_idle(&self) -> usize {
        on!(self, |pool| pool.num_idle())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on!(self, |pool| pool.close().await)
    }

    /// Begins a write transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self {
            Self::Postgres(pool) => Ok(Tx::Postgres(pool.begin().await?)),
            Self::Sqlite(pool) => {
                // A plain BEGIN makes the `Transaction` (rolled back if dropped) before
                // anything else; the first statement then takes the write lock, as BEGIN
                // IMMEDIATE would, without the moment where a cancelled `begin_with`
                // leaves an unowned transaction holding the lock.
                let mut tx = pool.begin().await?;
                sqlx::query("UPDATE write_lock SET held = held WHERE 0")
                    .execute(&mut *tx)
                    .await?;
                Ok(Tx::Sqlite(tx))
            }
        }
    }
}

impl Tx {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(tx) => tx.commit().await,
            Self::Sqlite(tx) => tx.commit().await,
        }
    }

    /// Whether this is a SQLite transaction.
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }
}

/// Opens a pool to `url` (see [`Db::connect`]).
pub async fn connect(url: &str, max_connections: u32) -> Result<Db, LedgerError> {
    Db::connect(url, max_connections).await
}

/// Applies every migration not yet applied, from the backend's own directory.
pub async fn migrate(db: &Db) -> Result<(), LedgerError> {
    match db {
        Db::Postgres(pool) => MIGRATOR.run(pool).await?,
        Db::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await?,
    }
    Ok(())
}

/// The columns that make an entry, for `SELECT`s that alias `events` as `e` (PostgreSQL
/// keeps `json` columns, SQLite text, so both are read as text).
pub(crate) fn entry_columns(lite: bool) -> &'static str {
    if lite {
        "e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, \
         e.payload, e.metadata, e.recorded_at"
    } else {
        "e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, \
         e.payload::text AS payload, e.metadata::text AS metadata, e.recorded_at"
    }
}

/// An event row as [`entry_columns`] selects it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EventRow {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
    pub metadata: String,
    pub recorded_at: DateTime<Utc>,
}

impl EventRow {
    /// The entry at `position`.
    pub(crate) fn entry(self, position: i64) -> Result<Entry, LedgerError> {
        let json = |column: &str, text: &str| -> Result<serde_json::Value, LedgerError> {
            serde_json::from_str(text).map_err(|e| {
                LedgerError::Corrupt(format!("position {position}: {column} is not JSON: {e}"))
            })
        };
        Ok(Entry {
            position,
            payload: json("payload", &self.payload)?,
            metadata: json("metadata", &self.metadata)?,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence: self.sequence,
            event_type: self.event_type,
            event_version: self.event_version,
            recorded_at: format_recorded_at(self.recorded_at),
        })
    }
}

/// A sealed entry: its position and hash, and the event.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SealedRow {
    pub position: i64,
    pub hash: Vec<u8>,
    #[sqlx(flatten)]
    pub event: EventRow,
}

/// The last sealed position and its hash (`(0, GENESIS)` for an empty ledger).
pub async fn head(db: &Db) -> Result<(i64, Hash), LedgerError> {
    let row: Option<(i64, Vec<u8>)> = on!(db, |pool| {
        sqlx::query_as("SELECT position, hash FROM ledger ORDER BY position DESC LIMIT 1")
            .fetch_optional(pool)
            .await?
    });
    match row {
        Some((position, hash)) => Ok((position, hash_from_slice(&hash)?)),
        None => Ok((0, crate::entry::GENESIS)),
    }
}

/// Sealed entries after `position`, in order, with their stored hashes.
///
/// Positions are gap-free, so the batch is the position range `(position, position +
/// limit]`: a bounded range the planner answers with index lookups however large the
/// ledger grows (with only `LIMIT`, a generic plan may hash-join the whole events table
/// for every batch).
pub async fn entries_after(
    db: &Db,
    position: i64,
    limit: i64,
) -> Result<Vec<(Entry, Hash)>, LedgerError> {
    let rows: Vec<SealedRow> = on!(db, |pool, lite| {
        let sql = format!(
            "SELECT l.position, l.hash, {} \
             FROM ledger l JOIN events e ON e.global_position = l.global_position \
             WHERE l.position > $1 AND l.position <= $1 + $2 ORDER BY l.position",
            entry_columns(lite)
        );
        sqlx::query_as(&sql)
            .bind(position)
            .bind(limit)
            .fetch_all(pool)
            .await?
    });
    rows.into_iter()
        .map(|row| {
            let hash = hash_from_slice(&row.hash)?;
            Ok((row.event.entry(row.position)?, hash))
        })
        .collect()
}
