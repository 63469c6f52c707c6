//! `RecordRefusedApproval`: keep an approval attempt that policy refused (for example a
//! self-approval), so the exceptions report can list it. The command service issues it
//! after an approval command fails with a policy refusal.

use chrono::{DateTime, Utc};

use super::{Release, ReleaseEvent};
use crate::error::DomainError;
use crate::ids::{EnvironmentName, Person};

/// Record a refused approval attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRefusedApproval {
    /// The environment.
    pub environment: EnvironmentName,
    /// Who tried (from the token).
    pub approver: Person,
    /// The refusal, as returned to them.
    pub refusal: DomainError,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl RecordRefusedApproval {
    /// Records policy refusals only; other errors (not found, invalid input) are not
    /// approval attempts worth an auditor's time.
    pub fn decide(self, state: &Release) -> Result<Vec<ReleaseEvent>, DomainError> {
        state.info()?;
        if self.refusal.kind() != crate::error::ErrorKind::PolicyRefused {
            return Err(DomainError::invalid(
                "refusal",
                "only policy refusals are recorded as refused approvals",
            ));
        }
        Ok(vec![ReleaseEvent::ApprovalRefused {
            environment: self.environment,
            approver: self.approver,
            code: self.refusal.code().to_owned(),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::fixtures::{created, now};
    use crate::release::ReleaseCommand;
    use crate::testsupport::{env, person};
    use cqrs_es::test::TestFramework;

    fn record(refusal: DomainError) -> ReleaseCommand {
        ReleaseCommand::RecordRefusedApproval(RecordRefusedApproval {
            environment: env("production"),
            approver: person("dev@example.com"),
            refusal,
            requested_at: now(),
        })
    }

    fn self_approval() -> DomainError {
        DomainError::SelfApproval {
            approver: "dev@example.com".into(),
            relation: "authored a commit in the release".into(),
        }
    }

    #[test]
    fn a_self_approval_attempt_is_kept_with_its_code() {
        TestFramework::<Release>::with(())
            .given(vec![created()])
            .when(record(self_approval()))
            .then_expect_events(vec![ReleaseEvent::ApprovalRefused {
                environment: env("production"),
                approver: person("dev@example.com"),
                code: "self_approval".into(),
            }]);
    }

    #[test]
    fn errors_that_are_not_policy_refusals_are_not_recorded() {
        let result = TestFramework::<Release>::with(())
            .given(vec![created()])
            .when(record(DomainError::ReleaseWithdrawn))
            .inspect_result();
        assert!(matches!(
            result,
            Err(DomainError::InvalidValue {
                field: "refusal",
                ..
            })
        ));
    }

    #[test]
    fn an_unknown_release_is_not_found() {
        TestFramework::<Release>::with(())
            .given_no_previous_events()
            .when(record(self_approval()))
            .then_expect_error(DomainError::ReleaseNotFound);
    }
}
