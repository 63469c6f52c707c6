//! The OpenAPI 3.1 document of the query API, generated from the handlers' annotations
//! and served at `/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use release_pilot_http::openapi::{BearerAuth, Problem};
use utoipa::OpenApi;

use crate::routes::{audit, deployments, dora, environments, exceptions, releases, trace};
use crate::state::QueryState;

/// The problems every read may answer with.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Describes responses; `ApiError` builds them.
pub enum ReadProblems {
    /// A malformed parameter: unparseable or inverted times, a bad cursor, an unknown
    /// parameter.
    #[response(
        status = 400,
        description = "bad parameter",
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
    /// Unknown release, deployment, service, environment or requirement.
    #[response(
        status = 404,
        description = "not found",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    /// PostgreSQL is unavailable, or no checkpoint covers an export yet.
    #[response(
        status = 503,
        description = "unavailable",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Release Pilot query API", description = "Reads of the release ledger: releases and environments as of any time, deployments, DORA metrics, traceability, the audit trail and signed exports. Errors are RFC 7807 problem+json with a stable `code`."),
    paths(
        releases::list, releases::one, releases::timeline,
        environments::board, environments::one, environments::history,
        deployments::list, deployments::one,
        dora::metrics,
        trace::requirement, trace::deployment, trace::matrix, trace::coverage,
        audit::list, audit::export_period, audit::checkpoint, audit::public_key,
        exceptions::report,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub fn router() -> Router<QueryState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
