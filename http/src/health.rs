//! Liveness and readiness, the same on every HTTP service.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use release_pilot_ledger::db::Db;
use release_pilot_ledger::on;

/// `/health`, `/live`, `/ready`, `/health/detailed` over `pool`.
pub fn router<S: Clone + Send + Sync + 'static>(db: Db) -> Router<S> {
    Router::new()
        .route("/live", get(live))
        .route("/health", get(ready))
        .route("/ready", get(ready))
        .route("/health/detailed", get(detailed))
        .with_state(db)
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn database_ok(db: &Db) -> bool {
    on!(db, |pool| sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .is_ok())
}

async fn ready(State(db): State<Db>) -> (StatusCode, Json<Value>) {
    if database_ok(&db).await {
        (StatusCode::OK, Json(json!({ "status": "ok" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": "down" })),
        )
    }
}

async fn detailed(State(db): State<Db>) -> (StatusCode, Json<Value>) {
    let database = database_ok(&db).await;
    let head = release_pilot_ledger::db::head(&db)
        .await
        .ok()
        .map(|(p, _)| p);
    let unsealed: Option<i64> = on!(&db, |pool| {
        sqlx::query_scalar(
            "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM ledger l WHERE l.global_position = e.global_position)",
        )
        .fetch_one(pool)
        .await
        .ok()
    });
    let projections: Vec<(String, i64, Option<i64>, Option<String>)> = on!(&db, |pool| {
        sqlx::query_as(
            "SELECT projection, position, failed_at_position, failure FROM projection_checkpoints ORDER BY projection",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default()
    });
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
