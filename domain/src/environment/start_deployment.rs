//! `StartDeployment`: begin deploying a release, if policy clears it.

use chrono::{DateTime, Utc};

use super::{Environment, EnvironmentEvent, Strategy};
use crate::clearance::{clear_deployment, ReleaseFacts};
use crate::error::DomainError;
use crate::ids::{DeploymentId, EnvironmentName, IncidentId, Person, ServiceName};
use crate::policy::AppliedPolicy;

/// Start a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct StartDeployment {
    /// Minted by the command service.
    pub deployment_id: DeploymentId,
    /// The service.
    pub service: ServiceName,
    /// The environment.
    pub environment: EnvironmentName,
    /// The release's facts for this environment (from the Release aggregate).
    pub release: ReleaseFacts,
    /// The strategy.
    pub strategy: Strategy,
    /// The environment's policy in force.
    pub policy: AppliedPolicy,
    /// The incident this deployment remediates, if any.
    pub remediates_incident: Option<IncidentId>,
    /// When it started (client time, or the server's when absent).
    pub started_at: DateTime<Utc>,
    /// Who starts it (from the token).
    pub actor: Person,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl StartDeployment {
    /// Starts the deployment when nothing else is in progress and policy clears it.
    pub fn decide(self, state: &Environment) -> Result<Vec<EnvironmentEvent>, DomainError> {
        state.check_key(&self.service, &self.environment)?;
        if self.release.service != self.service {
            return Err(DomainError::ServiceMismatch {
                release_service: self.release.service.to_string(),
                environment_service: self.service.to_string(),
            });
        }
        if state.deployments.contains_key(&self.deployment_id) {
            return Err(DomainError::AlreadyExists);
        }
        if let Some(active) = &state.active {
            return Err(DomainError::DeploymentInProgress(
                active.deployment_id.to_string(),
            ));
        }
        if let Some(rollback) = &state.rollback {
            return Err(DomainError::DeploymentInProgress(
                rollback.deployment_id.to_string(),
            ));
        }
        let clearance = clear_deployment(
            &self.policy,
            &self.release,
            self.strategy,
            self.started_at,
            state.freeze.as_deref(),
        )?;
        let canary_stages = if self.strategy == Strategy::Canary {
            self.policy.rules.canary_stages.clone()
        } else {
            Vec::new()
        };
        Ok(vec![EnvironmentEvent::DeploymentStarted {
            deployment_id: self.deployment_id,
            service: self.service,
            environment: self.environment,
            release_id: self.release.release_id,
            version: self.release.version,
            strategy: self.strategy,
            started_at: self.started_at,
            started_by: self.actor,
            clearance,
            remediates_incident: self.remediates_incident,
            canary_stages,
            rollback_triggers: self.policy.rules.rollback_triggers,
            previous: state.live.clone(),
        }])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::clearance::{ApproverDecision, Decision, GateStanding};
    use crate::environment::fixtures::{one_live, running, started, version};
    use crate::environment::EnvironmentCommand;
    use crate::error::DeploymentRefusal;
    use crate::gate::GateKind;
    use crate::ids::EnvironmentTier;
    use crate::roles::Role;
    use crate::testsupport::{at, deployment_id, env, person, release_id, service};
    use cqrs_es::test::TestFramework;

    fn facts(n: u128) -> ReleaseFacts {
        let approve = |who: &str| ApproverDecision {
            approver: person(who),
            roles: BTreeSet::from([Role::Approver]),
            decision: Decision::Approve,
        };
        ReleaseFacts {
            release_id: release_id(n),
            service: service("api"),
            version: version(n),
            withdrawn: false,
            gates: BTreeMap::from([
                (GateKind::Testing, GateStanding::Passed),
                (GateKind::Security, GateStanding::Passed),
            ]),
            decisions: vec![approve("ann@example.com"), approve("bob@example.com")],
            hotfix_approved_by: None,
            creator: person("ci-bot"),
            commit_authors: vec![person("dev@example.com")],
        }
    }

    fn start(n: u128, strategy: Strategy) -> StartDeployment {
        StartDeployment {
            deployment_id: deployment_id(n),
            service: service("api"),
            environment: env("production"),
            release: facts(n),
            strategy,
            policy: AppliedPolicy {
                version: 1,
                rules: crate::policy::PolicyRules::defaults_for(EnvironmentTier::Production),
            },
            remediates_incident: None,
            started_at: at(30),
            actor: person("ci-bot"),
            requested_at: at(30),
        }
    }

    fn run(
        given: Vec<EnvironmentEvent>,
        command: StartDeployment,
    ) -> Result<Vec<EnvironmentEvent>, DomainError> {
        TestFramework::<super::Environment>::with(())
            .given(given)
            .when(EnvironmentCommand::StartDeployment(command))
            .inspect_result()
    }

    #[test]
    fn a_cleared_canary_starts_with_the_policy_stages_and_the_previous_version() {
        let events = run(one_live(), start(2, Strategy::Canary)).expect("started");
        let [EnvironmentEvent::DeploymentStarted {
            canary_stages,
            previous,
            clearance,
            ..
        }] = &events[..]
        else {
            panic!("expected DeploymentStarted, got {events:?}");
        };
        assert_eq!(canary_stages.len(), 3);
        assert_eq!(previous, &Some(running(1)));
        assert_eq!(clearance.policy_version, 1);
    }

    #[test]
    fn only_one_deployment_is_in_progress() {
        let mut given = one_live();
        given.push(started(2, Strategy::Standard, 20));
        assert!(matches!(
            run(given, start(3, Strategy::Standard)),
            Err(DomainError::DeploymentInProgress(_))
        ));
    }

    #[test]
    fn a_rollback_in_progress_blocks_new_deployments() {
        let mut given = one_live();
        given.push(started(2, Strategy::Standard, 20));
        given.push(EnvironmentEvent::RollbackStarted {
            deployment_id: deployment_id(2),
            reason: "errors".into(),
            target: running(1),
            started_at: at(25),
            started_by: person("sre@example.com"),
        });
        assert!(matches!(
            run(given, start(3, Strategy::Standard)),
            Err(DomainError::DeploymentInProgress(_))
        ));
    }

    #[test]
    fn a_deployment_id_is_used_once() {
        assert_eq!(
            run(one_live(), start(1, Strategy::Standard)),
            Err(DomainError::AlreadyExists)
        );
    }

    #[test]
    fn a_release_of_another_service_is_refused() {
        let mut command = start(2, Strategy::Standard);
        command.release.service = service("billing");
        assert!(matches!(
            run(vec![], command),
            Err(DomainError::ServiceMismatch { .. })
        ));
    }

    #[test]
    fn a_command_for_another_environment_is_refused() {
        let mut command = start(2, Strategy::Standard);
        command.environment = env("staging");
        assert!(matches!(
            run(one_live(), command),
            Err(DomainError::InvalidValue {
                field: "environment",
                ..
            })
        ));
    }

    #[test]
    fn an_unapproved_production_deployment_is_refused_with_its_reasons() {
        let mut command = start(2, Strategy::Standard);
        command.release.decisions.clear();
        assert_eq!(
            run(one_live(), command),
            Err(DomainError::DeploymentRefused(vec![
                DeploymentRefusal::ApprovalsIncomplete { have: 0, need: 2 },
                DeploymentRefusal::ApproverRolesMissing {
                    roles: vec![Role::Approver]
                },
            ]))
        );
    }

    #[test]
    fn an_environment_freeze_refuses_regular_deployments() {
        let mut given = one_live();
        given.push(EnvironmentEvent::ChangeFreezeStarted {
            service: service("api"),
            environment: env("production"),
            reason: "incident 12".into(),
            started_by: person("ic@example.com"),
        });
        assert_eq!(
            run(given, start(2, Strategy::Standard)),
            Err(DomainError::DeploymentRefused(vec![
                DeploymentRefusal::ChangeFrozen {
                    reason: "incident 12".into()
                }
            ]))
        );
    }
}
