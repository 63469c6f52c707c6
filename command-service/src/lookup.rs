//! Questions the command service asks the event store before building a command.

use release_pilot_domain::ids::{DeploymentId, ServiceName};
use release_pilot_ledger::db::Db;
use release_pilot_ledger::on;
use semver::Version;

/// The highest version released so far for `service`.
pub async fn previous_version(
    db: &Db,
    service: &ServiceName,
) -> Result<Option<Version>, sqlx::Error> {
    let versions: Vec<String> = on!(db, |pool| {
        sqlx::query_scalar(
        "SELECT (payload -> 'ReleaseCreated') ->> 'version' FROM events \
         WHERE event_type = 'ReleaseCreated' AND ((payload -> 'ReleaseCreated') ->> 'service') = $1",
    )
    .bind(service.as_str())
    .fetch_all(pool)
    .await
    })?;
    Ok(versions
        .iter()
        .filter_map(|v| Version::parse(v).ok())
        .max_by(|a, b| a.cmp_precedence(b)))
}

/// The release of `service` at `version`, if one exists.
pub async fn release_at(
    db: &Db,
    service: &ServiceName,
    version: &Version,
) -> Result<Option<String>, sqlx::Error> {
    on!(db, |pool| sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE event_type = 'ReleaseCreated' \
         AND ((payload -> 'ReleaseCreated') ->> 'service') = $1 \
         AND ((payload -> 'ReleaseCreated') ->> 'version') = $2",
    )
    .bind(service.as_str())
    .bind(version.to_string())
    .fetch_optional(pool)
    .await)
}

/// The environment stream (`service/environment`) a deployment belongs to.
pub async fn environment_of(
    db: &Db,
    deployment: DeploymentId,
) -> Result<Option<String>, sqlx::Error> {
    on!(db, |pool| sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE event_type = 'DeploymentStarted' \
         AND ((payload -> 'DeploymentStarted') ->> 'deployment_id') = $1",
    )
    .bind(deployment.to_string())
    .fetch_optional(pool)
    .await)
}
