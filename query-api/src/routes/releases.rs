//! Releases: the list, one release as of a time, and its timeline.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use release_pilot_http::error::ApiError;
use release_pilot_ledger::on;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::params::{decode_cursor, encode_cursor, limit, uuid_or_404, Params, Time};
use crate::state::QueryState;

/// Routes under `/v1/releases`.
pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/v1/releases", get(list))
        .route("/v1/releases/{id}", get(one))
        .route("/v1/releases/{id}/timeline", get(timeline))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    /// Only this service's releases.
    service: Option<String>,
    /// The cursor from the previous page's `next`.
    after: Option<String>,
    /// Page size (1–1000, default 100).
    limit: Option<i64>,
}

/// Refuses a service nothing is known about with a 404.
pub(crate) async fn known_service(state: &QueryState, service: &str) -> Result<(), ApiError> {
    let known: bool = on!(&state.db, |pool| sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rm_releases WHERE service = $1) \
             OR EXISTS (SELECT 1 FROM rm_environment_history WHERE service = $1)",
    )
    .bind(service)
    .fetch_one(pool)
    .await)?;
    if known {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "service_not_found",
            format!("no release or deployment of a service named {service:?} is recorded"),
        ))
    }
}

#[utoipa::path(get, path = "/v1/releases", tag = "releases", params(ListParams),
    summary = "Releases, newest first, in pages.",
    responses((status = 200, description = "a page of releases and the cursor of the next", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<QueryState>,
    Params(p): Params<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(p.limit)?;
    if let Some(service) = &p.service {
        known_service(&state, service).await?;
    }
    let cursor = p.after.as_deref().map(decode_cursor).transpose()?;
    let rows: Vec<ReleaseRow> = on!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT release_id, service, version, created_at, created_by, gates, approvals, withdrawn \
             FROM rm_releases WHERE ($1 IS NULL OR service = $1) \
               AND ($2 IS NULL OR (created_at, release_id) < ($2, $3)) \
             ORDER BY created_at DESC, release_id DESC LIMIT $4",
        )
        .bind(&p.service)
        .bind(cursor.map(|c| c.0))
        .bind(cursor.map(|c| c.1))
        .bind(limit)
        .fetch_all(pool)
        .await?
    });
    let last = rows.last().map(|r| (r.created_at, r.release_id));
    let items: Vec<Value> = rows.into_iter().map(|row| json!(row)).collect();
    let next = (i64::try_from(items.len()).unwrap_or(0) == limit)
        .then(|| last.map(|(at, id)| encode_cursor(at, id)))
        .flatten();
    Ok(Json(json!({"items": items, "next": next})))
}

/// A release as the list shows it.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
struct ReleaseRow {
    release_id: Uuid,
    service: String,
    version: String,
    created_at: DateTime<Utc>,
    created_by: String,
    gates: Value,
    approvals: Value,
    withdrawn: bool,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsOfParams {
    /// World time: the release as it stood at this time (default now).
    #[param(value_type = Option<String>)]
    as_of: Option<Time>,
    /// Ledger time: only what the ledger had recorded by this time (default now).
    #[param(value_type = Option<String>)]
    known_at: Option<Time>,
}

#[utoipa::path(get, path = "/v1/releases/{id}", tag = "releases", params(("id" = String, Path), AsOfParams),
    summary = "One release: gates, approvals and withdrawal, as of a time.",
    responses((status = 200, description = "the release", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn one(
    State(state): State<QueryState>,
    Path(id): Path<String>,
    Params(p): Params<AsOfParams>,
) -> Result<Json<Value>, ApiError> {
    let id = uuid_or_404(&id, "release_not_found", "release")?;
    // Release events carry no domain time of their own: what was true at T is what the
    // ledger had recorded by T, so both clocks bound the same column.
    let bound = [p.as_of, p.known_at]
        .into_iter()
        .flatten()
        .map(|t| t.0)
        .min()
        .unwrap_or_else(Utc::now);
    let head: Option<(String, String, DateTime<Utc>, String)> = on!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT service, version, created_at, created_by FROM rm_releases WHERE release_id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
    });
    let (service, version, created_at, created_by) =
        head.ok_or_else(|| ApiError::not_found("release_not_found", format!("no release {id}")))?;
    if created_at > bound {
        return Err(ApiError::not_found(
            "release_not_found",
            format!(
                "release {id} was recorded at {}, after {}",
                created_at.to_rfc3339(),
                bound.to_rfc3339()
            ),
        ));
    }
    let events: Vec<(String, Value)> = on!(&state.db, |pool| sqlx::query_as(
        "SELECT event_type, detail FROM rm_release_timeline \
         WHERE release_id = $1 AND recorded_at <= $2 ORDER BY position",
    )
    .bind(id)
    .bind(bound)
    .fetch_all(pool)
    .await)?;
    let mut gates = Map::new();
    let mut approvals: Map<String, Value> = Map::new();
    let mut withdrawn = false;
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    for (event_type, detail) in &events {
        match event_type.as_str() {
            "GateEvaluated" => {
                gates.insert(text(detail, "gate"), detail["status"].clone());
            }
            "GateBypassed" => {
                gates.insert(text(detail, "gate"), json!("bypassed"));
            }
            "ApprovalGranted" | "ApprovalRejected" => {
                let decision = if event_type == "ApprovalGranted" {
                    "approve"
                } else {
                    "reject"
                };
                if let Value::Object(per_env) = approvals
                    .entry(text(detail, "environment"))
                    .or_insert_with(|| json!({}))
                {
                    per_env.insert(text(detail, "approver"), json!(decision));
                }
            }
            "ReleaseWithdrawn" => withdrawn = true,
            _ => {}
        }
    }
    Ok(Json(json!({
        "release_id": id,
        "service": service,
        "version": version,
        "created_at": created_at,
        "created_by": created_by,
        "as_of": bound,
        "gates": gates,
        "approvals": approvals,
        "withdrawn": withdrawn,
    })))
}

/// One event of a release's timeline.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
struct TimelineRow {
    position: i64,
    recorded_at: DateTime<Utc>,
    event_type: String,
    actor: Option<String>,
    detail: Value,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimelineParams {
    /// Only events after this ledger position.
    after: Option<i64>,
    /// Page size (1–1000, default 100).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/releases/{id}/timeline", tag = "releases", params(("id" = String, Path), TimelineParams),
    summary = "A release's events in ledger order, with who did what.",
    responses((status = 200, description = "the timeline", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn timeline(
    State(state): State<QueryState>,
    Path(id): Path<String>,
    Params(p): Params<TimelineParams>,
) -> Result<Json<Value>, ApiError> {
    let id = uuid_or_404(&id, "release_not_found", "release")?;
    let limit = limit(p.limit)?;
    let exists: bool = on!(&state.db, |pool| sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rm_releases WHERE release_id = $1)"
    )
    .bind(id)
    .fetch_one(pool)
    .await)?;
    if !exists {
        return Err(ApiError::not_found(
            "release_not_found",
            format!("no release {id}"),
        ));
    }
    let rows: Vec<TimelineRow> = on!(&state.db, |pool| sqlx::query_as(
        "SELECT position, recorded_at, event_type, actor, detail FROM rm_release_timeline \
         WHERE release_id = $1 AND position > $2 ORDER BY position LIMIT $3",
    )
    .bind(id)
    .bind(p.after.unwrap_or(0))
    .bind(limit)
    .fetch_all(pool)
    .await)?;
    let next = (i64::try_from(rows.len()).unwrap_or(0) == limit)
        .then(|| rows.last().map(|r| r.position))
        .flatten();
    let items = rows;
    Ok(Json(
        json!({"release_id": id, "items": items, "next": next}),
    ))
}
