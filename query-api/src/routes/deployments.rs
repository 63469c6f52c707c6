//! Deployments, with their outcome and DORA facts.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use release_pilot_http::error::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::Row;
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

fn deployment_json(row: &PgRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "deployment_id": row.try_get::<Uuid, _>("deployment_id")?,
        "service": row.try_get::<String, _>("service")?,
        "environment": row.try_get::<String, _>("environment")?,
        "production": row.try_get::<bool, _>("production")?,
        "release_id": row.try_get::<Uuid, _>("release_id")?,
        "version": row.try_get::<String, _>("version")?,
        "strategy": row.try_get::<String, _>("strategy")?,
        "status": row.try_get::<String, _>("status")?,
        "started_at": row.try_get::<DateTime<Utc>, _>("started_at")?,
        "completed_at": row.try_get::<Option<DateTime<Utc>>, _>("completed_at")?,
        "finished_at": row.try_get::<Option<DateTime<Utc>>, _>("finished_at")?,
        "failed_at": row.try_get::<Option<DateTime<Utc>>, _>("failed_at")?,
        "restored_at": row.try_get::<Option<DateTime<Utc>>, _>("restored_at")?,
        "remediates_incident": row.try_get::<Option<Uuid>, _>("remediates_incident")?,
        "planned": row.try_get::<bool, _>("planned")?,
        "recorded_at": row.try_get::<DateTime<Utc>, _>("recorded_at")?,
    }))
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
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM rm_dora_deployments \
         WHERE ($1::text IS NULL OR service = $1) AND ($2::text IS NULL OR environment = $2) \
           AND ($3::timestamptz IS NULL OR started_at >= $3) AND ($4::timestamptz IS NULL OR started_at < $4) \
           AND ($5::text IS NULL OR status = $5) \
           AND ($6::timestamptz IS NULL OR (started_at, deployment_id) < ($6, $7)) \
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
    .fetch_all(&state.pool)
    .await?;
    let items = rows
        .iter()
        .map(deployment_json)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if i64::try_from(rows.len()).unwrap_or(0) == limit {
        match rows.last() {
            Some(row) => Some(encode_cursor(
                row.try_get("started_at")?,
                row.try_get("deployment_id")?,
            )),
            None => None,
        }
    } else {
        None
    };
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
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM rm_dora_deployments WHERE deployment_id = $1"
    ))
    .bind(id)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("deployment_not_found", format!("no deployment {id}")))?;
    let mut deployment = deployment_json(&row)?;
    let incidents: Vec<LinkedIncident> = sqlx::query_as(
        "SELECT incident_id, severity, opened_at, resolved_at FROM rm_dora_incidents \
         WHERE deployment_id = $1 ORDER BY opened_at",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await?;
    deployment["incidents"] = json!(incidents);
    Ok(Json(deployment))
}
