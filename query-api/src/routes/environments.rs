//! The environment board and each environment's history, bitemporally: `as_of` is world
//! time (when deployments and rollbacks finished, as reported), `known_at` is ledger time
//! (what had been recorded by then).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use release_pilot_http::error::ApiError;
use release_pilot_ledger::on;
use serde::Deserialize;
use serde_json::{json, Value};

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
       AND ($3 IS NULL OR service = $3) AND ($4 IS NULL OR environment = $4) \
     ORDER BY service, environment, valid_from DESC, position DESC";

/// [`LIVE_SQL`] for SQLite, which has no `DISTINCT ON`: the first row of each
/// service × environment by the same order.
const LIVE_SQL_SQLITE: &str = "SELECT service, environment, version, release_id, deployment_id, \
     valid_from, recorded_at, cause, actor, position FROM ( \
       SELECT *, row_number() OVER (PARTITION BY service, environment \
                                    ORDER BY valid_from DESC, position DESC) AS rank \
       FROM rm_environment_history \
       WHERE valid_from <= $1 AND recorded_at <= $2 \
         AND ($3 IS NULL OR service = $3) AND ($4 IS NULL OR environment = $4)) \
     WHERE rank = 1 ORDER BY service, environment";

/// A version that was live.
#[derive(Debug, sqlx::FromRow)]
struct LiveRow {
    service: String,
    environment: String,
    version: String,
    release_id: uuid::Uuid,
    deployment_id: uuid::Uuid,
    valid_from: DateTime<Utc>,
    actor: Option<String>,
    cause: String,
    recorded_at: DateTime<Utc>,
    position: i64,
}

impl LiveRow {
    fn json(&self) -> Value {
        json!({
            "service": self.service,
            "environment": self.environment,
            "version": self.version,
            "release_id": self.release_id,
            "deployment_id": self.deployment_id,
            "since": self.valid_from,
            "by": self.actor,
            "cause": self.cause,
            "recorded_at": self.recorded_at,
            "position": self.position,
        })
    }
}

/// A version that was live, and until when.
#[derive(Debug, sqlx::FromRow)]
struct HistoryRow {
    #[sqlx(flatten)]
    live: LiveRow,
    valid_to: Option<DateTime<Utc>>,
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
    let rows: Vec<LiveRow> = on!(&state.db, |pool, lite| {
        sqlx::query_as(if lite { LIVE_SQL_SQLITE } else { LIVE_SQL })
            .bind(as_of)
            .bind(known_at)
            .bind(&p.service)
            .bind(None::<String>)
            .fetch_all(pool)
            .await?
    });
    let items: Vec<Value> = rows.iter().map(LiveRow::json).collect();
    Ok(Json(
        json!({"as_of": as_of, "known_at": known_at, "items": items}),
    ))
}

async fn known_environment(
    state: &QueryState,
    service: &str,
    environment: &str,
) -> Result<(), ApiError> {
    let known: bool = on!(&state.db, |pool| {
        sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rm_environment_history WHERE service = $1 AND environment = $2)",
    )
    .bind(service)
    .bind(environment)
    .fetch_one(pool)
        .await
    })?;
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
    let row: Option<LiveRow> = on!(&state.db, |pool, lite| {
        sqlx::query_as(if lite { LIVE_SQL_SQLITE } else { LIVE_SQL })
            .bind(as_of)
            .bind(known_at)
            .bind(&service)
            .bind(&environment)
            .fetch_optional(pool)
            .await?
    });
    let live = row.as_ref().map(LiveRow::json);
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
    let rows: Vec<HistoryRow> = on!(&state.db, |pool| {
        sqlx::query_as(
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
        .fetch_all(pool)
        .await?
    });
    let items: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut item = row.live.json();
            item["until"] = json!(row.valid_to);
            item
        })
        .collect();
    Ok(Json(json!({
        "service": service, "environment": environment,
        "as_of": as_of, "known_at": known_at, "items": items,
    })))
}
