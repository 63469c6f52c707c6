//! Release timeline and release view: every release event in order with its actor and
//! essentials, and one row per release with its current state (gate standings, approvals
//! per environment and person, withdrawal). Gates and approvals are stored as the ledger
//! decided them; no rule is recomputed here.

use release_pilot_domain::ids::{EnvironmentName, Person};
use release_pilot_domain::release::ReleaseEvent;
use release_pilot_ledger::db::Tx;
use release_pilot_ledger::entry::Entry;
use release_pilot_ledger::on_tx;
use serde_json::json;
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

    async fn apply(&self, tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
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
                on_tx!(&mut *tx, |c| {
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
                .execute(c)
        .await
        .map(|r| r.rows_affected())
                })?;
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
                on_tx!(&mut *tx, |c| {
                    sqlx::query("UPDATE rm_releases SET withdrawn = true, last_position = $2 WHERE release_id = $1")
                    .bind(release_id)
                    .bind(entry.position)
                    .execute(c)
        .await
        .map(|r| r.rows_affected())
                })?;
                json!({"reason": reason})
            }
        };
        on_tx!(&mut *tx, |c| {
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
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

/// Records `approver`'s latest decision for `environment` in the release view.
async fn decide(
    tx: &mut Tx,
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
    tx: &mut Tx,
    release_id: Uuid,
    column: &'static str,
    path: &[&str],
    value: serde_json::Value,
    position: i64,
) -> Result<(), ProjectionError> {
    let parent = path.first().copied().unwrap_or_default();
    if tx.is_sqlite() {
        // json_set creates missing parent objects itself; keys are quoted path steps.
        let steps: Vec<String> = path
            .iter()
            .map(|key| serde_json::Value::from(*key).to_string())
            .collect();
        let sql = format!(
            "UPDATE rm_releases SET {column} = json_set({column}, $2, json($3)), last_position = $4 \
             WHERE release_id = $1"
        );
        on_tx!(&mut *tx, |c| sqlx::query(&sql)
            .bind(release_id)
            .bind(format!("$.{}", steps.join(".")))
            .bind(value.to_string())
            .bind(position)
            .execute(c)
            .await
            .map(drop))?;
        return Ok(());
    }
    let sql = format!(
        "UPDATE rm_releases SET {column} = jsonb_set( \
             CASE WHEN cardinality($2::text[]) > 1 \
                  THEN jsonb_set({column}, ARRAY[$3], coalesce({column} -> $3, '{{}}'::jsonb)) \
                  ELSE {column} END, \
             $2::text[], $4), last_position = $5 \
         WHERE release_id = $1"
    );
    if let Tx::Postgres(tx) = tx {
        sqlx::query(&sql)
            .bind(release_id)
            .bind(path)
            .bind(parent)
            .bind(value)
            .bind(position)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
