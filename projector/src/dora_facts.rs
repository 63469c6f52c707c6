//! DORA facts: per deployment its domain times and what became of it (succeeded,
//! failed, rolled back; when it failed and when service was restored), whether it was
//! planned, and for each release the commits it contains with their commit times; per
//! incident its times and the deployment it names. Environment tiers follow the policies
//! (a policy may make `eu-main` production); without one, the name decides.
//!
//! Only facts are stored. Every metric — and the attribution of an incident that names
//! no deployment — is computed when it is asked for (see `docs/metrics.md`), so a late,
//! backfilled deployment is counted the moment it is recorded.

use chrono::{DateTime, Utc};
use release_pilot_domain::environment::{EnvironmentEvent, Strategy};
use release_pilot_domain::ids::{EnvironmentName, EnvironmentTier};
use release_pilot_domain::incident::IncidentEvent;
use release_pilot_domain::policy::PolicyEvent;
use release_pilot_domain::release::ReleaseEvent;
use release_pilot_ledger::db::Tx;
use release_pilot_ledger::entry::Entry;
use release_pilot_ledger::on_tx;
use uuid::Uuid;

use crate::runner::{label, EntryExt, Projection, ProjectionError};

/// The DORA facts projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct DoraFacts;

impl Projection for DoraFacts {
    fn name(&self) -> &'static str {
        "dora_facts"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_dora_deployments",
            "rm_dora_release_commits",
            "rm_dora_incidents",
            "rm_dora_environment_tiers",
        ]
    }

    async fn apply(&self, tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
        match entry.aggregate_type.as_str() {
            "policy" => policy(tx, entry).await,
            "release" => release(tx, entry).await,
            "environment" => environment(tx, entry).await,
            "incident" => incident(tx, entry).await,
            _ => Ok(()),
        }
    }
}

/// Whether `environment` is production: by its latest policy, else by its name.
pub(crate) async fn is_production(
    tx: &mut Tx,
    environment: &EnvironmentName,
) -> Result<bool, ProjectionError> {
    let tier: Option<String> = on_tx!(&mut *tx, |c| sqlx::query_scalar(
        "SELECT tier FROM rm_dora_environment_tiers WHERE environment = $1"
    )
    .bind(environment.as_str())
    .fetch_optional(c)
    .await)?;
    Ok(match tier {
        Some(tier) => tier == label(&EnvironmentTier::Production),
        None => environment.default_tier() == EnvironmentTier::Production,
    })
}

async fn policy(tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
    let PolicyEvent::PolicyDefined {
        environment, rules, ..
    } = entry.event()?;
    on_tx!(&mut *tx, |c| {
        sqlx::query(
        "INSERT INTO rm_dora_environment_tiers (environment, tier, position) VALUES ($1, $2, $3) \
         ON CONFLICT (environment) DO UPDATE SET tier = EXCLUDED.tier, position = EXCLUDED.position",
    )
    .bind(environment.as_str())
    .bind(label(&rules.tier))
    .bind(entry.position)
    .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

async fn release(tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
    let ReleaseEvent::ReleaseCreated {
        release_id,
        service,
        commits,
        ..
    } = entry.event()?
    else {
        return Ok(());
    };
    for commit in commits {
        on_tx!(&mut *tx, |c| sqlx::query(
            "INSERT INTO rm_dora_release_commits (release_id, sha, service, committed_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(release_id.as_uuid())
        .bind(commit.sha.as_str())
        .bind(service.as_str())
        .bind(commit.committed_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// One change to a deployment row.
enum Change {
    Succeeded(DateTime<Utc>),
    Failed(DateTime<Utc>),
    FailureBegan(DateTime<Utc>),
    Restored(DateTime<Utc>),
}

async fn environment(tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
    use EnvironmentEvent as E;
    let (deployment, change) = match entry.event()? {
        E::DeploymentStarted {
            deployment_id,
            service,
            environment,
            release_id,
            version,
            strategy,
            started_at,
            remediates_incident,
            ..
        } => {
            let production = is_production(tx, &environment).await?;
            on_tx!(&mut *tx, |c| {
                sqlx::query(
                "INSERT INTO rm_dora_deployments (deployment_id, service, environment, production, release_id, \
                 version, strategy, started_at, status, remediates_incident, planned, recorded_at, last_position) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'in_progress', $9, $10, $11, $12)",
            )
            .bind(deployment_id.as_uuid())
            .bind(service.as_str())
            .bind(environment.as_str())
            .bind(production)
            .bind(release_id.as_uuid())
            .bind(version.to_string())
            .bind(label(&strategy))
            .bind(started_at)
            .bind(remediates_incident.map(|i| i.as_uuid()))
            .bind(strategy != Strategy::Hotfix && remediates_incident.is_none())
            .bind(entry.recorded()?)
            .bind(entry.position)
            .execute(c)
        .await
        .map(|r| r.rows_affected())
            })?;
            return Ok(());
        }
        E::DeploymentCompleted {
            deployment_id,
            finished_at,
            ..
        } => (deployment_id, Change::Succeeded(finished_at)),
        E::DeploymentFailed {
            deployment_id,
            finished_at,
            ..
        } => (deployment_id, Change::Failed(finished_at)),
        E::RollbackTriggered {
            deployment_id,
            evidence,
            ..
        } => (deployment_id, Change::FailureBegan(evidence.fired_at)),
        E::RollbackStarted {
            deployment_id,
            started_at,
            ..
        } => (deployment_id, Change::FailureBegan(started_at)),
        E::RollbackCompleted {
            deployment_id,
            finished_at,
            ..
        } => (deployment_id, Change::Restored(finished_at)),
        E::CanaryAdvanced { .. }
        | E::HealthSampled { .. }
        | E::TrafficSwitched { .. }
        | E::FeatureFlagToggled { .. }
        | E::ChangeFreezeStarted { .. }
        | E::ChangeFreezeEnded { .. } => return Ok(()),
    };
    let sql = match change {
        Change::Succeeded(_) => {
            "UPDATE rm_dora_deployments SET status = 'succeeded', completed_at = $2, finished_at = $2, \
             last_position = $3 WHERE deployment_id = $1"
        }
        Change::Failed(_) => {
            "UPDATE rm_dora_deployments SET status = 'failed', finished_at = $2, \
             failed_at = coalesce(failed_at, $2), last_position = $3 WHERE deployment_id = $1"
        }
        Change::FailureBegan(_) => {
            "UPDATE rm_dora_deployments SET failed_at = coalesce(failed_at, $2), last_position = $3 \
             WHERE deployment_id = $1"
        }
        Change::Restored(_) => {
            "UPDATE rm_dora_deployments SET status = 'rolled_back', finished_at = coalesce(finished_at, $2), \
             failed_at = coalesce(failed_at, $2), restored_at = $2, last_position = $3 WHERE deployment_id = $1"
        }
    };
    let (Change::Succeeded(at)
    | Change::Failed(at)
    | Change::FailureBegan(at)
    | Change::Restored(at)) = change;
    let updated = on_tx!(&mut *tx, |c| sqlx::query(sql)
        .bind(deployment.as_uuid())
        .bind(at)
        .bind(entry.position)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    if updated == 0 {
        return Err(entry.poison(format_args!("deployment {deployment} was never started")));
    }
    Ok(())
}

async fn incident(tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
    let incident: Uuid = entry.aggregate_uuid()?;
    match entry.event()? {
        IncidentEvent::IncidentOpened {
            service,
            environment,
            severity,
            deployment_id,
            opened_at,
            ..
        } => {
            let production = is_production(tx, &environment).await?;
            on_tx!(&mut *tx, |c| {
                sqlx::query(
                "INSERT INTO rm_dora_incidents (incident_id, service, environment, production, severity, \
                 opened_at, deployment_id, last_position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(incident)
            .bind(service.as_str())
            .bind(environment.as_str())
            .bind(production)
            .bind(label(&severity))
            .bind(opened_at)
            .bind(deployment_id.map(|d| d.as_uuid()))
            .bind(entry.position)
            .execute(c)
        .await
        .map(|r| r.rows_affected())
            })?;
        }
        IncidentEvent::IncidentResolved { resolved_at, .. } => {
            on_tx!(&mut *tx, |c| {
                sqlx::query(
                "UPDATE rm_dora_incidents SET resolved_at = $2, last_position = $3 WHERE incident_id = $1",
            )
            .bind(incident)
            .bind(resolved_at)
            .bind(entry.position)
            .execute(c)
        .await
        .map(|r| r.rows_affected())
            })?;
        }
    }
    Ok(())
}
