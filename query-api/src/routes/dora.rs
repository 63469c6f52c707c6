//! `GET /v1/dora`: the five DORA metrics over production deployments, with tiers, Quick
//! Check scores, a series by day, week or month, and the deployments, commits and
//! incidents behind each number. Definitions: `docs/metrics.md` and [`crate::dora`].

use release_pilot_ledger::db::Db;
use release_pilot_ledger::on;
use std::collections::HashMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use release_pilot_http::error::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::dora::{self, Bucket, CommitFact, DeploymentFact, Facts, IncidentLink, Window};
use crate::params::{check_window, Params, Time};
use crate::state::QueryState;

/// `GET /v1/dora`.
pub fn router() -> Router<QueryState> {
    Router::new().route("/v1/dora", get(metrics))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoraParams {
    /// Only this service (default: all).
    service: Option<String>,
    /// Only this production environment (default: every production environment).
    environment: Option<String>,
    /// Window start, included (default: 30 days before `to`).
    #[param(value_type = Option<String>)]
    from: Option<Time>,
    /// Window end, excluded (default: now).
    #[param(value_type = Option<String>)]
    to: Option<Time>,
    /// Add a series by `day`, `week` (ISO, Monday) or `month`.
    #[param(value_type = Option<String>)]
    bucket: Option<Bucket>,
    /// Include the deployments, commits and incidents behind each number.
    details: Option<bool>,
}

#[utoipa::path(get, path = "/v1/dora", tag = "dora", params(DoraParams),
    summary = "The five DORA metrics with 2023 tiers, Quick Check scores, series and drill-down.",
    responses((status = 200, description = "the metrics", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn metrics(
    State(state): State<QueryState>,
    Params(p): Params<DoraParams>,
) -> Result<Json<Value>, ApiError> {
    check_window(p.from, p.to)?;
    let to = p.to.map_or_else(Utc::now, |t| t.0);
    let from = p.from.map_or(to - Duration::days(30), |t| t.0);
    if from >= to {
        return Err(ApiError::bad_request(
            "invalid_window",
            "from must be before to (to defaults to now)",
        ));
    }
    if let Some(service) = &p.service {
        crate::routes::releases::known_service(&state, service).await?;
    }
    let window = Window { from, to };
    let facts = load(
        &state,
        p.service.as_deref(),
        p.environment.as_deref(),
        &window,
    )
    .await?;
    let details = p.details.unwrap_or(false);
    let mut report = dora::report(&facts, &window, details);
    report["window"] = json!(window);
    report["service"] = json!(p.service);
    report["environment"] = json!(p.environment);
    report["definitions"] = json!({"version": dora::DEFINITIONS_VERSION, "document": "docs/metrics.md", "tiers": "DORA 2023", "quick_check": "DORA Quick Check 0-10"});
    if let Some(bucket) = p.bucket {
        report["bucket"] = json!(bucket);
        report["series"] = json!(dora::series(&facts, &window, bucket));
    }
    if !details {
        let mut query = vec![
            format!(
                "from={}",
                from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            format!(
                "to={}",
                to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            "details=true".to_owned(),
        ];
        if let Some(s) = &p.service {
            query.push(format!("service={s}"));
        }
        if let Some(e) = &p.environment {
            query.push(format!("environment={e}"));
        }
        report["details"] = json!(format!("/v1/dora?{}", query.join("&")));
    }
    Ok(Json(report))
}

/// A production deployment as the facts need it.
#[derive(Debug, sqlx::FromRow)]
struct FactRow {
    deployment_id: Uuid,
    service: String,
    environment: String,
    version: String,
    planned: bool,
    status: String,
    release_id: Uuid,
    completed_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    restored_at: Option<DateTime<Utc>>,
    next_success_at: Option<DateTime<Utc>>,
}

/// An incident linked to a deployment, declared or by the rule.
#[derive(Debug, sqlx::FromRow)]
struct LinkRow {
    incident_id: Uuid,
    deployment_id: Uuid,
    opened_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    declared: bool,
}

/// A commit and its first production deployment.
#[derive(Debug, sqlx::FromRow)]
struct CommitRow {
    sha: String,
    service: String,
    committed_at: DateTime<Utc>,
    deployment_id: Uuid,
    deployed_at: DateTime<Utc>,
}

/// Loads the facts behind a window: production deployments that finished in it (a
/// completion is a finish, so this includes every success), the next successful deployment after each, the incidents each caused (declared,
/// or attributed by the rule), and the commits that reached production first in it.
pub(crate) async fn load(
    state: &QueryState,
    service: Option<&str>,
    environment: Option<&str>,
    window: &Window,
) -> Result<Facts, ApiError> {
    let rows: Vec<FactRow> = on!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT d.deployment_id, d.service, d.environment, d.version, d.planned, d.status, d.release_id, \
                    d.completed_at, d.finished_at, d.failed_at, d.restored_at, \
                    (SELECT min(n.completed_at) FROM rm_dora_deployments n \
                      WHERE n.production AND n.service = d.service AND n.environment = d.environment \
                        AND n.deployment_id <> d.deployment_id \
                        AND n.completed_at > coalesce(d.failed_at, d.finished_at, d.started_at)) AS next_success_at \
             FROM rm_dora_deployments d \
             WHERE d.production AND ($1 IS NULL OR d.service = $1) AND ($2 IS NULL OR d.environment = $2) \
               AND d.finished_at >= $3 AND d.finished_at < $4",
        )
        .bind(service)
        .bind(environment)
        .bind(window.from)
        .bind(window.to)
        .fetch_all(pool)
        .await?
    });
    let mut deployments = Vec::with_capacity(rows.len());
    let mut releases = Vec::new();
    for row in rows {
        if row.completed_at.is_some_and(|t| window.contains(t)) {
            releases.push(row.release_id);
        }
        deployments.push(DeploymentFact {
            deployment_id: row.deployment_id,
            service: row.service,
            environment: row.environment,
            version: row.version,
            planned: row.planned,
            status: row.status,
            completed_at: row.completed_at,
            finished_at: row.finished_at,
            failed_at: row.failed_at,
            restored_at: row.restored_at,
            next_success_at: row.next_success_at,
            incidents: Vec::new(),
        });
    }
    let ids: Vec<Uuid> = deployments.iter().map(|d| d.deployment_id).collect();
    let incidents: Vec<LinkRow> = match &state.db {
        Db::Postgres(pool) => {
            sqlx::query_as(
        "SELECT i.incident_id, i.deployment_id, i.opened_at, i.resolved_at, true AS declared \
           FROM rm_dora_incidents i WHERE i.deployment_id = ANY($1) \
         UNION ALL \
         SELECT i.incident_id, a.deployment_id, i.opened_at, i.resolved_at, false \
           FROM rm_dora_incidents i \
           CROSS JOIN LATERAL ( \
             SELECT d.deployment_id FROM rm_dora_deployments d \
              WHERE d.production AND d.service = i.service AND d.environment = i.environment \
                AND d.completed_at IS NOT NULL AND d.completed_at <= i.opened_at \
              ORDER BY d.completed_at DESC LIMIT 1) a \
          WHERE i.deployment_id IS NULL AND i.production AND i.opened_at >= $2 \
            AND ($3 IS NULL OR i.service = $3) AND ($4 IS NULL OR i.environment = $4) \
            AND a.deployment_id = ANY($1)",
    )
    .bind(&ids)
    .bind(window.from - Duration::days(365))
    .bind(service)
    .bind(environment)
    .fetch_all(pool)
    .await?
        }
        // SQLite has neither arrays nor LATERAL: the window's deployments are a common
        // table expression and the attributed deployment a correlated subquery.
        Db::Sqlite(pool) => {
            sqlx::query_as(
                "WITH w AS (SELECT d.deployment_id FROM rm_dora_deployments d \
                   WHERE d.production AND ($3 IS NULL OR d.service = $3) AND ($4 IS NULL OR d.environment = $4) \
                     AND d.finished_at >= $5 AND d.finished_at < $6) \
                 SELECT i.incident_id, i.deployment_id, i.opened_at, i.resolved_at, 1 AS declared \
                   FROM rm_dora_incidents i WHERE i.deployment_id IN (SELECT deployment_id FROM w) \
                 UNION ALL \
                 SELECT incident_id, deployment_id, opened_at, resolved_at, 0 FROM ( \
                   SELECT i.incident_id, i.opened_at, i.resolved_at, \
                          (SELECT d.deployment_id FROM rm_dora_deployments d \
                            WHERE d.production AND d.service = i.service AND d.environment = i.environment \
                              AND d.completed_at IS NOT NULL AND d.completed_at <= i.opened_at \
                            ORDER BY d.completed_at DESC LIMIT 1) AS deployment_id \
                     FROM rm_dora_incidents i \
                    WHERE i.deployment_id IS NULL AND i.production AND i.opened_at >= $2 \
                      AND ($3 IS NULL OR i.service = $3) AND ($4 IS NULL OR i.environment = $4)) \
                  WHERE deployment_id IN (SELECT deployment_id FROM w)",
            )
            .bind(0)
            .bind(window.from - Duration::days(365))
            .bind(service)
            .bind(environment)
            .bind(window.from)
            .bind(window.to)
            .fetch_all(pool)
            .await?
        }
    };
    let mut by_deployment: HashMap<Uuid, Vec<IncidentLink>> = HashMap::new();
    for row in incidents {
        by_deployment
            .entry(row.deployment_id)
            .or_default()
            .push(IncidentLink {
                incident_id: row.incident_id,
                opened_at: row.opened_at,
                resolved_at: row.resolved_at,
                declared: row.declared,
            });
    }
    for d in &mut deployments {
        if let Some(mut links) = by_deployment.remove(&d.deployment_id) {
            links.sort_by_key(|l| (l.opened_at, l.incident_id));
            d.incidents = links;
        }
    }
    let commits: Vec<CommitRow> = match &state.db {
        Db::Postgres(pool) => {
            sqlx::query_as(
        "SELECT DISTINCT ON (c.service, c.sha) c.sha, c.service, c.committed_at, f.deployment_id, \
                f.completed_at AS deployed_at \
           FROM rm_dora_release_commits c \
           CROSS JOIN LATERAL ( \
             SELECT d.deployment_id, d.completed_at FROM rm_dora_release_commits c2 \
               JOIN rm_dora_deployments d ON d.release_id = c2.release_id \
              WHERE c2.service = c.service AND c2.sha = c.sha AND d.production \
                AND ($2 IS NULL OR d.environment = $2) AND d.completed_at IS NOT NULL \
              ORDER BY d.completed_at, d.deployment_id LIMIT 1) f \
          WHERE c.release_id = ANY($1) AND f.completed_at >= $3 AND f.completed_at < $4 \
          ORDER BY c.service, c.sha, c.committed_at",
    )
    .bind(&releases)
    .bind(environment)
    .bind(window.from)
    .bind(window.to)
    .fetch_all(pool)
    .await?
        }
        // The same question without DISTINCT ON, LATERAL or arrays: the releases are
        // those completed in the window, each commit's first production deployment is
        // ranked with a window function.
        Db::Sqlite(pool) => {
            sqlx::query_as(
                "SELECT sha, service, committed_at, deployment_id, deployed_at FROM ( \
                   SELECT c.sha, c.service, c.committed_at, f.deployment_id, f.completed_at AS deployed_at, \
                          row_number() OVER (PARTITION BY c.service, c.sha ORDER BY c.committed_at) AS rank \
                     FROM rm_dora_release_commits c \
                     JOIN (SELECT c2.service, c2.sha, d.deployment_id, d.completed_at, \
                                  row_number() OVER (PARTITION BY c2.service, c2.sha \
                                                     ORDER BY d.completed_at, d.deployment_id) AS first \
                             FROM rm_dora_release_commits c2 \
                             JOIN rm_dora_deployments d ON d.release_id = c2.release_id \
                            WHERE d.production AND ($2 IS NULL OR d.environment = $2) \
                              AND d.completed_at IS NOT NULL) f \
                       ON f.service = c.service AND f.sha = c.sha AND f.first = 1 \
                    WHERE c.release_id IN (SELECT d.release_id FROM rm_dora_deployments d \
                            WHERE d.production AND ($5 IS NULL OR d.service = $5) \
                              AND ($2 IS NULL OR d.environment = $2) \
                              AND d.finished_at >= $3 AND d.finished_at < $4 \
                              AND d.completed_at >= $3 AND d.completed_at < $4) \
                      AND f.completed_at >= $3 AND f.completed_at < $4) \
                 WHERE rank = 1 ORDER BY service, sha",
            )
            .bind(0)
            .bind(environment)
            .bind(window.from)
            .bind(window.to)
            .bind(service)
            .fetch_all(pool)
            .await?
        }
    };
    let commits = commits
        .into_iter()
        .map(|c| CommitFact {
            sha: c.sha,
            service: c.service,
            committed_at: c.committed_at,
            deployment_id: c.deployment_id,
            deployed_at: c.deployed_at,
        })
        .collect();
    Ok(Facts {
        deployments,
        commits,
    })
}
