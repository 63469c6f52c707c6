//! Releases: creation from commits, gate results and bypasses, approval requests,
//! approvals and rejections, hotfix approvals, withdrawal.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use release_pilot_domain::clearance::{approval_status, Decision};
use release_pilot_domain::conventional::parse_version;
use release_pilot_domain::gate::{Evidence, GateKind, GateStatus};
use release_pilot_domain::ids::{
    CommitSha, EnvironmentName, Person, ReleaseId, RequirementId, ServiceName,
};
use release_pilot_domain::release::{
    ApproveHotfix, ApproveRelease, BypassGate, CommitInput, CreateRelease, RecordGateResult,
    RecordRefusedApproval, RejectRelease, Release, ReleaseCommand, ReleaseEvent, RequestApproval,
    WithdrawRelease,
};
use release_pilot_domain::roles::Role;
use release_pilot_domain::DomainError;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{answer, exec, exec_ledger, gate_policy_environment, or_now, policy_for};
use crate::auth::{allow, Caller};
use crate::error::ApiError;
use crate::extract::CommandRequest;
use crate::lookup;
use crate::state::AppState;
use release_pilot_ledger::LedgerError;

/// Routes under `/v1/releases`.
pub fn router() -> Router<AppState> {
    let pipelines = Router::new()
        .route("/v1/releases", post(create))
        .route("/v1/releases/{id}/gates", post(record_gate))
        .route(
            "/v1/releases/{id}/approval-requests",
            post(request_approval),
        )
        .route("/v1/releases/{id}/withdraw", post(withdraw))
        .route_layer(allow(&[Role::Ci, Role::Admin]));
    let approvers = Router::new()
        .route("/v1/releases/{id}/approvals", post(decide))
        .route("/v1/releases/{id}/gates/{gate}/bypass", post(bypass_gate))
        .route_layer(allow(&[
            Role::Approver,
            Role::IncidentCommander,
            Role::Admin,
        ]));
    let commanders = Router::new()
        .route("/v1/releases/{id}/hotfix-approvals", post(approve_hotfix))
        .route_layer(allow(&[Role::IncidentCommander, Role::Admin]));
    // Asking whether a deployment would be cleared changes nothing: every role may.
    let anyone = Router::new().route("/v1/releases/{id}/clearance", axum::routing::get(clearance));
    pipelines.merge(approvers).merge(commanders).merge(anyone)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClearanceParams {
    /// The environment to deploy to.
    #[param(value_type = String)]
    environment: EnvironmentName,
    /// The strategy (default `standard`).
    #[param(value_type = Option<String>)]
    strategy: Option<release_pilot_domain::environment::Strategy>,
}

#[utoipa::path(
    get,
    path = "/v1/releases/{id}/clearance",
    tag = "releases",
    summary = "Would a deployment of this release to an environment be cleared now? Appends nothing.",
    params(("id" = String, Path), ClearanceParams),
    responses(
        (status = 200, description = "`allowed`, and every refusal with its code when not", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn clearance(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<ClearanceParams>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let axum::extract::Query(params) =
        query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let id = release_id(&id)?;
    let (release, _) = state.store.load::<Release>(&id.to_string()).await?;
    let facts = release.facts_for(&params.environment)?;
    let policy = policy_for(&state, &params.environment).await?;
    let stream = format!("{}/{}", facts.service, params.environment);
    let (environment, _) = state
        .store
        .load::<release_pilot_domain::environment::Environment>(&stream)
        .await?;
    let strategy = params
        .strategy
        .unwrap_or(release_pilot_domain::environment::Strategy::Standard);
    let decision = release_pilot_domain::clearance::clear_deployment(
        &policy,
        &facts,
        strategy,
        Utc::now(),
        environment.freeze.as_deref(),
    );
    let body = match decision {
        Ok(clearance) => {
            json!({"allowed": true, "release_id": id, "environment": params.environment,
                                "policy_version": policy.version, "clearance": clearance})
        }
        Err(DomainError::DeploymentRefused(refusals)) => {
            let refusals: Vec<serde_json::Value> = refusals
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    v["detail"] = json!(r.to_string());
                    v
                })
                .collect();
            json!({"allowed": false, "release_id": id, "environment": params.environment,
                   "policy_version": policy.version, "refusals": refusals})
        }
        Err(other) => return Err(other.into()),
    };
    Ok(axum::Json(body))
}

fn release_id(text: &str) -> Result<ReleaseId, ApiError> {
    ReleaseId::parse(text)
        .map_err(|_| ApiError::not_found("release_not_found", "release not found"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommitBody {
    #[schema(value_type = String, pattern = r"^[0-9a-fA-F]{7,64}$")]
    sha: CommitSha,
    message: String,
    #[schema(value_type = String, pattern = r"^[^\\s\\x00-\\x1f][^\\x00-\\x1f]{0,255}$")]
    author: Person,
    committed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    service: ServiceName,
    version: Option<String>,
    commits: Vec<CommitBody>,
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    requirements: Vec<RequirementId>,
    artifact: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/releases",
    tag = "releases",
    summary = "Create a release from commits; the version comes from conventional commits when absent.",
    request_body = CreateBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 201, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    request: CommandRequest<CreateBody>,
) -> Result<Response, ApiError> {
    answer(&state, &caller, &request, || async {
        let body = &request.body;
        let version = body.version.as_deref().map(parse_version).transpose()?;
        if let Some(version) = &version {
            if let Some(existing) = lookup::release_at(&state.db, &body.service, version).await? {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "release_exists",
                    format!(
                        "{} {version} already exists as release {existing}",
                        body.service
                    ),
                ));
            }
        }
        let id = ReleaseId::from_uuid(Uuid::now_v7());
        let now = Utc::now();
        let command = ReleaseCommand::Create(CreateRelease {
            release_id: id,
            service: body.service.clone(),
            version,
            previous_version: lookup::previous_version(&state.db, &body.service).await?,
            commits: body
                .commits
                .iter()
                .map(|c| CommitInput {
                    sha: c.sha.clone(),
                    message: c.message.clone(),
                    author: c.author.clone(),
                    committed_at: c.committed_at.unwrap_or(now),
                })
                .collect(),
            requirements: body.requirements.clone(),
            artifact: body.artifact.clone(),
            link_rules: state.config.link_rules.clone(),
            actor: caller.subject.clone(),
            requested_at: now,
        });
        let executed = exec::<Release, _>(
            &state,
            &caller,
            &request,
            "CreateRelease",
            &id.to_string(),
            command,
        )
        .await?;
        let Some(ReleaseEvent::ReleaseCreated {
            version,
            version_source,
            changelog,
            requirements,
            ..
        }) = executed.events.into_iter().next()
        else {
            return Err(ApiError::from(DomainError::ReleaseNotFound));
        };
        Ok((
            StatusCode::CREATED,
            json!({
                "release_id": id,
                "service": body.service,
                "version": version.to_string(),
                "version_source": version_source,
                "requirements": requirements,
                "changelog": changelog,
                "changelog_markdown": changelog.to_markdown(&version),
            }),
        ))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GateBody {
    #[schema(value_type = String, pattern = r"^[a-z0-9_-]{1,64}$")]
    gate: GateKind,
    #[serde(default)]
    #[schema(value_type = Object)]
    evidence: Evidence,
    #[schema(value_type = Option<crate::openapi::GateStatusSchema>)]
    status: Option<GateStatus>,
}

#[utoipa::path(
    post,
    path = "/v1/releases/{id}/gates",
    tag = "releases",
    summary = "Record a quality-gate result; the ledger evaluates the evidence.",
    request_body = GateBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 201, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn record_gate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<GateBody>,
) -> Result<Response, ApiError> {
    let id = release_id(&id)?;
    answer(&state, &caller, &request, || async {
        let policy = policy_for(&state, &gate_policy_environment()).await?;
        let body = &request.body;
        let command = ReleaseCommand::RecordGate(RecordGateResult {
            gate: body.gate.clone(),
            evidence: body.evidence.clone(),
            reported_status: body.status,
            thresholds: policy.rules.gate_thresholds,
            actor: caller.subject.clone(),
            requested_at: Utc::now(),
        });
        let executed = exec::<Release, _>(&state, &caller, &request, "RecordGateResult", &id.to_string(), command).await?;
        let Some(ReleaseEvent::GateEvaluated { gate, verdict, thresholds, .. }) = executed.events.into_iter().next() else {
            return Err(ApiError::from(DomainError::ReleaseNotFound));
        };
        Ok((
            StatusCode::CREATED,
            json!({ "release_id": id, "gate": gate, "status": verdict.status, "failures": verdict.failures, "thresholds": thresholds }),
        ))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonBody {
    reason: String,
}

#[utoipa::path(
    post,
    path = "/v1/releases/{id}/gates/{gate}/bypass",
    tag = "releases",
    summary = "Bypass a gate, by a role the policy names, with a reason.",
    request_body = ReasonBody,
    params(("id" = String, Path), ("gate" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 201, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn bypass_gate(
    State(state): State<AppState>,
    Path((id, gate)): Path<(String, String)>,
    caller: Caller,
    request: CommandRequest<ReasonBody>,
) -> Result<Response, ApiError> {
    let id = release_id(&id)?;
    let gate = GateKind::parse(&gate)?;
    answer(&state, &caller, &request, || async {
        let policy = policy_for(&state, &gate_policy_environment()).await?;
        let command = ReleaseCommand::BypassGate(BypassGate {
            gate: gate.clone(),
            reason: request.body.reason.clone(),
            actor: caller.subject.clone(),
            actor_roles: caller.roles.clone(),
            permitted_roles: policy.rules.gate_bypass_roles,
            requested_at: Utc::now(),
        });
        exec::<Release, _>(
            &state,
            &caller,
            &request,
            "BypassGate",
            &id.to_string(),
            command,
        )
        .await?;
        Ok((
            StatusCode::CREATED,
            json!({ "release_id": id, "gate": gate, "status": "bypassed" }),
        ))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvironmentBody {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    environment: EnvironmentName,
}

#[utoipa::path(
    post,
    path = "/v1/releases/{id}/approval-requests",
    tag = "releases",
    summary = "Ask for approval to deploy to an environment.",
    request_body = EnvironmentBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 201, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn request_approval(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<EnvironmentBody>,
) -> Result<Response, ApiError> {
    let id = release_id(&id)?;
    answer(&state, &caller, &request, || async {
        let command = ReleaseCommand::RequestApproval(RequestApproval {
            environment: request.body.environment.clone(),
            actor: caller.subject.clone(),
            requested_at: Utc::now(),
        });
        exec::<Release, _>(
            &state,
            &caller,
            &request,
            "RequestApproval",
            &id.to_string(),
            command,
        )
        .await?;
        Ok((
            StatusCode::CREATED,
            json!({ "release_id": id, "environment": request.body.environment, "requested": true }),
        ))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    environment: EnvironmentName,
    #[schema(value_type = crate::openapi::DecisionSchema)]
    decision: Decision,
    comment: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/releases/{id}/approvals",
    tag = "releases",
    summary = "Approve or reject the release for an environment (identity from the token).",
    request_body = DecisionBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 201, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<DecisionBody>,
) -> Result<Response, ApiError> {
    let id = release_id(&id)?;
    answer(&state, &caller, &request, || async {
        let body = &request.body;
        let policy = policy_for(&state, &body.environment).await?;
        let roles: BTreeSet<Role> = caller.roles.clone();
        let command = match body.decision {
            Decision::Approve => ReleaseCommand::Approve(ApproveRelease {
                environment: body.environment.clone(),
                approver: caller.subject.clone(),
                approver_roles: roles,
                comment: body.comment.clone(),
                rules: policy.rules.approvals.clone(),
                requested_at: Utc::now(),
            }),
            Decision::Reject => ReleaseCommand::Reject(RejectRelease {
                environment: body.environment.clone(),
                approver: caller.subject.clone(),
                approver_roles: roles,
                reason: body.comment.clone().unwrap_or_default(),
                requested_at: Utc::now(),
            }),
        };
        let name = match body.decision {
            Decision::Approve => "ApproveRelease",
            Decision::Reject => "RejectRelease",
        };
        let executed = match exec_ledger::<Release, _>(
            &state,
            &caller,
            &request,
            name,
            &id.to_string(),
            command,
        )
        .await
        {
            Ok(executed) => executed,
            Err(LedgerError::Domain(refusal @ DomainError::SelfApproval { .. })) => {
                // Keep the attempt for the exceptions report, then refuse as decided.
                let record = ReleaseCommand::RecordRefusedApproval(RecordRefusedApproval {
                    environment: body.environment.clone(),
                    approver: caller.subject.clone(),
                    refusal: refusal.clone(),
                    requested_at: Utc::now(),
                });
                exec::<Release, _>(
                    &state,
                    &caller,
                    &request,
                    "RecordRefusedApproval",
                    &id.to_string(),
                    record,
                )
                .await?;
                return Err(refusal.into());
            }
            Err(error) => return Err(error.into()),
        };
        let facts = executed.state.facts_for(&body.environment)?;
        let status = approval_status(&policy.rules.approvals, &facts);
        Ok((
            StatusCode::CREATED,
            json!({
                "release_id": id,
                "environment": body.environment,
                "decision": body.decision,
                "approval": {
                    "complete": status.is_complete(),
                    "have": status.have,
                    "need": status.need,
                    "approved_by": status.approved_by,
                    "missing_roles": status.missing_roles,
                    "rejected_by": status.rejected_by,
                    "policy_version": policy.version,
                },
            }),
        ))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HotfixBody {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    environment: EnvironmentName,
    reason: String,
}

#[utoipa::path(
    post,
    path = "/v1/releases/{id}/hotfix-approvals",
    tag = "releases",
    summary = "Open the hotfix lane (incident commander).",
    request_body = HotfixBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 201, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn approve_hotfix(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<HotfixBody>,
) -> Result<Response, ApiError> {
    let id = release_id(&id)?;
    answer(&state, &caller, &request, || async {
        let body = &request.body;
        let policy = policy_for(&state, &body.environment).await?;
        let command = ReleaseCommand::ApproveHotfix(ApproveHotfix {
            environment: body.environment.clone(),
            approver: caller.subject.clone(),
            approver_roles: caller.roles.clone(),
            reason: body.reason.clone(),
            hotfix: policy.rules.hotfix.clone(),
            forbid_self_approval: policy.rules.approvals.forbid_self_approval,
            requested_at: Utc::now(),
        });
        exec::<Release, _>(&state, &caller, &request, "ApproveHotfix", &id.to_string(), command).await?;
        Ok((StatusCode::CREATED, json!({ "release_id": id, "environment": body.environment, "hotfix_approved_by": caller.subject })))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/releases/{id}/withdraw",
    tag = "releases",
    summary = "Withdraw the release.",
    request_body = ReasonBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer")),
    responses(
        (status = 200, description = "done", body = Object),
        crate::openapi::Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn withdraw(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    request: CommandRequest<ReasonBody>,
) -> Result<Response, ApiError> {
    let id = release_id(&id)?;
    answer(&state, &caller, &request, || async {
        let command = ReleaseCommand::Withdraw(WithdrawRelease {
            reason: request.body.reason.clone(),
            actor: caller.subject.clone(),
            requested_at: or_now(None),
        });
        exec::<Release, _>(
            &state,
            &caller,
            &request,
            "WithdrawRelease",
            &id.to_string(),
            command,
        )
        .await?;
        Ok((
            StatusCode::OK,
            json!({ "release_id": id, "withdrawn": true }),
        ))
    })
    .await
}
