//! `RequestApproval`: ask approvers to decide on a release for an environment.

use chrono::{DateTime, Utc};

use super::{Release, ReleaseEvent};
use crate::error::DomainError;
use crate::ids::{EnvironmentName, Person};

/// Ask for approval.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestApproval {
    /// The environment.
    pub environment: EnvironmentName,
    /// Who asks (from the token).
    pub actor: Person,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl RequestApproval {
    /// Records the request unless one is already pending for the environment.
    pub fn decide(self, state: &Release) -> Result<Vec<ReleaseEvent>, DomainError> {
        state.open()?;
        if state
            .approvals
            .get(&self.environment)
            .is_some_and(|env| env.request_pending)
        {
            return Err(DomainError::ApprovalAlreadyRequested(self.environment));
        }
        Ok(vec![ReleaseEvent::ApprovalRequested {
            environment: self.environment,
            requested_by: self.actor,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::fixtures::{created, granted, now, withdrawn};
    use crate::release::ReleaseCommand;
    use crate::testsupport::{env, person};
    use cqrs_es::test::TestFramework;

    fn request() -> ReleaseCommand {
        ReleaseCommand::RequestApproval(RequestApproval {
            environment: env("production"),
            actor: person("ci-bot"),
            requested_at: now(),
        })
    }

    fn requested() -> ReleaseEvent {
        ReleaseEvent::ApprovalRequested {
            environment: env("production"),
            requested_by: person("ci-bot"),
        }
    }

    #[test]
    fn a_request_is_recorded() {
        TestFramework::<Release>::with(())
            .given(vec![created()])
            .when(request())
            .then_expect_events(vec![requested()]);
    }

    #[test]
    fn a_pending_request_is_not_repeated() {
        TestFramework::<Release>::with(())
            .given(vec![created(), requested()])
            .when(request())
            .then_expect_error(DomainError::ApprovalAlreadyRequested(env("production")));
    }

    #[test]
    fn a_decision_closes_the_request() {
        TestFramework::<Release>::with(())
            .given(vec![
                created(),
                requested(),
                granted("production", "ann@example.com"),
            ])
            .when(request())
            .then_expect_events(vec![requested()]);
    }

    #[test]
    fn unknown_and_withdrawn_releases_are_refused() {
        TestFramework::<Release>::with(())
            .given_no_previous_events()
            .when(request())
            .then_expect_error(DomainError::ReleaseNotFound);
        TestFramework::<Release>::with(())
            .given(vec![created(), withdrawn()])
            .when(request())
            .then_expect_error(DomainError::ReleaseWithdrawn);
    }
}
