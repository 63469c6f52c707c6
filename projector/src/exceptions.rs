//! Exceptions: changes that left the regular path, for compliance review —
//! gates bypassed (`gate_bypassed`), deployments that started with bypassed gates
//! (`deployed_with_bypassed_gates`) or through the hotfix lane without complete approvals
//! (`hotfix_lane`), and approvals the ledger refused, such as self-approval
//! (`approval_refused`). Each hotfix is also tracked until its regular approvals are
//! complete; whether it is overdue depends on the clock and is decided when the report is
//! read.

use release_pilot_domain::environment::EnvironmentEvent;
use release_pilot_domain::ids::EnvironmentName;
use release_pilot_domain::policy::{PolicyEvent, PolicyRules};
use release_pilot_domain::release::ReleaseEvent;
use release_pilot_ledger::db::Tx;
use release_pilot_ledger::entry::Entry;
use release_pilot_ledger::on_tx;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::runner::{EntryExt, Projection, ProjectionError};

/// The exceptions projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exceptions;

impl Projection for Exceptions {
    fn name(&self) -> &'static str {
        "exceptions"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_exceptions",
            "rm_exception_hotfixes",
            "rm_exception_policies",
            "rm_exception_releases",
        ]
    }

    async fn apply(&self, tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
        match entry.aggregate_type.as_str() {
            "policy" => {
                let PolicyEvent::PolicyDefined {
                    environment, rules, ..
                } = entry.event()?;
                on_tx!(&mut *tx, |c| {
                    sqlx::query(
                    "INSERT INTO rm_exception_policies (environment, approvals_required) VALUES ($1, $2) \
                     ON CONFLICT (environment) DO UPDATE SET approvals_required = EXCLUDED.approvals_required",
                )
                .bind(environment.as_str())
                .bind(i32::try_from(rules.approvals.min_approvals).unwrap_or(i32::MAX))
                .execute(c)
        .await
        .map(|r| r.rows_affected())
                })?;
                Ok(())
            }
            "release" => release(tx, entry).await,
            "environment" => environment(tx, entry).await,
            _ => Ok(()),
        }
    }
}

/// One row of the report.
struct Exception<'a> {
    kind: &'a str,
    service: &'a str,
    environment: Option<&'a str>,
    release_id: Option<Uuid>,
    deployment_id: Option<Uuid>,
    actor: Option<String>,
    at: chrono::DateTime<chrono::Utc>,
    detail: Value,
}

async fn record(tx: &mut Tx, entry: &Entry, row: Exception<'_>) -> Result<(), ProjectionError> {
    on_tx!(&mut *tx, |c| {
        sqlx::query(
        "INSERT INTO rm_exceptions (position, kind, service, environment, release_id, deployment_id, actor, at, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(entry.position)
    .bind(row.kind)
    .bind(row.service)
    .bind(row.environment)
    .bind(row.release_id)
    .bind(row.deployment_id)
    .bind(row.actor)
    .bind(row.at)
    .bind(row.detail)
    .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

async fn release(tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
    let release_id = entry.aggregate_uuid()?;
    let event: ReleaseEvent = entry.event()?;
    if let ReleaseEvent::ReleaseCreated { service, .. } = &event {
        on_tx!(&mut *tx, |c| sqlx::query(
            "INSERT INTO rm_exception_releases (release_id, service) VALUES ($1, $2)"
        )
        .bind(release_id)
        .bind(service.as_str())
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        return Ok(());
    }
    let service: String = on_tx!(&mut *tx, |c| sqlx::query_scalar(
        "SELECT service FROM rm_exception_releases WHERE release_id = $1"
    )
    .bind(release_id)
    .fetch_optional(c)
    .await)?
    .ok_or_else(|| entry.poison("the release was never created"))?;
    let at = entry.recorded()?;
    match event {
        ReleaseEvent::GateBypassed {
            gate,
            reason,
            bypassed_by,
            ..
        } => {
            let row = Exception {
                kind: "gate_bypassed",
                service: &service,
                environment: None,
                release_id: Some(release_id),
                deployment_id: None,
                actor: Some(bypassed_by.to_string()),
                at,
                detail: json!({"gate": gate.as_str(), "reason": reason}),
            };
            record(tx, entry, row).await
        }
        ReleaseEvent::ApprovalRefused {
            environment,
            approver,
            code,
        } => {
            let row = Exception {
                kind: "approval_refused",
                service: &service,
                environment: Some(environment.as_str()),
                release_id: Some(release_id),
                deployment_id: None,
                actor: Some(approver.to_string()),
                at,
                detail: json!({"code": code}),
            };
            record(tx, entry, row).await
        }
        ReleaseEvent::ApprovalGranted {
            environment,
            approver,
            ..
        } => {
            // A retroactive approval of a hotfix: the hotfix is complete once enough
            // distinct people have approved.
            on_tx!(&mut *tx, |c, lite| {
                sqlx::query(if lite {
                "UPDATE rm_exception_hotfixes SET \
                   approvers = CASE WHEN EXISTS (SELECT 1 FROM json_each(approvers) WHERE value = $3) \
                                    THEN approvers ELSE json_insert(approvers, '$[#]', $3) END, \
                   last_position = $5 \
                 WHERE release_id = $1 AND environment = $2 AND completed_at IS NULL"
            } else {
                "UPDATE rm_exception_hotfixes SET \
                   approvers = CASE WHEN approvers ? $3 THEN approvers ELSE approvers || to_jsonb($3::text) END, \
                   last_position = $5 \
                 WHERE release_id = $1 AND environment = $2 AND completed_at IS NULL"
            })
            .bind(release_id)
            .bind(environment.as_str())
            .bind(approver.as_str())
            .bind(at)
            .bind(entry.position)
            .execute(c)
        .await
        .map(|r| r.rows_affected())
            })?;
            on_tx!(&mut *tx, |c, lite| sqlx::query(if lite {
                "UPDATE rm_exception_hotfixes SET completed_at = $3 \
                 WHERE release_id = $1 AND environment = $2 AND completed_at IS NULL \
                   AND json_array_length(approvers) >= approvals_required"
            } else {
                "UPDATE rm_exception_hotfixes SET completed_at = $3 \
                 WHERE release_id = $1 AND environment = $2 AND completed_at IS NULL \
                   AND jsonb_array_length(approvers) >= approvals_required"
            })
            .bind(release_id)
            .bind(environment.as_str())
            .bind(at)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn environment(tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
    let EnvironmentEvent::DeploymentStarted {
        deployment_id,
        service,
        environment,
        release_id,
        version,
        strategy,
        started_at,
        started_by,
        clearance,
        ..
    } = entry.event()?
    else {
        return Ok(());
    };
    let base = |kind, detail| Exception {
        kind,
        service: service.as_str(),
        environment: Some(environment.as_str()),
        release_id: Some(release_id.as_uuid()),
        deployment_id: Some(deployment_id.as_uuid()),
        actor: Some(started_by.to_string()),
        at: started_at,
        detail,
    };
    if !clearance.bypassed_gates.is_empty() {
        let detail = json!({"version": version.to_string(), "bypassed_gates": clearance.bypassed_gates,
                            "policy_version": clearance.policy_version});
        record(tx, entry, base("deployed_with_bypassed_gates", detail)).await?;
    }
    let Some(hotfix_approver) = &clearance.hotfix_approved_by else {
        return Ok(());
    };
    let required = approvals_required(tx, &environment).await?;
    let detail = json!({"version": version.to_string(), "strategy": strategy,
                        "hotfix_approved_by": hotfix_approver, "approved_by": clearance.approved_by,
                        "retroactive_approval_due": clearance.retroactive_approval_due,
                        "policy_version": clearance.policy_version});
    record(tx, entry, base("hotfix_lane", detail)).await?;
    let Some(due) = clearance.retroactive_approval_due else {
        return Ok(());
    };
    let approvers = json!(clearance.approved_by);
    let complete = clearance.approved_by.len() >= usize::try_from(required).unwrap_or(0);
    on_tx!(&mut *tx, |c| {
        sqlx::query(
        "INSERT INTO rm_exception_hotfixes (deployment_id, release_id, service, environment, started_at, due, \
         approvals_required, approvers, completed_at, last_position) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(deployment_id.as_uuid())
    .bind(release_id.as_uuid())
    .bind(service.as_str())
    .bind(environment.as_str())
    .bind(started_at)
    .bind(due)
    .bind(required)
    .bind(approvers)
    .bind(complete.then_some(started_at))
    .bind(entry.position)
    .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Approvals the environment's latest policy requires (its tier's default without one).
async fn approvals_required(
    tx: &mut Tx,
    environment: &EnvironmentName,
) -> Result<i32, ProjectionError> {
    let defined: Option<i32> = on_tx!(&mut *tx, |c| sqlx::query_scalar(
        "SELECT approvals_required FROM rm_exception_policies WHERE environment = $1",
    )
    .bind(environment.as_str())
    .fetch_optional(c)
    .await)?;
    Ok(defined.unwrap_or_else(|| {
        let rules = PolicyRules::defaults_for(environment.default_tier());
        i32::try_from(rules.approvals.min_approvals).unwrap_or(i32::MAX)
    }))
}
