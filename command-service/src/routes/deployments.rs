//! Deployments: start (cleared against the policy in force), canary stages, health
//! samples with automatic rollback, blue-green switch, completion, failure, rollbacks.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use release_pilot_domain::environment::{
    AdvanceCanary, CompleteDeployment, CompleteRollback, Environment, EnvironmentCommand,
    EnvironmentEvent, FailDeployment, RecordHealth, StartDeployment, StartRollback, Strategy,
    SwitchTraffic,
};
use release_pilot_domain::health::HealthSample;
use release_pilot_domain::ids::{DeploymentId, EnvironmentName, IncidentId, ReleaseId};
use release_pilot_domain::release::Release;
use release_pilot_domain::roles::Role;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{answer, exec, or_now, policy_for};
use crate::auth::{allow, Caller};
use crate::error::ApiError;
use crate::extract::CommandRequest;
use crate::lookup;
use crate::state::AppState;

/// Who may drive deployments.
const DEPLOYERS: &[Role] = &[Role::Ci, Role::IncidentCommander, Role::Admin];

/// Routes under `/v1/deployments`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/deployments", post(start))
        .route("/v1/deployments/{id}/canary", post(canary))
        .route("/v1/deployments/{id}/health", post(health))
        .route("/v1/deployments/{id}/traffic-switch", post(switch_traffic))
        .route("/v1/deployments/{id}/complete", post(complete))
        .route("/v1/deployments/{id}/fail", post(fail))
        .route("/v1/deployments/{id}/rollback", post(rollback))
        .route(
            "/v1/deployments/{id}/rollback/complete",
            post(rollback_complete),
        )
        .route_layer(allow(DEPLOYERS))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartBody {
    #[schema(value_type = uuid::Uuid)]
    release_id: ReleaseId,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    environment: EnvironmentName,
    #[schema(value_type = crate::openapi::StrategySchema)]
    strategy: Strategy,
    #[schema(value_type = Option<uuid::Uuid>)]
    remediates_incident: Option<IncidentId>,
    started_at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    post,
    path = "/v1/deployments",
    tag = "deployments",
    summary = "Start a deployment, cleared against the policy in force.",
    request_body = StartBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 201, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn start(
    State(state): State<AppState>,
    caller: Caller,
    request: CommandRequest<StartBody>,
) -> Result<Response, ApiError> {
    answer(&state, &caller, &request, || async {
        let body = &request.body;
        let (release, _) = state
            .store
            .load::<Release>(&body.release_id.to_string())
            .await?;
        let facts = release.facts_for(&body.environment)?;
        let policy = policy_for(&state, &body.environment).await?;
        let deployment_id = DeploymentId::from_uuid(Uuid::now_v7());
        let stream = format!("{}/{}", facts.service, body.environment);
        let command = EnvironmentCommand::StartDeployment(StartDeployment {
            deployment_id,
            service: facts.service.clone(),
            environment: body.environment.clone(),
            release: facts,
            strategy: body.strategy,
            policy,
            remediates_incident: body.remediates_incident,
            started_at: or_now(body.started_at),
            actor: caller.subject.clone(),
            requested_at: Utc::now(),
        });
        let executed = exec::<Environment, _>(
            &state,
            &caller,
            &request,
            "StartDeployment",
            &stream,
            command,
        )
        .await?;
        let Some(EnvironmentEvent::DeploymentStarted {
            service,
            version,
            clearance,
            canary_stages,
            ..
        }) = executed.events.into_iter().next()
        else {
            return Err(ApiError::from(
                release_pilot_domain::DomainError::DeploymentNotFound,
            ));
        };
        Ok((
            StatusCode::CREATED,
            json!({
                "deployment_id": deployment_id,
                "release_id": body.release_id,
                "service": service,
                "environment": body.environment,
                "version": version.to_string(),
                "strategy": body.strategy,
                "clearance": clearance,
                "canary_stages": canary_stages,
            }),
        ))
    })
    .await
}

/// Resolves a deployment id from the path to its environment stream.
pub(crate) async fn stream_of(
    state: &AppState,
    id: &str,
) -> Result<(DeploymentId, String), ApiError> {
    let not_found = || ApiError::not_found("deployment_not_found", "deployment not found");
    let id = DeploymentId::parse(id).map_err(|_| not_found())?;
    let stream = lookup::environment_of(&state.db, id)
        .await?
        .ok_or_else(not_found)?;
    Ok((id, stream))
}

/// Runs one command on a deployment's environment stream and answers 200 with `reply`.
async fn on_deployment<T>(
    state: &AppState,
    caller: &Caller,
    request: &CommandRequest<T>,
    path_id: &str,
    name: &str,
    build: impl FnOnce(DeploymentId, &T) -> EnvironmentCommand,
    reply: impl FnOnce(DeploymentId, &[EnvironmentEvent], &Environment) -> Value,
) -> Result<Response, ApiError> {
    let (id, stream) = stream_of(state, path_id).await?;
    answer(state, caller, request, || async {
        let command = build(id, &request.body);
        let executed =
            exec::<Environment, _>(state, caller, request, name, &stream, command).await?;
        Ok((StatusCode::OK, reply(id, &executed.events, &executed.state)))
    })
    .await
}

fn status_of(id: DeploymentId, state: &Environment) -> Value {
    json!({
        "deployment_id": id,
        "status": state.deployments.get(&id).map(|s| s.as_str()),
        "live": state.live,
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CanaryBody {
    weight_percent: u8,
    at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/canary",
    tag = "deployments",
    summary = "Advance a canary to its next weight.",
    request_body = CanaryBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 200, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn canary(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<CanaryBody>,
) -> Result<Response, ApiError> {
    on_deployment(
        &state,
        &caller,
        &request,
        &id,
        "AdvanceCanary",
        |deployment_id, body| {
            EnvironmentCommand::AdvanceCanary(AdvanceCanary {
                deployment_id,
                weight_percent: body.weight_percent,
                at: or_now(body.at),
            })
        },
        |id, _, env| {
            json!({
                "deployment_id": id,
                "weight_percent": env.active.as_ref().map(|a| a.canary_weight()),
            })
        },
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SampleBody {
    at: Option<DateTime<Utc>>,
    error_rate_pct: Option<f64>,
    p95_ms: Option<f64>,
    health_ok: Option<bool>,
    memory_pct: Option<f64>,
    db_pool_pct: Option<f64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthBody {
    samples: Vec<SampleBody>,
}

#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/health",
    tag = "deployments",
    summary = "Record health samples; may trigger an automatic rollback.",
    request_body = HealthBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 200, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn health(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<HealthBody>,
) -> Result<Response, ApiError> {
    on_deployment(
        &state,
        &caller,
        &request,
        &id,
        "RecordHealth",
        |deployment_id, body| {
            let now = Utc::now();
            EnvironmentCommand::RecordHealth(RecordHealth {
                deployment_id,
                samples: body
                    .samples
                    .iter()
                    .map(|s| HealthSample {
                        at: s.at.unwrap_or(now),
                        error_rate_pct: s.error_rate_pct,
                        p95_ms: s.p95_ms,
                        health_ok: s.health_ok,
                        memory_pct: s.memory_pct,
                        db_pool_pct: s.db_pool_pct,
                    })
                    .collect(),
                requested_at: now,
            })
        },
        |id, events, _| {
            let rollback = events.iter().find_map(|e| match e {
                EnvironmentEvent::RollbackTriggered {
                    evidence, target, ..
                } => Some(json!({ "evidence": evidence, "target": target })),
                _ => None,
            });
            let recorded = events.iter().find_map(|e| match e {
                EnvironmentEvent::HealthSampled { samples, .. } => Some(samples.len()),
                _ => None,
            });
            json!({
                "deployment_id": id,
                "samples_recorded": recorded,
                "verdict": if rollback.is_some() { "rollback" } else { "healthy" },
                "rollback": rollback,
            })
        },
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AtBody {
    at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/traffic-switch",
    tag = "deployments",
    summary = "Switch blue-green traffic to the new version.",
    request_body = AtBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 200, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn switch_traffic(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<AtBody>,
) -> Result<Response, ApiError> {
    on_deployment(
        &state,
        &caller,
        &request,
        &id,
        "SwitchTraffic",
        |deployment_id, body| {
            EnvironmentCommand::SwitchTraffic(SwitchTraffic {
                deployment_id,
                at: or_now(body.at),
            })
        },
        |id, _, env| status_of(id, env),
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinishBody {
    finished_at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/complete",
    tag = "deployments",
    summary = "Complete a deployment.",
    request_body = FinishBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 200, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn complete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<FinishBody>,
) -> Result<Response, ApiError> {
    on_deployment(
        &state,
        &caller,
        &request,
        &id,
        "CompleteDeployment",
        |deployment_id, body| {
            EnvironmentCommand::CompleteDeployment(CompleteDeployment {
                deployment_id,
                finished_at: or_now(body.finished_at),
            })
        },
        |id, _, env| status_of(id, env),
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailBody {
    reason: String,
    finished_at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/fail",
    tag = "deployments",
    summary = "Fail a deployment.",
    request_body = FailBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 200, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn fail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<FailBody>,
) -> Result<Response, ApiError> {
    on_deployment(
        &state,
        &caller,
        &request,
        &id,
        "FailDeployment",
        |deployment_id, body| {
            EnvironmentCommand::FailDeployment(FailDeployment {
                deployment_id,
                reason: body.reason.clone(),
                finished_at: or_now(body.finished_at),
            })
        },
        |id, _, env| status_of(id, env),
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollbackBody {
    reason: String,
    started_at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/rollback",
    tag = "deployments",
    summary = "Start a rollback to the last successful version.",
    request_body = RollbackBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 200, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn rollback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<RollbackBody>,
) -> Result<Response, ApiError> {
    let actor = caller.subject.clone();
    on_deployment(
        &state,
        &caller,
        &request,
        &id,
        "StartRollback",
        |deployment_id, body| {
            EnvironmentCommand::StartRollback(StartRollback {
                deployment_id,
                reason: body.reason.clone(),
                started_at: or_now(body.started_at),
                actor,
            })
        },
        |id, events, env| {
            let target = events.iter().find_map(|e| match e {
                EnvironmentEvent::RollbackStarted { target, .. } => Some(target.clone()),
                _ => None,
            });
            json!({ "deployment_id": id, "status": env.deployments.get(&id).map(|s| s.as_str()), "target": target })
        },
    )
    .await
}

#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/rollback/complete",
    tag = "deployments",
    summary = "Complete a rollback.",
    request_body = FinishBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 200, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn rollback_complete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<FinishBody>,
) -> Result<Response, ApiError> {
    on_deployment(
        &state,
        &caller,
        &request,
        &id,
        "CompleteRollback",
        |deployment_id, body| {
            EnvironmentCommand::CompleteRollback(CompleteRollback {
                deployment_id,
                finished_at: or_now(body.finished_at),
            })
        },
        |id, _, env| status_of(id, env),
    )
    .await
}
