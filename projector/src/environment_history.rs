//! Environment history: one row per version that became live in a service × environment,
//! from `DeploymentCompleted` and `RollbackCompleted`, with world-time validity
//! (`valid_from`, `valid_to`) and the ledger time it was recorded.
//!
//! Rows are placed by world time: a version that became live at `F` closes the row live
//! just before `F` and is itself closed by the next row after `F`, so a deployment
//! reported late (backfilled) slots into the past without disturbing later rows.

use chrono::{DateTime, Utc};
use release_pilot_domain::environment::{EnvironmentEvent, RunningVersion};
use release_pilot_ledger::db::Tx;
use release_pilot_ledger::entry::Entry;
use release_pilot_ledger::on_tx;
use uuid::Uuid;

use crate::runner::{EntryExt, Projection, ProjectionError};

/// The environment history projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvironmentHistory;

struct Live {
    deployment_id: Uuid,
    release_id: Uuid,
    version: String,
    at: DateTime<Utc>,
    cause: &'static str,
}

impl From<(&RunningVersion, DateTime<Utc>, &'static str)> for Live {
    fn from((running, at, cause): (&RunningVersion, DateTime<Utc>, &'static str)) -> Self {
        Self {
            deployment_id: running.deployment_id.as_uuid(),
            release_id: running.release_id.as_uuid(),
            version: running.version.to_string(),
            at,
            cause,
        }
    }
}

impl Projection for EnvironmentHistory {
    fn name(&self) -> &'static str {
        "environment_history"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_environment_history"]
    }

    async fn apply(&self, tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
        if entry.aggregate_type != "environment" {
            return Ok(());
        }
        if !matches!(
            entry.event_type.as_str(),
            "DeploymentCompleted" | "RollbackCompleted"
        ) {
            return Ok(());
        }
        let event: EnvironmentEvent = entry.event()?;
        let live = match &event {
            EnvironmentEvent::DeploymentCompleted {
                deployment_id,
                release_id,
                version,
                finished_at,
            } => Live {
                deployment_id: deployment_id.as_uuid(),
                release_id: release_id.as_uuid(),
                version: version.to_string(),
                at: *finished_at,
                cause: "deployment",
            },
            EnvironmentEvent::RollbackCompleted {
                restored: Some(restored),
                finished_at,
                ..
            } => Live::from((restored, *finished_at, "rollback")),
            // A rollback with nothing to restore leaves no version live.
            EnvironmentEvent::RollbackCompleted { restored: None, .. } => return Ok(()),
            _ => return Ok(()),
        };
        let (service, environment) = entry.aggregate_id.split_once('/').ok_or_else(|| {
            ProjectionError::Poison(format!(
                "environment id {:?} is not service/environment",
                entry.aggregate_id
            ))
        })?;
        let recorded_at = entry.recorded()?;
        // The next row in world time closes this one.
        let next: Option<DateTime<Utc>> = on_tx!(&mut *tx, |c| sqlx::query_scalar(
            "SELECT min(valid_from) FROM rm_environment_history \
             WHERE service = $1 AND environment = $2 AND valid_from > $3",
        )
        .bind(service)
        .bind(environment)
        .bind(live.at)
        .fetch_one(c)
        .await)?;
        // This row closes the one live just before it.
        on_tx!(&mut *tx, |c| sqlx::query(
            "UPDATE rm_environment_history SET valid_to = $3 \
             WHERE service = $1 AND environment = $2 AND position = ( \
               SELECT position FROM rm_environment_history \
               WHERE service = $1 AND environment = $2 AND valid_from <= $3 \
               ORDER BY valid_from DESC, position DESC LIMIT 1)",
        )
        .bind(service)
        .bind(environment)
        .bind(live.at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        on_tx!(&mut *tx, |c| {
            sqlx::query(
            "INSERT INTO rm_environment_history \
             (service, environment, position, deployment_id, release_id, version, valid_from, valid_to, recorded_at, cause, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(service)
        .bind(environment)
        .bind(entry.position)
        .bind(live.deployment_id)
        .bind(live.release_id)
        .bind(&live.version)
        .bind(live.at)
        .bind(next)
        .bind(recorded_at)
        .bind(live.cause)
        .bind(entry.meta("actor"))
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
