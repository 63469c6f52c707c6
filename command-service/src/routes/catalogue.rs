//! Policies per environment and the requirement catalogue (admins).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{post, put};
use axum::Router;
use chrono::Utc;
use release_pilot_domain::ids::{EnvironmentName, RequirementId};
use release_pilot_domain::policy::{DefinePolicy, Policy, PolicyCommand, PolicyRules};
use release_pilot_domain::requirement::{
    RegisterRequirement, Requirement, RequirementCommand, UpdateRequirement,
};
use release_pilot_domain::roles::Role;
use serde::Deserialize;
use serde_json::json;

use super::{answer, exec};
use crate::auth::{allow, Caller};
use crate::error::ApiError;
use crate::extract::CommandRequest;
use crate::state::AppState;

/// `PUT /v1/policies/{environment}` and `POST /v1/requirements`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/policies/{environment}", put(define_policy))
        .route("/v1/requirements", post(register_requirement))
        .route("/v1/requirements/{id}", put(update_requirement))
        .route_layer(allow(&[Role::Admin]))
}

#[utoipa::path(
    put,
    path = "/v1/policies/{environment}",
    tag = "catalogue",
    summary = "Define the next version of an environment policy.",
    request_body(content = Object, content_type = "application/json"),
    params(("environment" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 200, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn define_policy(
    State(state): State<AppState>,
    Path(environment): Path<String>,
    caller: Caller,
    request: CommandRequest<PolicyRules>,
) -> Result<Response, ApiError> {
    let environment = EnvironmentName::parse(&environment)?;
    answer(&state, &caller, &request, || async {
        let command = PolicyCommand::Define(DefinePolicy {
            environment: environment.clone(),
            rules: request.body.clone(),
            actor: caller.subject.clone(),
            actor_roles: caller.roles.iter().copied().collect(),
            requested_at: Utc::now(),
        });
        let executed = exec::<Policy, _>(
            &state,
            &caller,
            &request,
            "DefinePolicy",
            environment.as_str(),
            command,
        )
        .await?;
        Ok((
            StatusCode::OK,
            json!({ "environment": environment, "version": executed.state.version }),
        ))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequirementBody {
    #[schema(value_type = String, pattern = r"^[A-Za-z][A-Za-z0-9_]{0,31}-[0-9]{1,12}$")]
    id: RequirementId,
    title: String,
    category: String,
}

#[utoipa::path(
    post,
    path = "/v1/requirements",
    tag = "catalogue",
    summary = "Register a requirement.",
    request_body = RequirementBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 201, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn register_requirement(
    State(state): State<AppState>,
    caller: Caller,
    request: CommandRequest<RequirementBody>,
) -> Result<Response, ApiError> {
    answer(&state, &caller, &request, || async {
        let body = &request.body;
        let command = RequirementCommand::Register(RegisterRequirement {
            id: body.id.clone(),
            title: body.title.clone(),
            category: body.category.clone(),
            actor: caller.subject.clone(),
            requested_at: Utc::now(),
        });
        exec::<Requirement, _>(
            &state,
            &caller,
            &request,
            "RegisterRequirement",
            body.id.as_str(),
            command,
        )
        .await?;
        Ok((StatusCode::CREATED, json!({ "id": body.id })))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequirementUpdateBody {
    title: String,
    category: String,
}

#[utoipa::path(
    put,
    path = "/v1/requirements/{id}",
    tag = "catalogue",
    summary = "Change a requirement's title or category.",
    request_body = RequirementUpdateBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "done", body = Object), crate::openapi::Problems),
    security(("bearer" = []))
)]
pub(crate) async fn update_requirement(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<RequirementUpdateBody>,
) -> Result<Response, ApiError> {
    let id = RequirementId::parse(&id)
        .map_err(|_| ApiError::not_found("requirement_not_found", "requirement not found"))?;
    answer(&state, &caller, &request, || async {
        let command = RequirementCommand::Update(UpdateRequirement {
            title: request.body.title.clone(),
            category: request.body.category.clone(),
            actor: caller.subject.clone(),
            requested_at: Utc::now(),
        });
        exec::<Requirement, _>(
            &state,
            &caller,
            &request,
            "UpdateRequirement",
            id.as_str(),
            command,
        )
        .await?;
        Ok((StatusCode::OK, json!({ "id": id })))
    })
    .await
}
