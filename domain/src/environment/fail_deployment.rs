//! `FailDeployment`: a deployment in progress failed.

use chrono::{DateTime, Utc};

use super::{Environment, EnvironmentEvent};
use crate::error::DomainError;
use crate::ids::{non_empty_text, DeploymentId};

/// Fail a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct FailDeployment {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Why.
    pub reason: String,
    /// When (client time, or the server's when absent).
    pub finished_at: DateTime<Utc>,
}

impl FailDeployment {
    /// Records the failure of a deployment in progress; the live version is unchanged.
    pub fn decide(self, state: &Environment) -> Result<Vec<EnvironmentEvent>, DomainError> {
        let active = state.in_progress(self.deployment_id)?;
        let reason = non_empty_text("reason", &self.reason, 2000)?;
        if self.finished_at < active.started_at {
            return Err(DomainError::TimeOutOfOrder {
                field: "finished_at",
                given: self.finished_at.to_rfc3339(),
                earlier_field: "started_at",
                earlier: active.started_at.to_rfc3339(),
            });
        }
        Ok(vec![EnvironmentEvent::DeploymentFailed {
            deployment_id: self.deployment_id,
            reason,
            finished_at: self.finished_at,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::fixtures::{completed, one_live, started, state};
    use crate::environment::{EnvironmentCommand, Strategy};
    use crate::testsupport::{at, deployment_id};
    use cqrs_es::test::TestFramework;

    fn fail(reason: &str, minute: i64) -> EnvironmentCommand {
        EnvironmentCommand::FailDeployment(FailDeployment {
            deployment_id: deployment_id(2),
            reason: reason.into(),
            finished_at: at(minute),
        })
    }

    fn deploying() -> Vec<EnvironmentEvent> {
        let mut events = one_live();
        events.push(started(2, Strategy::Standard, 10));
        events
    }

    fn failed() -> EnvironmentEvent {
        EnvironmentEvent::DeploymentFailed {
            deployment_id: deployment_id(2),
            reason: "image pull failed".into(),
            finished_at: at(12),
        }
    }

    #[test]
    fn a_deployment_fails_and_the_live_version_stays() {
        TestFramework::<Environment>::with(())
            .given(deploying())
            .when(fail("image pull failed", 12))
            .then_expect_events(vec![failed()]);
        let mut events = deploying();
        events.push(failed());
        let env = state(events);
        assert_eq!(env.live.map(|l| l.deployment_id), Some(deployment_id(1)));
        assert_eq!(env.active, None);
    }

    #[test]
    fn a_failure_needs_a_reason_and_a_sane_time() {
        let blank = TestFramework::<Environment>::with(())
            .given(deploying())
            .when(fail(" ", 12))
            .inspect_result();
        assert!(matches!(
            blank,
            Err(DomainError::InvalidValue {
                field: "reason",
                ..
            })
        ));
        let early = TestFramework::<Environment>::with(())
            .given(deploying())
            .when(fail("x", 5))
            .inspect_result();
        assert!(matches!(early, Err(DomainError::TimeOutOfOrder { .. })));
    }

    #[test]
    fn a_finished_deployment_cannot_fail() {
        let mut events = deploying();
        events.push(completed(2, 15));
        TestFramework::<Environment>::with(())
            .given(events)
            .when(fail("late", 20))
            .then_expect_error(DomainError::DeploymentNotInProgress("completed"));
    }
}
