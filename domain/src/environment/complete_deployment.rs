//! `CompleteDeployment`: a deployment finished successfully; its version is live.

use chrono::{DateTime, Utc};

use super::{Environment, EnvironmentEvent, Strategy};
use crate::error::DomainError;
use crate::ids::DeploymentId;

/// Complete a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct CompleteDeployment {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// When it finished (client time, or the server's when absent).
    pub finished_at: DateTime<Utc>,
}

impl CompleteDeployment {
    /// Completes a deployment in progress: a canary only at 100 %, a blue-green only
    /// after the traffic switch.
    pub fn decide(self, state: &Environment) -> Result<Vec<EnvironmentEvent>, DomainError> {
        let active = state.in_progress(self.deployment_id)?;
        match active.strategy {
            Strategy::Canary if active.canary_weight() < 100 => {
                return Err(DomainError::CanaryNotFinished(active.canary_weight()));
            }
            Strategy::BlueGreen if !active.traffic_switched => {
                return Err(DomainError::TrafficNotSwitched);
            }
            _ => {}
        }
        if self.finished_at < active.started_at {
            return Err(DomainError::TimeOutOfOrder {
                field: "finished_at",
                given: self.finished_at.to_rfc3339(),
                earlier_field: "started_at",
                earlier: active.started_at.to_rfc3339(),
            });
        }
        Ok(vec![EnvironmentEvent::DeploymentCompleted {
            deployment_id: self.deployment_id,
            release_id: active.release_id,
            version: active.version.clone(),
            finished_at: self.finished_at,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::fixtures::{completed, one_live, started};
    use crate::environment::EnvironmentCommand;
    use crate::testsupport::{at, deployment_id};
    use cqrs_es::test::TestFramework;

    fn complete(minute: i64) -> EnvironmentCommand {
        EnvironmentCommand::CompleteDeployment(CompleteDeployment {
            deployment_id: deployment_id(2),
            finished_at: at(minute),
        })
    }

    fn given(strategy: Strategy) -> Vec<EnvironmentEvent> {
        let mut events = one_live();
        events.push(started(2, strategy, 10));
        events
    }

    #[test]
    fn a_standard_deployment_completes() {
        TestFramework::<Environment>::with(())
            .given(given(Strategy::Standard))
            .when(complete(15))
            .then_expect_events(vec![completed(2, 15)]);
    }

    #[test]
    fn a_canary_completes_only_at_full_weight() {
        TestFramework::<Environment>::with(())
            .given(given(Strategy::Canary))
            .when(complete(15))
            .then_expect_error(DomainError::CanaryNotFinished(5));
    }

    #[test]
    fn a_blue_green_deployment_completes_only_after_the_switch() {
        TestFramework::<Environment>::with(())
            .given(given(Strategy::BlueGreen))
            .when(complete(15))
            .then_expect_error(DomainError::TrafficNotSwitched);
        let mut switched = given(Strategy::BlueGreen);
        switched.push(EnvironmentEvent::TrafficSwitched {
            deployment_id: deployment_id(2),
            at: at(12),
        });
        TestFramework::<Environment>::with(())
            .given(switched)
            .when(complete(15))
            .then_expect_events(vec![completed(2, 15)]);
    }

    #[test]
    fn finishing_before_starting_is_refused() {
        let result = TestFramework::<Environment>::with(())
            .given(given(Strategy::Standard))
            .when(complete(9))
            .inspect_result();
        assert!(matches!(
            result,
            Err(DomainError::TimeOutOfOrder {
                field: "finished_at",
                ..
            })
        ));
    }

    #[test]
    fn a_completed_or_unknown_deployment_is_refused() {
        let mut done = given(Strategy::Standard);
        done.push(completed(2, 15));
        TestFramework::<Environment>::with(())
            .given(done)
            .when(complete(16))
            .then_expect_error(DomainError::DeploymentNotInProgress("completed"));
        TestFramework::<Environment>::with(())
            .given(one_live())
            .when(complete(16))
            .then_expect_error(DomainError::DeploymentNotFound);
    }
}
