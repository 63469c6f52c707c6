//! Deployments, with their outcome and DORA facts.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use release_pilot_http::error::ApiError;
use release_pilot_ledger::on;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::params::{check_window, decode_cursor, encode_cursor, limit, uuid_or_404, Params, Time};
use crate::state::QueryState;

/// Routes under `/v1/deployments`.
pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/v1/deployments", get(list))
        .route("/v1/deployments/{id}", get(one))
}

const COLUMNS: &str = "deployment_id, service, environment, production, release_id, version, strategy, \
     started_at, completed_at, finished_at, status, failed_at, restored_at, remediates_incident, planned, recorded_at";

/// A deployment as the read model holds it (serialised as the API answers it).
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
struct DeploymentRow {
    deployment_id: Uuid,
    service: String,
    environment: String,
    production: bool,
    release_id: Uuid,
    version: String,
    strategy: String,
    status: String,
    started_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    restored_at: Option<DateTime<Utc>>,
    remediates_incident: Option<Uuid>,
    planned: bool,
    recorded_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    /// Only this service.
    service: Option<String>,
    /// Only this environment.
    environment: Option<String>,
    /// Started at or after (RFC 3339 or a date).
    #[param(value_type = Option<String>)]
    from: Option<Time>,
    /// Started before.
    #[param(value_type = Option<String>)]
    to: Option<Time>,
    /// Only this status: in_progress, succeeded, failed, rolled_back.
    status: Option<String>,
    /// The cursor from the previous page's `next`.
    after: Option<String>,
    /// Page size (1–1000, default 100).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/deployments", tag = "deployments", params(ListParams),
    summary = "Deployments, newest first, in pages.",
    responses((status = 200, description = "a page of deployments", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<QueryState>,
    Params(p): Params<ListParams>,
) -> Result<Json<Value>, ApiError> {
    check_window(p.from, p.to)?;
    let limit = limit(p.limit)?;
    if let Some(status) = &p.status {
        if !["in_progress", "succeeded", "failed", "rolled_back"].contains(&status.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_status",
                format!(
                    "status {status:?} is not one of in_progress, succeeded, failed, rolled_back"
                ),
            ));
        }
    }
    if let Some(service) = &p.service {
        crate::routes::releases::known_service(&state, service).await?;
    }
    let cursor = p.after.as_deref().map(decode_cursor).transpose()?;
    let rows: Vec<DeploymentRow> = on!(&state.db, |pool| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rm_dora_deployments \
         WHERE ($1 IS NULL OR service = $1) AND ($2 IS NULL OR environment = $2) \
           AND ($3 IS NULL OR started_at >= $3) AND ($4 IS NULL OR started_at < $4) \
           AND ($5 IS NULL OR status = $5) \
           AND ($6 IS NULL OR (started_at, deployment_id) < ($6, $7)) \
         ORDER BY started_at DESC, deployment_id DESC LIMIT $8"
    ))
    .bind(&p.service)
    .bind(&p.environment)
    .bind(p.from.map(|t| t.0))
    .bind(p.to.map(|t| t.0))
    .bind(&p.status)
    .bind(cursor.map(|c| c.0))
    .bind(cursor.map(|c| c.1))
    .bind(limit)
    .fetch_all(pool)
    .await)?;
    let next = if i64::try_from(rows.len()).unwrap_or(0) == limit {
        rows.last()
            .map(|row| encode_cursor(row.started_at, row.deployment_id))
    } else {
        None
    };
    let items: Vec<Value> = rows.iter().map(|row| json!(row)).collect();
    Ok(Json(json!({"items": items, "next": next})))
}

/// An incident that names the deployment.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
struct LinkedIncident {
    incident_id: Uuid,
    severity: String,
    opened_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
}

#[utoipa::path(get, path = "/v1/deployments/{id}", tag = "deployments", params(("id" = String, Path)),
    summary = "One deployment with its outcome and the incidents linked to it.",
    responses((status = 200, description = "the deployment", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn one(
    State(state): State<QueryState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = uuid_or_404(&id, "deployment_not_found", "deployment")?;
    let row: Option<DeploymentRow> = on!(&state.db, |pool| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rm_dora_deployments WHERE deployment_id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await)?;
    let row = row.ok_or_else(|| {
        ApiError::not_found("deployment_not_found", format!("no deployment {id}"))
    })?;
    let mut deployment = json!(row);
    let incidents: Vec<LinkedIncident> = on!(&state.db, |pool| sqlx::query_as(
        "SELECT incident_id, severity, opened_at, resolved_at FROM rm_dora_incidents \
         WHERE deployment_id = $1 ORDER BY opened_at",
    )
    .bind(id)
    .fetch_all(pool)
    .await)?;
    deployment["incidents"] = json!(incidents);
    Ok(Json(deployment))
}
