//! `RejectRelease`: an approver rejects a release for an environment. A rejection blocks
//! deployment there until the same person approves instead.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{Release, ReleaseEvent};
use crate::clearance::Decision;
use crate::error::DomainError;
use crate::ids::{non_empty_text, EnvironmentName, Person};
use crate::roles::Role;

/// Reject a release for an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectRelease {
    /// The environment.
    pub environment: EnvironmentName,
    /// Who rejects (from the token).
    pub approver: Person,
    /// Their roles (from the token).
    pub approver_roles: BTreeSet<Role>,
    /// Why.
    pub reason: String,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl RejectRelease {
    /// Records the rejection. Anyone with the approver role may reject, including the
    /// release's own authors: stopping a release needs no separation of duties.
    pub fn decide(self, state: &Release) -> Result<Vec<ReleaseEvent>, DomainError> {
        state.open()?;
        if !self.approver_roles.contains(&Role::Approver) {
            return Err(DomainError::RoleRequired(Role::Approver));
        }
        if state.decision_of(&self.environment, &self.approver) == Some(Decision::Reject) {
            return Err(DomainError::AlreadyDecided(self.approver.to_string()));
        }
        let reason = non_empty_text("reason", &self.reason, 2000)?;
        Ok(vec![ReleaseEvent::ApprovalRejected {
            environment: self.environment,
            approver: self.approver,
            roles: self.approver_roles,
            reason,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::fixtures::{created, granted, now, rejected, withdrawn};
    use crate::release::ReleaseCommand;
    use crate::testsupport::{env, person};
    use cqrs_es::test::TestFramework;

    fn reject(who: &str, roles: &[Role], reason: &str) -> ReleaseCommand {
        ReleaseCommand::Reject(RejectRelease {
            environment: env("production"),
            approver: person(who),
            approver_roles: roles.iter().copied().collect(),
            reason: reason.into(),
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
    fn an_approver_rejects_and_may_reverse_an_approval() {
        TestFramework::<Release>::with(())
            .given(vec![created(), granted("production", "ann@example.com")])
            .when(reject("ann@example.com", &[Role::Approver], "not yet"))
            .then_expect_events(vec![rejected("production", "ann@example.com")]);
    }

    #[test]
    fn rejecting_needs_the_approver_role() {
        assert_eq!(
            run(
                vec![created()],
                reject("ann@example.com", &[Role::Ci], "no")
            ),
            Err(DomainError::RoleRequired(Role::Approver))
        );
    }

    #[test]
    fn a_rejection_needs_a_reason() {
        assert!(matches!(
            run(
                vec![created()],
                reject("ann@example.com", &[Role::Approver], "")
            ),
            Err(DomainError::InvalidValue {
                field: "reason",
                ..
            })
        ));
    }

    #[test]
    fn the_same_rejection_is_not_repeated() {
        assert!(matches!(
            run(
                vec![created(), rejected("production", "ann@example.com")],
                reject("ann@example.com", &[Role::Approver], "still no")
            ),
            Err(DomainError::AlreadyDecided(_))
        ));
    }

    #[test]
    fn unknown_and_withdrawn_releases_are_refused() {
        assert_eq!(
            run(vec![], reject("ann@example.com", &[Role::Approver], "no")),
            Err(DomainError::ReleaseNotFound)
        );
        assert_eq!(
            run(
                vec![created(), withdrawn()],
                reject("ann@example.com", &[Role::Approver], "no")
            ),
            Err(DomainError::ReleaseWithdrawn)
        );
    }
}
