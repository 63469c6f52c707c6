//! The audit index: one row per ledger entry (position, time, actor, command, aggregate,
//! event type), so the audit trail can be filtered and paged by position.

use chrono::{DateTime, Utc};
use release_pilot_ledger::entry::Entry;
use sqlx::PgConnection;

use crate::runner::{Projection, ProjectionError};

/// The audit index projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditIndex;

impl Projection for AuditIndex {
    fn name(&self) -> &'static str {
        "audit_index"
    }

    async fn apply(&self, tx: &mut PgConnection, entry: &Entry) -> Result<(), ProjectionError> {
        let recorded_at: DateTime<Utc> = DateTime::parse_from_rfc3339(&entry.recorded_at)
            .map_err(|e| {
                ProjectionError::Poison(format!("recorded_at {:?}: {e}", entry.recorded_at))
            })?
            .with_timezone(&Utc);
        let text = |key: &str| {
            entry
                .metadata
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        sqlx::query(
            "INSERT INTO rm_audit_index (position, recorded_at, actor, command, aggregate_type, aggregate_id, event_type) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(entry.position)
        .bind(recorded_at)
        .bind(text("actor"))
        .bind(text("command"))
        .bind(&entry.aggregate_type)
        .bind(&entry.aggregate_id)
        .bind(&entry.event_type)
        .execute(tx)
        .await?;
        Ok(())
    }
}
