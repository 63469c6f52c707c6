//! The OpenAPI 3.1 document of the command API, generated from the handlers' annotations
//! and served at `/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::routes::{catalogue, deployments, environments, incidents, releases};
use crate::state::AppState;

use release_pilot_http::openapi::BearerAuth;
pub use release_pilot_http::openapi::Problem;

/// The problems every command may answer with.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Describes responses; `ApiError` builds them.
pub enum Problems {
    /// Not JSON, or an unreadable header.
    #[response(
        status = 400,
        description = "malformed request",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    /// No, unknown or revoked token.
    #[response(
        status = 401,
        description = "no or bad token",
        content_type = "application/problem+json"
    )]
    Unauthenticated(Problem),
    /// The token's roles do not allow the route.
    #[response(
        status = 403,
        description = "role not allowed",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    /// Unknown release, deployment or incident.
    #[response(
        status = 404,
        description = "not found",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    /// A state conflict or a policy refusal.
    #[response(
        status = 409,
        description = "conflict or policy refusal",
        content_type = "application/problem+json"
    )]
    Conflict(Problem),
    /// The body is over the limit.
    #[response(
        status = 413,
        description = "body too large",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    /// The body is not JSON.
    #[response(
        status = 415,
        description = "unsupported media type",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
    /// Well-formed but invalid content.
    #[response(
        status = 422,
        description = "invalid content",
        content_type = "application/problem+json"
    )]
    Invalid(Problem),
    /// PostgreSQL is unavailable.
    #[response(
        status = 503,
        description = "database unavailable",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Release Pilot command API", description = "Commands that CI systems, approvers and operators send to the release ledger. Errors are RFC 7807 problem+json with a stable `code`."),
    paths(
        releases::create, releases::record_gate, releases::bypass_gate, releases::request_approval,
        releases::decide, releases::approve_hotfix, releases::withdraw, releases::clearance,
        deployments::start, deployments::canary, deployments::health, deployments::switch_traffic,
        deployments::complete, deployments::fail, deployments::rollback, deployments::rollback_complete,
        incidents::open, incidents::resolve,
        environments::toggle_flag, environments::start_freeze, environments::end_freeze,
        catalogue::define_policy, catalogue::register_requirement, catalogue::update_requirement,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}

/// Deployment strategies, as the API accepts them.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Describes the wire format of the domain's `Strategy`.
pub enum StrategySchema {
    /// All at once.
    Standard,
    /// Weighted stages with health criteria.
    Canary,
    /// Side by side, then a traffic switch.
    BlueGreen,
    /// The emergency lane.
    Hotfix,
}

/// Incident severities (`sev1`…`sev4` are accepted too).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Describes the wire format of the domain's `Severity`.
pub enum SeveritySchema {
    /// Customer-facing outage.
    Critical,
    /// Major degradation.
    High,
    /// Partial degradation.
    Medium,
    /// Minor issue.
    Low,
}

/// An approver's decision.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Describes the wire format of the domain's `Decision`.
pub enum DecisionSchema {
    /// Approve.
    Approve,
    /// Reject.
    Reject,
}

/// A gate status reported by CI.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Describes the wire format of the domain's `GateStatus`.
pub enum GateStatusSchema {
    /// Passed.
    Passed,
    /// Failed.
    Failed,
}
