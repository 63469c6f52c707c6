//! Release timeline and release view: every release event in order with its actor and
//! essentials, and one row per release with its current state (gate standings, approvals
//! per environment and person, withdrawal). Gates and approvals are stored as the ledger
//! decided them; no rule is recomputed here.

use release_pilot_domain::ids::{EnvironmentName, Person};
use release_pilot_domain::release::ReleaseEvent;
use release_pilot_ledger::entry::Entry;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runner::{EntryExt, Projection, ProjectionError};

/// The release timeline and release view projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReleaseTimeline;

impl Projection for ReleaseTimeline {
    fn name(&self) -> &'static str {
        "release_timeline"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_releases", "rm_release_timeline"]
    }

    async fn apply(&self, tx: &mut PgConnection, entry: &Entry) -> Result<(), ProjectionError> {
        if entry.aggregate_type != "release" {
            return Ok(());
        }
        let release_id = entry.aggregate_uuid()?;
        let event: ReleaseEvent = entry.event()?;
        let recorded_at = entry.recorded()?;
        let actor = entry.meta("actor");
        let detail = match &event {
            ReleaseEvent::ReleaseCreated {
                service,
                version,
                version_source,
                requirements,
                commits,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO rm_releases (release_id, service, version, created_at, created_by, last_position) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(release_id)
                .bind(service.as_str())
                .bind(version.to_string())
                .bind(recorded_at)
                .bind(actor.clone().unwrap_or_default())
                .bind(entry.position)
                .execute(&mut *tx)
                .await?;
                json!({"service": service, "version": version.to_string(), "version_source": version_source,
                       "commits": commits.len(), "requirements": requirements})
            }
            ReleaseEvent::GateEvaluated { gate, verdict, .. } => {
                set(
                    tx,
                    release_id,
                    "gates",
                    &[gate.as_str()],
                    json!(verdict.status),
                    entry.position,
                )
                .await?;
                json!({"gate": gate, "status": verdict.status, "failures": verdict.failures})
            }
            ReleaseEvent::GateBypassed { gate, reason, .. } => {
                set(
                    tx,
                    release_id,
                    "gates",
                    &[gate.as_str()],
                    json!("bypassed"),
                    entry.position,
                )
                .await?;
                json!({"gate": gate, "reason": reason})
            }
            ReleaseEvent::ApprovalRequested { environment, .. } => {
                json!({"environment": environment})
            }
            ReleaseEvent::ApprovalGranted {
                environment,
                approver,
                comment,
                ..
            } => {
                decide(
                    tx,
                    release_id,
                    environment,
                    approver,
                    "approve",
                    entry.position,
                )
                .await?;
                json!({"environment": environment, "approver": approver, "comment": comment})
            }
            ReleaseEvent::ApprovalRejected {
                environment,
                approver,
                reason,
                ..
            } => {
                decide(
                    tx,
                    release_id,
                    environment,
                    approver,
                    "reject",
                    entry.position,
                )
                .await?;
                json!({"environment": environment, "approver": approver, "reason": reason})
            }
            ReleaseEvent::HotfixApproved {
                environment,
                approver,
                reason,
            } => {
                json!({"environment": environment, "approver": approver, "reason": reason})
            }
            ReleaseEvent::ApprovalRefused {
                environment,
                approver,
                code,
            } => {
                json!({"environment": environment, "approver": approver, "code": code})
            }
            ReleaseEvent::ReleaseWithdrawn { reason, .. } => {
                sqlx::query("UPDATE rm_releases SET withdrawn = true, last_position = $2 WHERE release_id = $1")
                    .bind(release_id)
                    .bind(entry.position)
                    .execute(&mut *tx)
                    .await?;
                json!({"reason": reason})
            }
        };
        sqlx::query(
            "INSERT INTO rm_release_timeline (release_id, position, recorded_at, event_type, actor, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(release_id)
        .bind(entry.position)
        .bind(recorded_at)
        .bind(&entry.event_type)
        .bind(actor)
        .bind(detail)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Records `approver`'s latest decision for `environment` in the release view.
async fn decide(
    tx: &mut PgConnection,
    release_id: Uuid,
    environment: &EnvironmentName,
    approver: &Person,
    decision: &str,
    position: i64,
) -> Result<(), ProjectionError> {
    let path = [environment.as_str(), approver.as_str()];
    set(
        tx,
        release_id,
        "approvals",
        &path,
        json!(decision),
        position,
    )
    .await
}

/// Sets `column` at the one- or two-key JSON `path` to `value`, creating the parent
/// object when it is missing (an environment's first approval).
async fn set(
    tx: &mut PgConnection,
    release_id: Uuid,
    column: &'static str,
    path: &[&str],
    value: serde_json::Value,
    position: i64,
) -> Result<(), ProjectionError> {
    let parent = path.first().copied().unwrap_or_default();
    let sql = format!(
        "UPDATE rm_releases SET {column} = jsonb_set( \
             CASE WHEN cardinality($2::text[]) > 1 \
                  THEN jsonb_set({column}, ARRAY[$3], coalesce({column} -> $3, '{{}}'::jsonb)) \
                  ELSE {column} END, \
             $2::text[], $4), last_position = $5 \
         WHERE release_id = $1"
    );
    sqlx::query(&sql)
        .bind(release_id)
        .bind(path)
        .bind(parent)
        .bind(value)
        .bind(position)
        .execute(tx)
        .await?;
    Ok(())
}
