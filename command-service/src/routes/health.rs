//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::AppState;

/// `/health`, `/live`, `/ready`, `/health/detailed`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/live", get(live))
        .route("/health", get(ready))
        .route("/ready", get(ready))
        .route("/health/detailed", get(detailed))
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn database_ok(state: &AppState) -> bool {
    sqlx::query("SELECT 1").execute(&state.pool).await.is_ok()
}

async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if database_ok(&state).await {
        (StatusCode::OK, Json(json!({ "status": "ok" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": "down" })),
        )
    }
}

async fn detailed(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = database_ok(&state).await;
    let head = release_pilot_ledger::db::head(&state.pool)
        .await
        .ok()
        .map(|(p, _)| p);
    let unsealed: Option<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM ledger l WHERE l.global_position = e.global_position)",
    )
    .fetch_one(&state.pool)
    .await
    .ok();
    let projections: Vec<(String, i64, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT projection, position, failed_at_position, failure FROM projection_checkpoints ORDER BY projection",
    )
    .fetch_all(&state.pool)
    .await
    .unwrap_or_default();
    let projections: Vec<Value> = projections
        .into_iter()
        .map(|(name, position, failed_at, failure)| {
            json!({
                "projection": name,
                "position": position,
                "lag": head.map(|h| h - position),
                "stopped_at": failed_at,
                "failure": failure,
            })
        })
        .collect();
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if database { "ok" } else { "unavailable" },
            "database": if database { "up" } else { "down" },
            "ledger": { "head": head, "unsealed_events": unsealed },
            "projections": projections,
        })),
    )
}
