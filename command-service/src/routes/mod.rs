//! The HTTP routes, one module per resource; each exposes `router()`.

pub mod catalogue;
pub mod deployments;
pub mod environments;
pub mod incidents;
pub mod releases;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use cqrs_es::Aggregate;
use release_pilot_domain::ids::EnvironmentName;
use release_pilot_domain::policy::{AppliedPolicy, Policy};
use release_pilot_domain::DomainError;
use release_pilot_ledger::metadata::EventMetadata;
use release_pilot_ledger::store::Executed;
use release_pilot_ledger::LedgerError;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::CommandRequest;
use crate::idempotency;
use crate::state::AppState;

/// Executes a domain command with the request's metadata.
pub(crate) async fn exec<A, T>(
    state: &AppState,
    caller: &Caller,
    request: &CommandRequest<T>,
    command_name: &str,
    id: &str,
    command: A::Command,
) -> Result<Executed<A>, ApiError>
where
    A: Aggregate<Error = DomainError, Services = ()> + Clone + Send + Sync + 'static,
    A::Command: Clone,
{
    Ok(exec_ledger(state, caller, request, command_name, id, command).await?)
}

/// As [`exec`], keeping the ledger's error for handlers that react to a refusal.
pub(crate) async fn exec_ledger<A, T>(
    state: &AppState,
    caller: &Caller,
    request: &CommandRequest<T>,
    command_name: &str,
    id: &str,
    command: A::Command,
) -> Result<Executed<A>, LedgerError>
where
    A: Aggregate<Error = DomainError, Services = ()> + Clone + Send + Sync + 'static,
    A::Command: Clone,
{
    let metadata = EventMetadata {
        actor: caller.subject.to_string(),
        actor_roles: caller.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        command: command_name.to_owned(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        idempotency_key: request.idempotency_key.clone(),
        // The request span's own context when traces are exported, so the events
        // continue this trace; otherwise what the caller sent.
        traceparent: release_pilot_ledger::telemetry::traceparent(&tracing::Span::current())
            .or_else(|| request.traceparent.clone()),
    };
    let result = state.store.execute::<A>(id, command, &metadata).await;
    if let Ok(executed) = &result {
        let types: Vec<String> = executed
            .events
            .iter()
            .map(cqrs_es::DomainEvent::event_type)
            .collect();
        state.metrics.appended(A::TYPE, id, &types);
    }
    let outcome = match &result {
        Ok(_) => "accepted".to_owned(),
        Err(error) => crate::error::code_of(error).to_owned(),
    };
    state
        .metrics
        .commands
        .get_or_create(&crate::metrics::CommandLabels {
            command: command_name.to_owned(),
            outcome,
        })
        .inc();
    result
}

/// Answers once per idempotency key: runs `command` or replays the first answer.
pub(crate) async fn answer<T, F, Fut>(
    state: &AppState,
    caller: &Caller,
    request: &CommandRequest<T>,
    command: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    let (status, body) = idempotency::once(
        state,
        caller,
        request.idempotency_key.as_deref(),
        &request.fingerprint,
        command,
    )
    .await?;
    Ok((status, Json(body)).into_response())
}

/// The policy in force for an environment (tier defaults when none was defined).
pub(crate) async fn policy_for(
    state: &AppState,
    environment: &EnvironmentName,
) -> Result<AppliedPolicy, ApiError> {
    let (policy, _) = state.store.load::<Policy>(environment.as_str()).await?;
    Ok(policy.applied(environment))
}

/// The environment whose policy governs gates (thresholds, bypass roles): production.
pub(crate) fn gate_policy_environment() -> EnvironmentName {
    EnvironmentName::parse("production").expect("a valid name")
}

/// A client-supplied domain time, or now.
pub(crate) fn or_now(at: Option<chrono::DateTime<Utc>>) -> chrono::DateTime<Utc> {
    at.unwrap_or_else(Utc::now)
}
