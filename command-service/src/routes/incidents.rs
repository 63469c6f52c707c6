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
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::CommandRequest;
use crate::state::AppState;

const RESPONDERS: &[Role] = &[Role::Ci, Role::IncidentCommander, Role::Admin];

/// Routes under `/v1/incidents`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/incidents", post(open))
        .route("/v1/incidents/{id}/resolve", post(resolve))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenBody {
    service: ServiceName,
    environment: EnvironmentName,
    severity: Severity,
    title: String,
    deployment_id: Option<DeploymentId>,
    opened_at: Option<DateTime<Utc>>,
}

async fn open(
    State(state): State<AppState>,
    caller: Caller,
    request: CommandRequest<OpenBody>,
) -> Result<Response, ApiError> {
    caller.require(RESPONDERS)?;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    resolved_at: Option<DateTime<Utc>>,
    resolution: Option<String>,
}

async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<ResolveBody>,
) -> Result<Response, ApiError> {
    caller.require(RESPONDERS)?;
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
