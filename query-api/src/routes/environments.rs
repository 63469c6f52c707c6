//! The environment board and each environment's history, bitemporally: `as_of` is world
//! time (when deployments and rollbacks finished, as reported), `known_at` is ledger time
//! (what had been recorded by then).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use release_pilot_http::error::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::params::{Params, Time};
use crate::state::QueryState;

/// Routes under `/v1/environments`.
pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/v1/environments", get(board))
        .route("/v1/environments/{service}/{environment}", get(one))
        .route(
            "/v1/environments/{service}/{environment}/history",
            get(history),
        )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct BoardParams {
    /// Only this service.
    service: Option<String>,
    /// World time (default now).
    #[param(value_type = Option<String>)]
    as_of: Option<Time>,
    /// Ledger time (default now).
    #[param(value_type = Option<String>)]
    known_at: Option<Time>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsOfParams {
    /// World time (default now).
    #[param(value_type = Option<String>)]
    as_of: Option<Time>,
    /// Ledger time (default now).
    #[param(value_type = Option<String>)]
    known_at: Option<Time>,
}

/// The live version of every service × environment at `as_of`, from what was recorded
/// by `known_at`: the latest version that became live at or before `as_of`.
const LIVE_SQL: &str = "SELECT DISTINCT ON (service, environment) service, environment, version, \
     release_id, deployment_id, valid_from, recorded_at, cause, actor, position \
     FROM rm_environment_history \
     WHERE valid_from <= $1 AND recorded_at <= $2 \
       AND ($3::text IS NULL OR service = $3) AND ($4::text IS NULL OR environment = $4) \
     ORDER BY service, environment, valid_from DESC, position DESC";

fn live_json(row: &PgRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "service": row.try_get::<String, _>("service")?,
        "environment": row.try_get::<String, _>("environment")?,
        "version": row.try_get::<String, _>("version")?,
        "release_id": row.try_get::<uuid::Uuid, _>("release_id")?,
        "deployment_id": row.try_get::<uuid::Uuid, _>("deployment_id")?,
        "since": row.try_get::<DateTime<Utc>, _>("valid_from")?,
        "by": row.try_get::<Option<String>, _>("actor")?,
        "cause": row.try_get::<String, _>("cause")?,
        "recorded_at": row.try_get::<DateTime<Utc>, _>("recorded_at")?,
        "position": row.try_get::<i64, _>("position")?,
    }))
}

fn clocks(as_of: Option<Time>, known_at: Option<Time>) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now();
    (as_of.map_or(now, |t| t.0), known_at.map_or(now, |t| t.0))
}

#[utoipa::path(get, path = "/v1/environments", tag = "environments", params(BoardParams),
    summary = "The environment board: what is live in every service × environment, as of a time.",
    responses((status = 200, description = "the board", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn board(
    State(state): State<QueryState>,
    Params(p): Params<BoardParams>,
) -> Result<Json<Value>, ApiError> {
    if let Some(service) = &p.service {
        crate::routes::releases::known_service(&state, service).await?;
    }
    let (as_of, known_at) = clocks(p.as_of, p.known_at);
    let rows = sqlx::query(LIVE_SQL)
        .bind(as_of)
        .bind(known_at)
        .bind(&p.service)
        .bind(None::<String>)
        .fetch_all(&state.pool)
        .await?;
    let items = rows.iter().map(live_json).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(
        json!({"as_of": as_of, "known_at": known_at, "items": items}),
    ))
}

async fn known_environment(
    state: &QueryState,
    service: &str,
    environment: &str,
) -> Result<(), ApiError> {
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rm_environment_history WHERE service = $1 AND environment = $2)",
    )
    .bind(service)
    .bind(environment)
    .fetch_one(&state.pool)
    .await?;
    if known {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "environment_not_found",
            format!("nothing was ever live in {service}/{environment}"),
        ))
    }
}

#[utoipa::path(get, path = "/v1/environments/{service}/{environment}", tag = "environments",
    params(("service" = String, Path), ("environment" = String, Path), AsOfParams),
    summary = "What was live in one service × environment, as of a time.",
    responses((status = 200, description = "the live version, or null", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn one(
    State(state): State<QueryState>,
    Path((service, environment)): Path<(String, String)>,
    Params(p): Params<AsOfParams>,
) -> Result<Json<Value>, ApiError> {
    known_environment(&state, &service, &environment).await?;
    let (as_of, known_at) = clocks(p.as_of, p.known_at);
    let row = sqlx::query(LIVE_SQL)
        .bind(as_of)
        .bind(known_at)
        .bind(&service)
        .bind(&environment)
        .fetch_optional(&state.pool)
        .await?;
    let live = row.as_ref().map(live_json).transpose()?;
    Ok(Json(json!({
        "service": service, "environment": environment,
        "as_of": as_of, "known_at": known_at, "live": live,
    })))
}

#[utoipa::path(get, path = "/v1/environments/{service}/{environment}/history", tag = "environments",
    params(("service" = String, Path), ("environment" = String, Path), AsOfParams),
    summary = "Every version that was live, with world-time validity as known at a time.",
    responses((status = 200, description = "the history, oldest first", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn history(
    State(state): State<QueryState>,
    Path((service, environment)): Path<(String, String)>,
    Params(p): Params<AsOfParams>,
) -> Result<Json<Value>, ApiError> {
    known_environment(&state, &service, &environment).await?;
    let (as_of, known_at) = clocks(p.as_of, p.known_at);
    let rows = sqlx::query(
        "SELECT service, environment, version, release_id, deployment_id, valid_from, recorded_at, cause, actor, position, \
                lead(valid_from) OVER (ORDER BY valid_from, position) AS valid_to \
         FROM rm_environment_history \
         WHERE service = $1 AND environment = $2 AND recorded_at <= $3 AND valid_from <= $4 \
         ORDER BY valid_from, position",
    )
    .bind(&service)
    .bind(&environment)
    .bind(known_at)
    .bind(as_of)
    .fetch_all(&state.pool)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut item = live_json(row)?;
        item["until"] = json!(row.try_get::<Option<DateTime<Utc>>, _>("valid_to")?);
        items.push(item);
    }
    Ok(Json(json!({
        "service": service, "environment": environment,
        "as_of": as_of, "known_at": known_at, "items": items,
    })))
}
