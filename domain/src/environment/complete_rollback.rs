//! `CompleteRollback`: a rollback finished; its target is live again.

use chrono::{DateTime, Utc};

use super::{Environment, EnvironmentEvent};
use crate::error::DomainError;
use crate::ids::DeploymentId;

/// Complete a rollback.
#[derive(Debug, Clone, PartialEq)]
pub struct CompleteRollback {
    /// The deployment rolled back.
    pub deployment_id: DeploymentId,
    /// When it finished (client time, or the server's when absent).
    pub finished_at: DateTime<Utc>,
}

impl CompleteRollback {
    /// Completes the rollback under way for this deployment.
    pub fn decide(self, state: &Environment) -> Result<Vec<EnvironmentEvent>, DomainError> {
        if !state.deployments.contains_key(&self.deployment_id) {
            return Err(DomainError::DeploymentNotFound);
        }
        let rollback = state
            .rollback
            .as_ref()
            .filter(|r| r.deployment_id == self.deployment_id)
            .ok_or(DomainError::RollbackNotInProgress)?;
        Ok(vec![EnvironmentEvent::RollbackCompleted {
            deployment_id: self.deployment_id,
            restored: rollback.target.clone(),
            finished_at: self.finished_at,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::fixtures::{one_live, running, started, state};
    use crate::environment::{DeploymentStatus, EnvironmentCommand, Strategy};
    use crate::health::{Metric, TriggerEvidence, TriggerKind};
    use crate::testsupport::{at, deployment_id};
    use cqrs_es::test::TestFramework;

    fn complete(n: u128) -> EnvironmentCommand {
        EnvironmentCommand::CompleteRollback(CompleteRollback {
            deployment_id: deployment_id(n),
            finished_at: at(40),
        })
    }

    fn triggered() -> Vec<EnvironmentEvent> {
        let mut events = one_live();
        events.extend([
            started(2, Strategy::Canary, 10),
            EnvironmentEvent::RollbackTriggered {
                deployment_id: deployment_id(2),
                evidence: TriggerEvidence {
                    trigger: TriggerKind::HealthChecks,
                    metric: Metric::HealthOk,
                    limit: 3.0,
                    peak: 3.0,
                    breach_started_at: at(11),
                    fired_at: at(13),
                    samples: 3,
                },
                target: Some(running(1)),
            },
        ]);
        events
    }

    #[test]
    fn completing_an_automatic_rollback_restores_the_target() {
        let restored = EnvironmentEvent::RollbackCompleted {
            deployment_id: deployment_id(2),
            restored: Some(running(1)),
            finished_at: at(40),
        };
        TestFramework::<Environment>::with(())
            .given(triggered())
            .when(complete(2))
            .then_expect_events(vec![restored.clone()]);
        let mut events = triggered();
        events.push(restored);
        let env = state(events);
        assert_eq!(env.live, Some(running(1)));
        assert_eq!(
            env.deployments[&deployment_id(2)],
            DeploymentStatus::RolledBack
        );
        assert_eq!(env.active, None);
    }

    #[test]
    fn there_must_be_a_rollback_under_way() {
        TestFramework::<Environment>::with(())
            .given(one_live())
            .when(complete(1))
            .then_expect_error(DomainError::RollbackNotInProgress);
        TestFramework::<Environment>::with(())
            .given(one_live())
            .when(complete(7))
            .then_expect_error(DomainError::DeploymentNotFound);
    }
}
