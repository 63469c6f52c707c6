//! The domain's one error type.
//!
//! Every refusal the domain can make is a variant of [`DomainError`]. Callers classify a
//! refusal by [`DomainError::kind`] (which decides the HTTP status) and identify it by
//! [`DomainError::code`] (a stable, machine-readable string), never by its message. The
//! messages are for people: each says what was refused and what to do about it.

use serde::{Deserialize, Serialize};

use crate::gate::GateKind;
use crate::health::Metric;
use crate::ids::EnvironmentName;
use crate::roles::Role;

/// How a refusal is classified; the API layer maps each kind to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input is malformed or violates a value constraint (HTTP 422).
    Invalid,
    /// The thing the command targets does not exist (HTTP 404).
    NotFound,
    /// The command does not fit the aggregate's current state (HTTP 409).
    Conflict,
    /// Policy forbids the command (HTTP 409 with a policy code).
    PolicyRefused,
}

/// Why a deployment may not start. A refused deployment lists every reason at once, so a
/// pipeline can show the whole picture in one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum DeploymentRefusal {
    /// The release was withdrawn.
    ReleaseWithdrawn,
    /// Required gates have no passing (or bypassed) result.
    GatesNotPassed {
        /// The gates still missing a pass.
        gates: Vec<GateKind>,
    },
    /// Fewer distinct approvals than the policy requires.
    ApprovalsIncomplete {
        /// Distinct approvals that count.
        have: u32,
        /// Approvals the policy requires.
        need: u32,
    },
    /// Approver roles the policy requires are not represented among the approvers.
    ApproverRolesMissing {
        /// The roles still missing.
        roles: Vec<Role>,
    },
    /// An approver's latest decision for this environment is a rejection.
    ApprovalRejected {
        /// Who rejected.
        by: Vec<String>,
    },
    /// A hotfix deployment needs an incident-commander approval first.
    HotfixApprovalMissing,
    /// The policy does not allow hotfix deployments to this environment.
    HotfixNotAllowed,
    /// The deployment's start falls inside a change freeze.
    ChangeFrozen {
        /// Why the environment is frozen.
        reason: String,
    },
}

impl DeploymentRefusal {
    /// The stable machine-readable code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ReleaseWithdrawn => "release_withdrawn",
            Self::GatesNotPassed { .. } => "gates_not_passed",
            Self::ApprovalsIncomplete { .. } => "approvals_incomplete",
            Self::ApproverRolesMissing { .. } => "approver_roles_missing",
            Self::ApprovalRejected { .. } => "approval_rejected",
            Self::HotfixApprovalMissing => "hotfix_approval_missing",
            Self::HotfixNotAllowed => "hotfix_not_allowed",
            Self::ChangeFrozen { .. } => "change_frozen",
        }
    }
}

impl std::fmt::Display for DeploymentRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ReleaseWithdrawn => write!(f, "the release was withdrawn"),
            Self::GatesNotPassed { gates } => {
                let names: Vec<_> = gates.iter().map(ToString::to_string).collect();
                write!(f, "required gates not passed: {}", names.join(", "))
            }
            Self::ApprovalsIncomplete { have, need } => {
                write!(f, "{have} of {need} required approvals")
            }
            Self::ApproverRolesMissing { roles } => {
                let names: Vec<_> = roles.iter().map(ToString::to_string).collect();
                write!(f, "no approval yet from role(s): {}", names.join(", "))
            }
            Self::ApprovalRejected { by } => write!(f, "rejected by {}", by.join(", ")),
            Self::HotfixApprovalMissing => {
                write!(f, "a hotfix needs an incident_commander approval first")
            }
            Self::HotfixNotAllowed => write!(f, "the policy does not allow hotfix deployments"),
            Self::ChangeFrozen { reason } => write!(f, "change freeze in force: {reason}"),
        }
    }
}

/// Why a canary may not advance to its next stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum CanaryRefusal {
    /// No health sample with error rate and p95 was recorded during the current stage.
    NoHealthEvidence,
    /// The current stage has not been observed for its full duration yet.
    StageNotElapsed {
        /// Seconds of evidence so far.
        observed_seconds: i64,
        /// Seconds the stage requires.
        required_seconds: i64,
    },
    /// A sample during the current stage broke the stage's criteria.
    CriteriaBreached {
        /// The metric that broke the criteria.
        metric: Metric,
        /// The observed value.
        value: f64,
        /// The stage's limit (values must stay strictly below it).
        limit: f64,
    },
}

impl std::fmt::Display for CanaryRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoHealthEvidence => write!(
                f,
                "no health sample with error_rate_pct and p95_ms during the current stage"
            ),
            Self::StageNotElapsed {
                observed_seconds,
                required_seconds,
            } => write!(
                f,
                "the current stage has {observed_seconds}s of healthy evidence; it needs {required_seconds}s"
            ),
            Self::CriteriaBreached {
                metric,
                value,
                limit,
            } => write!(
                f,
                "{metric} reached {value} during the current stage; it must stay below {limit}"
            ),
        }
    }
}

/// Every refusal the domain makes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    // ---- invalid input -------------------------------------------------------------
    /// A value does not meet its format (service name, sha, requirement id, …).
    #[error("invalid {field}: {reason}")]
    InvalidValue {
        /// Which field.
        field: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A version is not valid semantic versioning.
    #[error("invalid version {given:?}: {reason} (expected MAJOR.MINOR.PATCH, e.g. 1.4.0)")]
    InvalidVersion {
        /// What was given.
        given: String,
        /// The parser's reason.
        reason: String,
    },
    /// An explicit version is not greater than the service's previous release.
    #[error("version {given} is not greater than the previous release {previous}")]
    VersionNotGreater {
        /// The requested version.
        given: String,
        /// The service's previous release.
        previous: String,
    },
    /// A release needs at least one commit.
    #[error("a release needs at least one commit")]
    NoCommits,
    /// No version was given and no commit calls for a release.
    #[error(
        "no version given and no commit is a feat, fix, perf or breaking change; pass an explicit version"
    )]
    NoReleasableChanges,
    /// A gate result carries neither evidence nor a status.
    #[error("a gate result needs evidence or a status")]
    EmptyGateResult,
    /// The release belongs to another service than the environment.
    #[error("release belongs to service {release_service}, not {environment_service}")]
    ServiceMismatch {
        /// The release's service.
        release_service: String,
        /// The environment's service.
        environment_service: String,
    },
    /// A canary weight that is not the next stage.
    #[error("canary weight {given}% is not the next stage; expected {expected}%")]
    UnexpectedCanaryWeight {
        /// Requested weight.
        given: u8,
        /// The next stage's weight.
        expected: u8,
    },
    /// A time that comes before the thing it follows.
    #[error("{field} ({given}) is before {earlier_field} ({earlier})")]
    TimeOutOfOrder {
        /// The later field.
        field: &'static str,
        /// Its value.
        given: String,
        /// The earlier field.
        earlier_field: &'static str,
        /// Its value.
        earlier: String,
    },

    // ---- not found -------------------------------------------------------------------
    /// The release does not exist.
    #[error("release not found")]
    ReleaseNotFound,
    /// The deployment does not exist in this environment.
    #[error("deployment not found in this environment")]
    DeploymentNotFound,
    /// The incident does not exist.
    #[error("incident not found")]
    IncidentNotFound,
    /// The requirement does not exist.
    #[error("requirement not found")]
    RequirementNotFound,

    // ---- conflicts with current state -------------------------------------------------
    /// A creation command for an aggregate that already exists.
    #[error("already exists")]
    AlreadyExists,
    /// The release was withdrawn; it accepts no further gates or approvals.
    #[error("the release was withdrawn")]
    ReleaseWithdrawn,
    /// Another deployment is still in progress (or rolling back) in this environment.
    #[error("deployment {0} is still in progress in this environment; finish, fail or roll it back first")]
    DeploymentInProgress(String),
    /// The deployment is not in progress (already completed, failed or rolled back).
    #[error("the deployment is not in progress (it is {0})")]
    DeploymentNotInProgress(&'static str),
    /// An approval was already requested for this environment and is pending.
    #[error("an approval for {0} was already requested")]
    ApprovalAlreadyRequested(EnvironmentName),
    /// The same person already recorded the same decision.
    #[error("{0} already recorded this decision for this environment")]
    AlreadyDecided(String),
    /// The incident is already resolved.
    #[error("the incident is already resolved")]
    IncidentAlreadyResolved,
    /// The environment is already frozen.
    #[error("the environment is already frozen")]
    AlreadyFrozen,
    /// The environment is not frozen.
    #[error("the environment is not frozen")]
    NotFrozen,
    /// There is no earlier successful version to roll back to.
    #[error("there is no earlier successful version in this environment to roll back to")]
    NoRollbackTarget,
    /// No rollback is in progress for this deployment.
    #[error("no rollback is in progress for this deployment")]
    RollbackNotInProgress,
    /// A rollback of this deployment is not possible in its current state.
    #[error("only a deployment in progress or the live one can be rolled back")]
    RollbackNotPossible,
    /// A canary deployment can complete only at 100 %.
    #[error("the canary is at {0}%; advance it to 100% before completing")]
    CanaryNotFinished(u8),
    /// The command applies only to canary deployments.
    #[error("this deployment is not a canary")]
    NotACanary,
    /// The command applies only to blue-green deployments.
    #[error("this deployment is not blue-green")]
    NotBlueGreen,
    /// Blue-green deployment completed before the traffic switch.
    #[error("switch traffic to the new colour before completing")]
    TrafficNotSwitched,
    /// Traffic was already switched.
    #[error("traffic was already switched")]
    TrafficAlreadySwitched,
    /// The flag already has the requested state.
    #[error("flag {0} is already {1}")]
    FlagUnchanged(String, &'static str),
    /// The policy document is identical to the one in force.
    #[error("the policy is unchanged")]
    PolicyUnchanged,

    // ---- policy refusals -------------------------------------------------------------
    /// The approver created the release or authored one of its commits.
    #[error("{approver} may not approve: they {relation}")]
    SelfApproval {
        /// The approver.
        approver: String,
        /// `created the release` or `authored commit <sha>`.
        relation: String,
    },
    /// The caller lacks a role the command needs.
    #[error("this needs the {0} role")]
    RoleRequired(Role),
    /// The caller's roles are not among those the policy allows to bypass a gate.
    #[error("the policy does not allow your roles to bypass gates")]
    BypassNotPermitted,
    /// The deployment is refused; every reason is listed.
    #[error("deployment refused: {}", join_refusals(.0))]
    DeploymentRefused(Vec<DeploymentRefusal>),
    /// The canary may not advance.
    #[error("canary may not advance: {0}")]
    CanaryCriteriaUnmet(CanaryRefusal),
}

fn join_refusals(refusals: &[DeploymentRefusal]) -> String {
    let parts: Vec<_> = refusals.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

impl DomainError {
    /// Shorthand for [`DomainError::InvalidValue`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidValue {
            field,
            reason: reason.into(),
        }
    }

    /// How this refusal is classified.
    pub fn kind(&self) -> ErrorKind {
        use DomainError::*;
        match self {
            InvalidValue { .. }
            | InvalidVersion { .. }
            | VersionNotGreater { .. }
            | NoCommits
            | NoReleasableChanges
            | EmptyGateResult
            | ServiceMismatch { .. }
            | UnexpectedCanaryWeight { .. }
            | TimeOutOfOrder { .. } => ErrorKind::Invalid,
            ReleaseNotFound | DeploymentNotFound | IncidentNotFound | RequirementNotFound => {
                ErrorKind::NotFound
            }
            AlreadyExists
            | ReleaseWithdrawn
            | DeploymentInProgress(_)
            | DeploymentNotInProgress(_)
            | ApprovalAlreadyRequested(_)
            | AlreadyDecided(_)
            | IncidentAlreadyResolved
            | AlreadyFrozen
            | NotFrozen
            | NoRollbackTarget
            | RollbackNotInProgress
            | RollbackNotPossible
            | CanaryNotFinished(_)
            | NotACanary
            | NotBlueGreen
            | TrafficNotSwitched
            | TrafficAlreadySwitched
            | FlagUnchanged(..)
            | PolicyUnchanged => ErrorKind::Conflict,
            SelfApproval { .. }
            | RoleRequired(_)
            | BypassNotPermitted
            | DeploymentRefused(_)
            | CanaryCriteriaUnmet(_) => ErrorKind::PolicyRefused,
        }
    }

    /// The stable machine-readable code; the API returns it as problem+json `code`.
    pub fn code(&self) -> &'static str {
        use DomainError::*;
        match self {
            InvalidValue { .. } => "invalid_value",
            InvalidVersion { .. } => "invalid_version",
            VersionNotGreater { .. } => "version_not_greater",
            NoCommits => "no_commits",
            NoReleasableChanges => "no_releasable_changes",
            EmptyGateResult => "empty_gate_result",
            ServiceMismatch { .. } => "service_mismatch",
            UnexpectedCanaryWeight { .. } => "unexpected_canary_weight",
            TimeOutOfOrder { .. } => "time_out_of_order",
            ReleaseNotFound => "release_not_found",
            DeploymentNotFound => "deployment_not_found",
            IncidentNotFound => "incident_not_found",
            RequirementNotFound => "requirement_not_found",
            AlreadyExists => "already_exists",
            ReleaseWithdrawn => "release_withdrawn",
            DeploymentInProgress(_) => "deployment_in_progress",
            DeploymentNotInProgress(_) => "deployment_not_in_progress",
            ApprovalAlreadyRequested(_) => "approval_already_requested",
            AlreadyDecided(_) => "already_decided",
            IncidentAlreadyResolved => "incident_already_resolved",
            AlreadyFrozen => "already_frozen",
            NotFrozen => "not_frozen",
            NoRollbackTarget => "no_rollback_target",
            RollbackNotInProgress => "rollback_not_in_progress",
            RollbackNotPossible => "rollback_not_possible",
            CanaryNotFinished(_) => "canary_not_finished",
            NotACanary => "not_a_canary",
            NotBlueGreen => "not_blue_green",
            TrafficNotSwitched => "traffic_not_switched",
            TrafficAlreadySwitched => "traffic_already_switched",
            FlagUnchanged(..) => "flag_unchanged",
            PolicyUnchanged => "policy_unchanged",
            SelfApproval { .. } => "self_approval",
            RoleRequired(_) => "role_required",
            BypassNotPermitted => "bypass_not_permitted",
            DeploymentRefused(_) => "deployment_refused",
            CanaryCriteriaUnmet(_) => "canary_criteria_unmet",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_policy_refusals_are_classified_as_such() {
        let samples = [
            DomainError::invalid("service", "empty"),
            DomainError::SelfApproval {
                approver: "a".into(),
                relation: "created the release".into(),
            },
            DomainError::DeploymentRefused(vec![DeploymentRefusal::HotfixApprovalMissing]),
            DomainError::ReleaseNotFound,
            DomainError::AlreadyExists,
        ];
        for error in &samples {
            let code = error.code();
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
        assert_eq!(samples[0].kind(), ErrorKind::Invalid);
        assert_eq!(samples[1].kind(), ErrorKind::PolicyRefused);
        assert_eq!(samples[2].kind(), ErrorKind::PolicyRefused);
        assert_eq!(samples[3].kind(), ErrorKind::NotFound);
        assert_eq!(samples[4].kind(), ErrorKind::Conflict);
    }
}
