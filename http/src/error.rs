//! One mapping from every failure to an RFC 7807 `application/problem+json` answer with a
//! stable `code`: domain refusals by their kind, framework and database failures by what
//! the caller can do about them. Nothing a client sends can produce a 500; only corrupt
//! stored data does.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use release_pilot_domain::error::{DeploymentRefusal, ErrorKind};
use release_pilot_domain::DomainError;
use release_pilot_ledger::LedgerError;
use serde_json::{json, Value};

/// A problem to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What happened and what to do, for a person.
    pub detail: String,
    /// Extra members (e.g. the list of refusals).
    pub extra: Option<Value>,
}

impl ApiError {
    /// A problem with no extra members.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: None,
        }
    }

    /// 400 for a request that is not well-formed.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 422 for well-formed content that is invalid.
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// 401.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": format!("https://release-pilot.dev/problems/{}", self.code.replace('_', "-")),
            "title": title(self.status),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
        });
        if let (Some(Value::Object(extra)), Some(object)) = (&self.extra, body.as_object_mut()) {
            for (key, value) in extra {
                object.insert(key.clone(), value.clone());
            }
        }
        body
    }
}

fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

fn refusal_json(refusal: &DeploymentRefusal) -> Value {
    let mut value = serde_json::to_value(refusal).unwrap_or_else(|_| json!({}));
    if let Some(object) = value.as_object_mut() {
        object.insert("detail".into(), Value::String(refusal.to_string()));
    }
    value
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let status = match error.kind() {
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict | ErrorKind::PolicyRefused => StatusCode::CONFLICT,
        };
        let extra = match &error {
            DomainError::DeploymentRefused(refusals) => Some(json!({
                "refusals": refusals.iter().map(refusal_json).collect::<Vec<_>>(),
            })),
            DomainError::CanaryCriteriaUnmet(refusal) => {
                Some(json!({ "canary": serde_json::to_value(refusal).unwrap_or_default() }))
            }
            DomainError::InvalidValue { field, .. } => Some(json!({ "field": field })),
            _ => None,
        };
        Self {
            status,
            code: error.code(),
            detail: error.to_string(),
            extra,
        }
    }
}

/// The stable code a ledger error is answered with (for metrics, without consuming it).
pub fn code_of(error: &LedgerError) -> &'static str {
    match error {
        LedgerError::Domain(e) => e.code(),
        LedgerError::Conflict => CONCURRENT_MODIFICATION,
        LedgerError::Database(_) | LedgerError::StoreUnavailable(_) | LedgerError::Busy => {
            DATABASE_UNAVAILABLE
        }
        LedgerError::Nats(_) => NATS_UNAVAILABLE,
        _ => INTERNAL,
    }
}

const CONCURRENT_MODIFICATION: &str = "concurrent_modification";
const DATABASE_UNAVAILABLE: &str = "database_unavailable";
const NATS_UNAVAILABLE: &str = "nats_unavailable";
const INTERNAL: &str = "internal";

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::Domain(e) => e.into(),
            LedgerError::Conflict => Self::new(
                StatusCode::CONFLICT,
                CONCURRENT_MODIFICATION,
                "another command changed this resource at the same time; retry the request",
            ),
            LedgerError::Database(_) | LedgerError::StoreUnavailable(_) | LedgerError::Busy => {
                tracing::warn!(%error, "dependency unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    DATABASE_UNAVAILABLE,
                    "the database is unavailable; retry shortly",
                )
            }
            LedgerError::Nats(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                NATS_UNAVAILABLE,
                "NATS is unavailable; retry shortly",
            ),
            other => {
                tracing::error!(error = %other, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    INTERNAL,
                    "stored data could not be read; the operators have been told",
                )
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        LedgerError::Database(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refusals_are_409_with_every_reason() {
        let error: ApiError = DomainError::DeploymentRefused(vec![
            DeploymentRefusal::ApprovalsIncomplete { have: 1, need: 2 },
            DeploymentRefusal::HotfixApprovalMissing,
        ])
        .into();
        assert_eq!(error.status, StatusCode::CONFLICT);
        let body = error.body();
        assert_eq!(body["code"], "deployment_refused");
        assert_eq!(body["refusals"][0]["code"], "approvals_incomplete");
        assert_eq!(body["refusals"][0]["need"], 2);
        assert_eq!(body["refusals"][1]["code"], "hotfix_approval_missing");
    }

    #[test]
    fn kinds_map_to_statuses() {
        let status = |e: DomainError| ApiError::from(e).status;
        assert_eq!(
            status(DomainError::invalid("x", "y")),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(status(DomainError::ReleaseNotFound), StatusCode::NOT_FOUND);
        assert_eq!(status(DomainError::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(
            status(DomainError::BypassNotPermitted),
            StatusCode::CONFLICT
        );
        assert_eq!(
            ApiError::from(LedgerError::StoreUnavailable("down".into())).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
