//! PostgreSQL connections, migrations, and reading event rows as ledger entries.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

use crate::entry::{format_recorded_at, hash_from_slice, Entry, Hash};
use crate::error::LedgerError;

/// The PostgreSQL migrations, embedded at build time from `migrations/postgres/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// Opens a pool to `url`, failing fast when the database cannot be reached.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, LedgerError> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await?)
}

/// Applies every migration not yet applied.
pub async fn migrate(pool: &PgPool) -> Result<(), LedgerError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The columns that make an entry, for `SELECT`s that alias `events` as `e`.
pub(crate) const ENTRY_COLUMNS: &str = "e.aggregate_type, e.aggregate_id, e.sequence, \
     e.event_type, e.event_version, e.payload::text AS payload, e.metadata::text AS metadata, \
     e.recorded_at";

/// Builds the entry at `position` from a row selected with [`ENTRY_COLUMNS`].
pub(crate) fn entry_from_row(position: i64, row: &PgRow) -> Result<Entry, LedgerError> {
    let json = |column: &str| -> Result<serde_json::Value, LedgerError> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|e| {
            LedgerError::Corrupt(format!("position {position}: {column} is not JSON: {e}"))
        })
    };
    let recorded_at: DateTime<Utc> = row.try_get("recorded_at")?;
    Ok(Entry {
        position,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: json("payload")?,
        metadata: json("metadata")?,
        recorded_at: format_recorded_at(recorded_at),
    })
}

/// The last sealed position and its hash (`(0, GENESIS)` for an empty ledger).
pub async fn head(pool: &PgPool) -> Result<(i64, Hash), LedgerError> {
    let row = sqlx::query("SELECT position, hash FROM ledger ORDER BY position DESC LIMIT 1")
        .fetch_optional(pool)
        .await?;
    match row {
        Some(row) => Ok((
            row.try_get("position")?,
            hash_from_slice(row.try_get("hash")?)?,
        )),
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
    pool: &PgPool,
    position: i64,
    limit: i64,
) -> Result<Vec<(Entry, Hash)>, LedgerError> {
    let sql = format!(
        "SELECT l.position, l.hash, {ENTRY_COLUMNS} \
         FROM ledger l JOIN events e ON e.global_position = l.global_position \
         WHERE l.position > $1 AND l.position <= $1 + $2 ORDER BY l.position"
    );
    let rows = sqlx::query(&sql)
        .bind(position)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in &rows {
        let position: i64 = row.try_get("position")?;
        let hash = hash_from_slice(row.try_get("hash")?)?;
        entries.push((entry_from_row(position, row)?, hash));
    }
    Ok(entries)
}
