//! `StartRollback`: roll back a deployment in progress, or the live one, to the last
//! successful version before it.

use chrono::{DateTime, Utc};

use super::{DeploymentStatus, Environment, EnvironmentEvent};
use crate::error::DomainError;
use crate::ids::{non_empty_text, DeploymentId, Person};

/// Start a rollback.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRollback {
    /// The deployment to roll back.
    pub deployment_id: DeploymentId,
    /// Why.
    pub reason: String,
    /// When it started (client time, or the server's when absent).
    pub started_at: DateTime<Utc>,
    /// Who (from the token).
    pub actor: Person,
}

impl StartRollback {
    /// Starts the rollback when there is a version to return to.
    pub fn decide(self, state: &Environment) -> Result<Vec<EnvironmentEvent>, DomainError> {
        let status = state
            .deployments
            .get(&self.deployment_id)
            .ok_or(DomainError::DeploymentNotFound)?;
        let is_live = state
            .live
            .as_ref()
            .is_some_and(|live| live.deployment_id == self.deployment_id);
        let target = match status {
            DeploymentStatus::InProgress => state.rollback_target_of_active(),
            DeploymentStatus::Completed if is_live => state.previous_live.last().cloned(),
            DeploymentStatus::RollingBack => {
                return Err(DomainError::DeploymentNotInProgress(status.as_str()))
            }
            _ => return Err(DomainError::RollbackNotPossible),
        };
        if state.rollback.is_some() {
            return Err(DomainError::DeploymentInProgress(
                self.deployment_id.to_string(),
            ));
        }
        let target = target.ok_or(DomainError::NoRollbackTarget)?;
        let reason = non_empty_text("reason", &self.reason, 2000)?;
        Ok(vec![EnvironmentEvent::RollbackStarted {
            deployment_id: self.deployment_id,
            reason,
            target,
            started_at: self.started_at,
            started_by: self.actor,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::fixtures::{completed, one_live, running, started};
    use crate::environment::{EnvironmentCommand, Strategy};
    use crate::testsupport::{at, deployment_id, person};
    use cqrs_es::test::TestFramework;

    fn rollback(n: u128) -> EnvironmentCommand {
        EnvironmentCommand::StartRollback(StartRollback {
            deployment_id: deployment_id(n),
            reason: "errors up".into(),
            started_at: at(30),
            actor: person("sre@example.com"),
        })
    }

    fn rollback_started(n: u128, target: u128) -> EnvironmentEvent {
        EnvironmentEvent::RollbackStarted {
            deployment_id: deployment_id(n),
            reason: "errors up".into(),
            target: running(target),
            started_at: at(30),
            started_by: person("sre@example.com"),
        }
    }

    fn run(given: Vec<EnvironmentEvent>, n: u128) -> Result<Vec<EnvironmentEvent>, DomainError> {
        TestFramework::<Environment>::with(())
            .given(given)
            .when(rollback(n))
            .inspect_result()
    }

    #[test]
    fn a_deployment_in_progress_rolls_back_to_the_live_version() {
        let mut given = one_live();
        given.push(started(2, Strategy::Canary, 10));
        assert_eq!(run(given, 2), Ok(vec![rollback_started(2, 1)]));
    }

    #[test]
    fn the_live_deployment_rolls_back_to_the_one_before() {
        let mut given = one_live();
        given.extend([started(2, Strategy::Standard, 10), completed(2, 15)]);
        assert_eq!(run(given, 2), Ok(vec![rollback_started(2, 1)]));
    }

    #[test]
    fn without_an_earlier_version_there_is_no_target() {
        assert_eq!(run(one_live(), 1), Err(DomainError::NoRollbackTarget));
        assert_eq!(
            run(vec![started(1, Strategy::Standard, 0)], 1),
            Err(DomainError::NoRollbackTarget)
        );
    }

    #[test]
    fn a_replaced_or_failed_deployment_cannot_be_rolled_back() {
        let mut given = one_live();
        given.extend([started(2, Strategy::Standard, 10), completed(2, 15)]);
        assert_eq!(run(given, 1), Err(DomainError::RollbackNotPossible));
        let mut failed = one_live();
        failed.extend([
            started(2, Strategy::Standard, 10),
            EnvironmentEvent::DeploymentFailed {
                deployment_id: deployment_id(2),
                reason: "x".into(),
                finished_at: at(11),
            },
        ]);
        assert_eq!(run(failed, 2), Err(DomainError::RollbackNotPossible));
    }

    #[test]
    fn a_rollback_is_not_started_twice() {
        let mut given = one_live();
        given.extend([started(2, Strategy::Standard, 10), rollback_started(2, 1)]);
        assert_eq!(
            run(given, 2),
            Err(DomainError::DeploymentNotInProgress("rolling_back"))
        );
    }

    #[test]
    fn unknown_deployments_and_blank_reasons_are_refused() {
        assert_eq!(run(one_live(), 9), Err(DomainError::DeploymentNotFound));
        let mut given = one_live();
        given.push(started(2, Strategy::Standard, 10));
        let blank = TestFramework::<Environment>::with(())
            .given(given)
            .when(EnvironmentCommand::StartRollback(StartRollback {
                deployment_id: deployment_id(2),
                reason: "".into(),
                started_at: at(30),
                actor: person("sre@example.com"),
            }))
            .inspect_result();
        assert!(matches!(
            blank,
            Err(DomainError::InvalidValue {
                field: "reason",
                ..
            })
        ));
    }
}
