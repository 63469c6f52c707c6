//! `ApproveHotfix`: an incident commander opens the hotfix lane for a release and
//! environment. A hotfix deployment may then proceed with this one approval; the regular
//! approvals are due retroactively within the policy's window.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::approve::check_approver;
use super::{Release, ReleaseEvent};
use crate::error::DomainError;
use crate::ids::{non_empty_text, EnvironmentName, Person};
use crate::policy::HotfixRules;
use crate::roles::Role;

/// Open the hotfix lane.
#[derive(Debug, Clone, PartialEq)]
pub struct ApproveHotfix {
    /// The environment.
    pub environment: EnvironmentName,
    /// The incident commander (from the token).
    pub approver: Person,
    /// Their roles (from the token).
    pub approver_roles: BTreeSet<Role>,
    /// Why the hotfix is needed (e.g. the incident).
    pub reason: String,
    /// The hotfix rules of the environment's policy in force.
    pub hotfix: HotfixRules,
    /// Whether the policy forbids self-approval.
    pub forbid_self_approval: bool,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl ApproveHotfix {
    /// Records the hotfix approval when the lane is open and the approver qualifies.
    pub fn decide(self, state: &Release) -> Result<Vec<ReleaseEvent>, DomainError> {
        state.open()?;
        if !self.hotfix.allowed {
            return Err(DomainError::DeploymentRefused(vec![
                crate::error::DeploymentRefusal::HotfixNotAllowed,
            ]));
        }
        check_approver(
            state,
            &self.approver,
            &self.approver_roles,
            self.hotfix.approver_role,
            self.forbid_self_approval,
        )?;
        let already = state
            .approvals
            .get(&self.environment)
            .and_then(|env| env.hotfix_approved_by.as_ref());
        if let Some(existing) = already {
            return Err(DomainError::AlreadyDecided(existing.to_string()));
        }
        let reason = non_empty_text("reason", &self.reason, 2000)?;
        Ok(vec![ReleaseEvent::HotfixApproved {
            environment: self.environment,
            approver: self.approver,
            reason,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EnvironmentTier;
    use crate::policy::PolicyRules;
    use crate::release::fixtures::{created, now, withdrawn};
    use crate::release::ReleaseCommand;
    use crate::testsupport::{env, person};
    use cqrs_es::test::TestFramework;

    fn command(who: &str, roles: &[Role]) -> ApproveHotfix {
        ApproveHotfix {
            environment: env("production"),
            approver: person(who),
            approver_roles: roles.iter().copied().collect(),
            reason: "INC-7: checkout down".into(),
            hotfix: PolicyRules::defaults_for(EnvironmentTier::Production).hotfix,
            forbid_self_approval: true,
            requested_at: now(),
        }
    }

    fn approved() -> ReleaseEvent {
        ReleaseEvent::HotfixApproved {
            environment: env("production"),
            approver: person("ic@example.com"),
            reason: "INC-7: checkout down".into(),
        }
    }

    fn run(
        given: Vec<ReleaseEvent>,
        command: ApproveHotfix,
    ) -> Result<Vec<ReleaseEvent>, DomainError> {
        TestFramework::<Release>::with(())
            .given(given)
            .when(ReleaseCommand::ApproveHotfix(command))
            .inspect_result()
    }

    #[test]
    fn an_incident_commander_opens_the_lane() {
        assert_eq!(
            run(
                vec![created()],
                command("ic@example.com", &[Role::IncidentCommander])
            ),
            Ok(vec![approved()])
        );
    }

    #[test]
    fn only_the_policy_role_opens_the_lane() {
        assert_eq!(
            run(
                vec![created()],
                command("ann@example.com", &[Role::Approver])
            ),
            Err(DomainError::RoleRequired(Role::IncidentCommander))
        );
    }

    #[test]
    fn a_commit_author_may_not_open_the_lane() {
        assert!(matches!(
            run(
                vec![created()],
                command("dev@example.com", &[Role::IncidentCommander])
            ),
            Err(DomainError::SelfApproval { .. })
        ));
    }

    #[test]
    fn the_lane_is_opened_once() {
        assert!(matches!(
            run(
                vec![created(), approved()],
                command("ic2@example.com", &[Role::IncidentCommander])
            ),
            Err(DomainError::AlreadyDecided(_))
        ));
    }

    #[test]
    fn a_closed_lane_cannot_be_opened() {
        let mut closed = command("ic@example.com", &[Role::IncidentCommander]);
        closed.hotfix.allowed = false;
        assert!(matches!(
            run(vec![created()], closed),
            Err(DomainError::DeploymentRefused(_))
        ));
    }

    #[test]
    fn a_hotfix_approval_needs_a_reason() {
        let mut blank = command("ic@example.com", &[Role::IncidentCommander]);
        blank.reason = " ".into();
        assert!(matches!(
            run(vec![created()], blank),
            Err(DomainError::InvalidValue {
                field: "reason",
                ..
            })
        ));
    }

    #[test]
    fn unknown_and_withdrawn_releases_are_refused() {
        assert_eq!(
            run(
                vec![],
                command("ic@example.com", &[Role::IncidentCommander])
            ),
            Err(DomainError::ReleaseNotFound)
        );
        assert_eq!(
            run(
                vec![created(), withdrawn()],
                command("ic@example.com", &[Role::IncidentCommander])
            ),
            Err(DomainError::ReleaseWithdrawn)
        );
    }
}
