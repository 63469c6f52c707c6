//! The audit index: one row per ledger entry (position, time, actor, command, aggregate,
//! event type), so the audit trail can be filtered and paged by position.

use release_pilot_ledger::db::Tx;
use release_pilot_ledger::entry::Entry;

use crate::runner::{BatchError, EntryExt, Projection, ProjectionError};

/// The audit index projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditIndex;

impl Projection for AuditIndex {
    fn name(&self) -> &'static str {
        "audit_index"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_audit_index"]
    }

    async fn apply(&self, tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
        self.apply_batch(tx, std::slice::from_ref(entry))
            .await
            .map_err(|e| e.error)
    }

    /// One multi-row insert for the whole batch.
    async fn apply_batch(&self, tx: &mut Tx, entries: &[Entry]) -> Result<(), BatchError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut positions = Vec::with_capacity(entries.len());
        let mut recorded = Vec::with_capacity(entries.len());
        let mut actors = Vec::with_capacity(entries.len());
        let mut commands = Vec::with_capacity(entries.len());
        let mut types = Vec::with_capacity(entries.len());
        let mut ids = Vec::with_capacity(entries.len());
        let mut events = Vec::with_capacity(entries.len());
        for entry in entries {
            recorded.push(entry.recorded().map_err(|e| BatchError::at(entry, e))?);
            positions.push(entry.position);
            actors.push(entry.meta("actor"));
            commands.push(entry.meta("command"));
            types.push(entry.aggregate_type.as_str());
            ids.push(entry.aggregate_id.as_str());
            events.push(entry.event_type.as_str());
        }
        let result = match tx {
            Tx::Postgres(tx) => sqlx::query(
                "INSERT INTO rm_audit_index (position, recorded_at, actor, command, aggregate_type, aggregate_id, event_type) \
                 SELECT * FROM UNNEST($1::int8[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])",
            )
            .bind(&positions)
            .bind(&recorded)
            .bind(&actors)
            .bind(&commands)
            .bind(&types)
            .bind(&ids)
            .bind(&events)
            .execute(&mut **tx)
            .await
            .map(drop),
            // SQLite has no arrays; its prepared statement is cached, so a row at a time
            // costs little.
            Tx::Sqlite(tx) => {
                let mut result = Ok(());
                for i in 0..positions.len() {
                    result = sqlx::query(
                        "INSERT INTO rm_audit_index (position, recorded_at, actor, command, aggregate_type, aggregate_id, event_type) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(positions[i])
                    .bind(recorded[i])
                    .bind(&actors[i])
                    .bind(&commands[i])
                    .bind(types[i])
                    .bind(ids[i])
                    .bind(events[i])
                    .execute(&mut **tx)
                    .await
                    .map(drop);
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
        };
        result.map_err(|e| BatchError::at(first, e.into()))
    }
}
