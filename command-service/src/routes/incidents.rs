//! Incidents: opened (optionally linked to the deployment that caused them) and resolved.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use release_pilot_domain::ids::{DeploymentId, EnvironmentName, IncidentId, ServiceName};
use release_pilot_domain::incident::{
    Incident, IncidentCommand, OpenIncident, ResolveIncident, Severity,
};
use release_pilot_domain::roles::Role;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{answer, exec, or_now};
use crate::auth::{allow, Caller};
use crate::error::ApiError;
use crate::extract::CommandRequest;
use crate::state::AppState;

const RESPONDERS: &[Role] = &[Role::Ci, Role::IncidentCommander, Role::Admin];

/// Routes under `/v1/incidents`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/incidents", post(open))
        .route("/v1/incidents/{id}/resolve", post(resolve))
        .route_layer(allow(RESPONDERS))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenBody {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    service: ServiceName,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    environment: EnvironmentName,
    #[schema(value_type = crate::openapi::SeveritySchema)]
    severity: Severity,
    title: String,
    #[schema(value_type = Option<uuid::Uuid>)]
    deployment_id: Option<DeploymentId>,
    opened_at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    post,
    path = "/v1/incidents",
    tag = "incidents",
    summary = "Open an incident.",
    request_body = OpenBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 201, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn open(
    State(state): State<AppState>,
    caller: Caller,
    request: CommandRequest<OpenBody>,
) -> Result<Response, ApiError> {
    answer(&state, &caller, &request, || async {
        let body = &request.body;
        let id = IncidentId::from_uuid(Uuid::now_v7());
        let command = IncidentCommand::Open(OpenIncident {
            incident_id: id,
            service: body.service.clone(),
            environment: body.environment.clone(),
            severity: body.severity,
            title: body.title.clone(),
            deployment_id: body.deployment_id,
            opened_at: or_now(body.opened_at),
            actor: caller.subject.clone(),
        });
        exec::<Incident, _>(
            &state,
            &caller,
            &request,
            "OpenIncident",
            &id.to_string(),
            command,
        )
        .await?;
        Ok((StatusCode::CREATED, json!({ "incident_id": id })))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveBody {
    resolved_at: Option<DateTime<Utc>>,
    resolution: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/incidents/{id}/resolve",
    tag = "incidents",
    summary = "Resolve an incident.",
    request_body = ResolveBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 200, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<ResolveBody>,
) -> Result<Response, ApiError> {
    let id = IncidentId::parse(&id)
        .map_err(|_| ApiError::not_found("incident_not_found", "incident not found"))?;
    answer(&state, &caller, &request, || async {
        let command = IncidentCommand::Resolve(ResolveIncident {
            resolved_at: or_now(request.body.resolved_at),
            resolution: request.body.resolution.clone(),
            actor: caller.subject.clone(),
        });
        exec::<Incident, _>(
            &state,
            &caller,
            &request,
            "ResolveIncident",
            &id.to_string(),
            command,
        )
        .await?;
        Ok((
            StatusCode::OK,
            json!({ "incident_id": id, "resolved": true }),
        ))
    })
    .await
}
