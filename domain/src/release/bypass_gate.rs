//! `BypassGate`: let a release past a gate, by a role the policy names, with a reason.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{Release, ReleaseEvent};
use crate::error::DomainError;
use crate::gate::GateKind;
use crate::ids::{non_empty_text, Person};
use crate::roles::Role;

/// Bypass a gate.
#[derive(Debug, Clone, PartialEq)]
pub struct BypassGate {
    /// The gate.
    pub gate: GateKind,
    /// Why; recorded for auditors.
    pub reason: String,
    /// Who (from the token).
    pub actor: Person,
    /// Their roles (from the token).
    pub actor_roles: BTreeSet<Role>,
    /// The roles the policy in force allows to bypass gates.
    pub permitted_roles: BTreeSet<Role>,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl BypassGate {
    /// Records the bypass when one of the actor's roles is permitted.
    pub fn decide(self, state: &Release) -> Result<Vec<ReleaseEvent>, DomainError> {
        state.open()?;
        if self.actor_roles.is_disjoint(&self.permitted_roles) {
            return Err(DomainError::BypassNotPermitted);
        }
        let reason = non_empty_text("reason", &self.reason, 2000)?;
        Ok(vec![ReleaseEvent::GateBypassed {
            gate: self.gate,
            reason,
            bypassed_by: self.actor,
            roles: self.actor_roles,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::fixtures::{created, now, withdrawn};
    use crate::release::ReleaseCommand;
    use crate::testsupport::person;
    use cqrs_es::test::TestFramework;

    fn bypass(roles: &[Role], reason: &str) -> ReleaseCommand {
        ReleaseCommand::BypassGate(BypassGate {
            gate: GateKind::Security,
            reason: reason.into(),
            actor: person("root@example.com"),
            actor_roles: roles.iter().copied().collect(),
            permitted_roles: BTreeSet::from([Role::Admin]),
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
    fn a_permitted_role_bypasses_with_a_reason() {
        TestFramework::<Release>::with(())
            .given(vec![created()])
            .when(bypass(
                &[Role::Admin],
                "  scanner outage, CVE list reviewed by hand ",
            ))
            .then_expect_events(vec![ReleaseEvent::GateBypassed {
                gate: GateKind::Security,
                reason: "scanner outage, CVE list reviewed by hand".into(),
                bypassed_by: person("root@example.com"),
                roles: BTreeSet::from([Role::Admin]),
            }]);
    }

    #[test]
    fn other_roles_may_not_bypass() {
        assert_eq!(
            run(
                vec![created()],
                bypass(&[Role::Ci, Role::Approver], "because")
            ),
            Err(DomainError::BypassNotPermitted)
        );
    }

    #[test]
    fn a_bypass_needs_a_reason() {
        assert!(matches!(
            run(vec![created()], bypass(&[Role::Admin], " ")),
            Err(DomainError::InvalidValue {
                field: "reason",
                ..
            })
        ));
    }

    #[test]
    fn unknown_and_withdrawn_releases_are_refused() {
        assert_eq!(
            run(vec![], bypass(&[Role::Admin], "x")),
            Err(DomainError::ReleaseNotFound)
        );
        assert_eq!(
            run(vec![created(), withdrawn()], bypass(&[Role::Admin], "x")),
            Err(DomainError::ReleaseWithdrawn)
        );
    }
}
