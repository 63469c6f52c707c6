//! `ApproveRelease`: an approver approves a release for an environment. Separation of
//! duties: the creator and commit authors may not approve when the policy forbids it, and
//! one person counts once.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{Release, ReleaseEvent};
use crate::clearance::{self_relation, Decision};
use crate::error::DomainError;
use crate::ids::{EnvironmentName, Person};
use crate::policy::ApprovalRules;
use crate::roles::Role;

/// Approve a release for an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ApproveRelease {
    /// The environment.
    pub environment: EnvironmentName,
    /// Who approves (from the token, never from the body).
    pub approver: Person,
    /// Their roles (from the token).
    pub approver_roles: BTreeSet<Role>,
    /// An optional comment.
    pub comment: Option<String>,
    /// The approval rules of the environment's policy in force.
    pub rules: ApprovalRules,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

/// Checks that `approver` may decide on the release at all: holds the approver role and,
/// when the rules forbid it, is not the creator or a commit author.
pub(super) fn check_approver(
    state: &Release,
    approver: &Person,
    roles: &BTreeSet<Role>,
    required_role: Role,
    forbid_self_approval: bool,
) -> Result<(), DomainError> {
    if !roles.contains(&required_role) {
        return Err(DomainError::RoleRequired(required_role));
    }
    if forbid_self_approval {
        let info = state.info()?;
        if let Some(relation) = self_relation(&info.created_by, &info.commit_authors, approver) {
            return Err(DomainError::SelfApproval {
                approver: approver.to_string(),
                relation,
            });
        }
    }
    Ok(())
}

impl ApproveRelease {
    /// Records the approval.
    pub fn decide(self, state: &Release) -> Result<Vec<ReleaseEvent>, DomainError> {
        state.open()?;
        check_approver(
            state,
            &self.approver,
            &self.approver_roles,
            Role::Approver,
            self.rules.forbid_self_approval,
        )?;
        if state.decision_of(&self.environment, &self.approver) == Some(Decision::Approve) {
            return Err(DomainError::AlreadyDecided(self.approver.to_string()));
        }
        let comment = self
            .comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
            return Err(DomainError::invalid(
                "comment",
                "must be at most 2000 characters",
            ));
        }
        Ok(vec![ReleaseEvent::ApprovalGranted {
            environment: self.environment,
            approver: self.approver,
            roles: self.approver_roles,
            comment,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EnvironmentTier;
    use crate::policy::PolicyRules;
    use crate::release::fixtures::{created, granted, now, rejected, withdrawn};
    use crate::release::ReleaseCommand;
    use crate::testsupport::{env, person};
    use cqrs_es::test::TestFramework;

    fn approve(who: &str, roles: &[Role]) -> ReleaseCommand {
        ReleaseCommand::Approve(ApproveRelease {
            environment: env("production"),
            approver: person(who),
            approver_roles: roles.iter().copied().collect(),
            comment: Some(" looks good ".into()),
            rules: PolicyRules::defaults_for(EnvironmentTier::Production).approvals,
            requested_at: now(),
        })
    }

    fn run(
        given: Vec<ReleaseEvent>,
        command: ReleaseCommand,
    ) -> Result<Vec<ReleaseEvent>, DomainError> {
        crate::testsupport::when::<Release>(given, command)
    }

    #[test]
    fn an_approver_approves() {
        TestFramework::<Release>::with(())
            .given(vec![created()])
            .when(approve("ann@example.com", &[Role::Approver]))
            .then_expect_events(vec![ReleaseEvent::ApprovalGranted {
                environment: env("production"),
                approver: person("ann@example.com"),
                roles: BTreeSet::from([Role::Approver]),
                comment: Some("looks good".into()),
            }]);
    }

    #[test]
    fn the_creator_may_not_approve() {
        assert!(matches!(
            run(vec![created()], approve("ci-bot", &[Role::Approver])),
            Err(DomainError::SelfApproval { .. })
        ));
    }

    #[test]
    fn a_commit_author_may_not_approve_under_any_identity_form() {
        for who in [
            "dev@example.com",
            "DEV@example.com",
            "Dev <dev@example.com>",
        ] {
            assert!(
                matches!(
                    run(vec![created()], approve(who, &[Role::Approver])),
                    Err(DomainError::SelfApproval { .. })
                ),
                "{who}"
            );
        }
    }

    #[test]
    fn self_approval_is_allowed_when_the_policy_allows_it() {
        let ReleaseCommand::Approve(mut command) = approve("ci-bot", &[Role::Approver]) else {
            unreachable!()
        };
        command.rules.forbid_self_approval = false;
        assert!(run(vec![created()], ReleaseCommand::Approve(command)).is_ok());
    }

    #[test]
    fn approving_needs_the_approver_role() {
        assert_eq!(
            run(
                vec![created()],
                approve("ann@example.com", &[Role::Ci, Role::Admin])
            ),
            Err(DomainError::RoleRequired(Role::Approver))
        );
    }

    #[test]
    fn one_person_approves_once() {
        assert!(matches!(
            run(
                vec![created(), granted("production", "ann@example.com")],
                approve("Ann <ANN@example.com>", &[Role::Approver])
            ),
            Err(DomainError::AlreadyDecided(_))
        ));
    }

    #[test]
    fn a_rejecter_may_change_their_mind() {
        assert!(run(
            vec![created(), rejected("production", "ann@example.com")],
            approve("ann@example.com", &[Role::Approver])
        )
        .is_ok());
    }

    #[test]
    fn unknown_and_withdrawn_releases_are_refused() {
        assert_eq!(
            run(vec![], approve("ann@example.com", &[Role::Approver])),
            Err(DomainError::ReleaseNotFound)
        );
        assert_eq!(
            run(
                vec![created(), withdrawn()],
                approve("ann@example.com", &[Role::Approver])
            ),
            Err(DomainError::ReleaseWithdrawn)
        );
    }

    #[test]
    fn an_overlong_comment_is_invalid() {
        let ReleaseCommand::Approve(mut command) = approve("ann@example.com", &[Role::Approver])
        else {
            unreachable!()
        };
        command.comment = Some("x".repeat(2001));
        assert!(matches!(
            run(vec![created()], ReleaseCommand::Approve(command)),
            Err(DomainError::InvalidValue {
                field: "comment",
                ..
            })
        ));
    }
}
