//! The exceptions report (auditors and admins): production changes that left the
//! regular path, refused approvals, and hotfixes whose retroactive approvals are overdue.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use release_pilot_domain::roles::Role;
use release_pilot_http::auth::allow;
use release_pilot_http::error::ApiError;
use release_pilot_ledger::on;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::params::{check_window, Params, Time};
use crate::state::QueryState;

/// Who may read the report.
const READERS: &[Role] = &[Role::Auditor, Role::Admin];

/// The kinds of exception.
const KINDS: &[&str] = &[
    "gate_bypassed",
    "deployed_with_bypassed_gates",
    "hotfix_lane",
    "approval_refused",
    "retroactive_approval_overdue",
];

/// `GET /v1/exceptions`.
pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/v1/exceptions", get(report))
        .route_layer(allow(READERS))
}

/// One recorded exception.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
struct ExceptionRow {
    kind: String,
    position: i64,
    service: String,
    environment: Option<String>,
    release_id: Option<Uuid>,
    deployment_id: Option<Uuid>,
    actor: Option<String>,
    at: DateTime<Utc>,
    detail: Value,
}

/// A hotfix and its retroactive approvals.
#[derive(Debug, sqlx::FromRow)]
struct HotfixRow {
    deployment_id: Uuid,
    release_id: Uuid,
    service: String,
    environment: String,
    started_at: DateTime<Utc>,
    due: DateTime<Utc>,
    approvals_required: i32,
    approvers: Value,
    completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExceptionParams {
    /// At or after.
    #[param(value_type = Option<String>)]
    from: Option<Time>,
    /// Before.
    #[param(value_type = Option<String>)]
    to: Option<Time>,
    /// Only this kind.
    kind: Option<String>,
    /// Only this service.
    service: Option<String>,
    /// Only exceptions recorded after this ledger position (the previous page's `next`).
    after: Option<i64>,
    /// Page size (1–1000, default 100).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/exceptions", tag = "audit", params(ExceptionParams),
    summary = "Exceptions: bypassed gates, deployments through the hotfix lane or with bypassed gates, refused approvals, overdue retroactive approvals (auditor or admin).",
    responses((status = 200, description = "the report", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn report(
    State(state): State<QueryState>,
    Params(p): Params<ExceptionParams>,
) -> Result<Json<Value>, ApiError> {
    check_window(p.from, p.to)?;
    if let Some(kind) = &p.kind {
        if !KINDS.contains(&kind.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_kind",
                format!("kind {kind:?} is not one of {}", KINDS.join(", ")),
            ));
        }
    }
    let limit = crate::params::limit(p.limit)?;
    if p.after.is_some_and(|a| a < 0) {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            "after must be a position, 0 or more",
        ));
    }
    let now = Utc::now();
    let rows: Vec<ExceptionRow> = on!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT position, kind, service, environment, release_id, deployment_id, actor, at, detail FROM rm_exceptions \
             WHERE ($1 IS NULL OR at >= $1) AND ($2 IS NULL OR at < $2) \
               AND ($3 IS NULL OR kind = $3) AND ($4 IS NULL OR service = $4) \
               AND position > $5 ORDER BY position, kind LIMIT $6",
        )
        .bind(p.from.map(|t| t.0))
        .bind(p.to.map(|t| t.0))
        .bind(&p.kind)
        .bind(&p.service)
        .bind(p.after.unwrap_or(0))
        .bind(limit)
        .fetch_all(pool)
        .await
    })?;
    let next = (i64::try_from(rows.len()).unwrap_or(0) == limit)
        .then(|| rows.last().map(|r| r.position))
        .flatten();
    let items: Vec<Value> = rows.into_iter().map(|row| json!(row)).collect();
    let mut overdue_items = Vec::new();
    if p.kind
        .as_deref()
        .is_none_or(|k| k == "retroactive_approval_overdue")
    {
        // Overdue: the window passed with approvals incomplete, or they came late.
        let overdue: Vec<HotfixRow> = on!(&state.db, |pool| {
            sqlx::query_as(
                "SELECT deployment_id, release_id, service, environment, started_at, due, approvals_required, approvers, completed_at \
                 FROM rm_exception_hotfixes \
                 WHERE ((completed_at IS NULL AND due < $1) OR completed_at > due) \
                   AND ($2 IS NULL OR due >= $2) AND ($3 IS NULL OR due < $3) \
                   AND ($4 IS NULL OR service = $4) ORDER BY due",
            )
            .bind(now)
            .bind(p.from.map(|t| t.0))
            .bind(p.to.map(|t| t.0))
            .bind(&p.service)
            .fetch_all(pool)
        .await
        })?;
        for h in overdue {
            let state = if h.completed_at.is_some() {
                "approved_late"
            } else {
                "still_missing"
            };
            overdue_items.push(json!({
                "kind": "retroactive_approval_overdue", "service": h.service, "environment": h.environment,
                "release_id": h.release_id, "deployment_id": h.deployment_id, "at": h.due,
                "detail": {"hotfix_started_at": h.started_at, "due": h.due, "approvals_required": h.approvals_required,
                           "approved_by": h.approvers, "completed_at": h.completed_at, "state": state},
            }));
        }
    }
    Ok(Json(json!({
        "as_of": now,
        "items": items,
        "next": next,
        "overdue": overdue_items,
    })))
}
