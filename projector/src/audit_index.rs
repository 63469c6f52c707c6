//! The audit index: one row per ledger entry (position, time, actor, command, aggregate,
//! event type), so the audit trail can be filtered and paged by position.

use release_pilot_ledger::entry::Entry;
use sqlx::PgConnection;

use crate::runner::{EntryExt, Projection, ProjectionError};

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

    async fn apply(&self, tx: &mut PgConnection, entry: &Entry) -> Result<(), ProjectionError> {
        let recorded_at = entry.recorded()?;
        let text = |key: &str| entry.meta(key);
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
