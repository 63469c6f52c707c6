//! `SwitchTraffic`: move blue-green traffic to the new version.

use chrono::{DateTime, Utc};

use super::{Environment, EnvironmentEvent, Strategy};
use crate::error::DomainError;
use crate::ids::DeploymentId;

/// Switch blue-green traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchTraffic {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// When (client time, or the server's when absent).
    pub at: DateTime<Utc>,
}

impl SwitchTraffic {
    /// Switches once, for a blue-green deployment in progress.
    pub fn decide(self, state: &Environment) -> Result<Vec<EnvironmentEvent>, DomainError> {
        let active = state.in_progress(self.deployment_id)?;
        if active.strategy != Strategy::BlueGreen {
            return Err(DomainError::NotBlueGreen);
        }
        if active.traffic_switched {
            return Err(DomainError::TrafficAlreadySwitched);
        }
        Ok(vec![EnvironmentEvent::TrafficSwitched {
            deployment_id: self.deployment_id,
            at: self.at,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::fixtures::{one_live, started};
    use crate::environment::EnvironmentCommand;
    use crate::testsupport::{at, deployment_id};
    use cqrs_es::test::TestFramework;

    fn switch() -> EnvironmentCommand {
        EnvironmentCommand::SwitchTraffic(SwitchTraffic {
            deployment_id: deployment_id(2),
            at: at(20),
        })
    }

    fn switched() -> EnvironmentEvent {
        EnvironmentEvent::TrafficSwitched {
            deployment_id: deployment_id(2),
            at: at(20),
        }
    }

    fn given(strategy: Strategy) -> Vec<EnvironmentEvent> {
        let mut events = one_live();
        events.push(started(2, strategy, 10));
        events
    }

    #[test]
    fn blue_green_traffic_switches() {
        TestFramework::<Environment>::with(())
            .given(given(Strategy::BlueGreen))
            .when(switch())
            .then_expect_events(vec![switched()]);
    }

    #[test]
    fn traffic_switches_once() {
        let mut events = given(Strategy::BlueGreen);
        events.push(switched());
        TestFramework::<Environment>::with(())
            .given(events)
            .when(switch())
            .then_expect_error(DomainError::TrafficAlreadySwitched);
    }

    #[test]
    fn only_blue_green_deployments_switch() {
        TestFramework::<Environment>::with(())
            .given(given(Strategy::Canary))
            .when(switch())
            .then_expect_error(DomainError::NotBlueGreen);
    }

    #[test]
    fn unknown_deployments_are_refused() {
        TestFramework::<Environment>::with(())
            .given(one_live())
            .when(switch())
            .then_expect_error(DomainError::DeploymentNotFound);
    }
}
