//! Environment-wide commands: feature-flag toggles and ad-hoc change freezes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use release_pilot_domain::environment::{
    EndFreeze, Environment, EnvironmentCommand, StartFreeze, ToggleFeatureFlag,
};
use release_pilot_domain::ids::{EnvironmentName, FlagName, ServiceName};
use release_pilot_domain::roles::Role;
use serde::Deserialize;
use serde_json::json;

use super::{answer, exec};
use crate::auth::{allow, Caller};
use crate::error::ApiError;
use crate::extract::CommandRequest;
use crate::state::AppState;

/// Routes under `/v1/environments/{service}/{environment}`.
pub fn router() -> Router<AppState> {
    let flags = Router::new()
        .route(
            "/v1/environments/{service}/{environment}/flags/{flag}",
            post(toggle_flag),
        )
        .route_layer(allow(&[Role::Ci, Role::Admin]));
    let freezes = Router::new()
        .route(
            "/v1/environments/{service}/{environment}/freeze",
            post(start_freeze).delete(end_freeze),
        )
        .route_layer(allow(&[Role::IncidentCommander, Role::Admin]));
    flags.merge(freezes)
}

fn stream(
    service: &str,
    environment: &str,
) -> Result<(ServiceName, EnvironmentName, String), ApiError> {
    let service = ServiceName::parse(service)?;
    let environment = EnvironmentName::parse(environment)?;
    let id = format!("{service}/{environment}");
    Ok((service, environment, id))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlagBody {
    enabled: bool,
}

#[utoipa::path(
    post,
    path = "/v1/environments/{service}/{environment}/flags/{flag}",
    tag = "environments",
    summary = "Switch a feature flag on or off in an environment.",
    request_body = FlagBody,
    params(("service" = String, Path), ("environment" = String, Path), ("flag" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "done", body = Object), crate::openapi::Problems),
    security(("bearer" = []))
)]
pub(crate) async fn toggle_flag(
    State(state): State<AppState>,
    Path((service, environment, flag)): Path<(String, String, String)>,
    caller: Caller,
    request: CommandRequest<FlagBody>,
) -> Result<Response, ApiError> {
    let (service, environment, id) = stream(&service, &environment)?;
    let flag = FlagName::parse(&flag)?;
    answer(&state, &caller, &request, || async {
        let command = EnvironmentCommand::ToggleFeatureFlag(ToggleFeatureFlag {
            service,
            environment,
            flag: flag.clone(),
            enabled: request.body.enabled,
            actor: caller.subject.clone(),
            requested_at: Utc::now(),
        });
        exec::<Environment, _>(&state, &caller, &request, "ToggleFeatureFlag", &id, command)
            .await?;
        Ok((
            StatusCode::OK,
            json!({ "flag": flag, "enabled": request.body.enabled }),
        ))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FreezeBody {
    reason: String,
}

#[utoipa::path(
    post,
    path = "/v1/environments/{service}/{environment}/freeze",
    tag = "environments",
    summary = "Freeze changes to an environment (hotfixes may still pass, per policy).",
    request_body = FreezeBody,
    params(("service" = String, Path), ("environment" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "done", body = Object), crate::openapi::Problems),
    security(("bearer" = []))
)]
pub(crate) async fn start_freeze(
    State(state): State<AppState>,
    Path((service, environment)): Path<(String, String)>,
    caller: Caller,
    request: CommandRequest<FreezeBody>,
) -> Result<Response, ApiError> {
    let (service, environment, id) = stream(&service, &environment)?;
    answer(&state, &caller, &request, || async {
        let command = EnvironmentCommand::StartFreeze(StartFreeze {
            service,
            environment,
            reason: request.body.reason.clone(),
            actor: caller.subject.clone(),
            requested_at: Utc::now(),
        });
        exec::<Environment, _>(&state, &caller, &request, "StartFreeze", &id, command).await?;
        Ok((StatusCode::CREATED, json!({ "frozen": true })))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmptyBody {}

#[utoipa::path(
    delete,
    path = "/v1/environments/{service}/{environment}/freeze",
    tag = "environments",
    summary = "End the change freeze.",
    params(("service" = String, Path), ("environment" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "done", body = Object), crate::openapi::Problems),
    security(("bearer" = []))
)]
pub(crate) async fn end_freeze(
    State(state): State<AppState>,
    Path((service, environment)): Path<(String, String)>,
    caller: Caller,
    request: CommandRequest<EmptyBody>,
) -> Result<Response, ApiError> {
    let (service, environment, id) = stream(&service, &environment)?;
    answer(&state, &caller, &request, || async {
        let command = EnvironmentCommand::EndFreeze(EndFreeze {
            service,
            environment,
            actor: caller.subject.clone(),
            requested_at: Utc::now(),
        });
        exec::<Environment, _>(&state, &caller, &request, "EndFreeze", &id, command).await?;
        Ok((StatusCode::OK, json!({ "frozen": false })))
    })
    .await
}
