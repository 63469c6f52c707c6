//! `DefinePolicy`: put a new version of an environment's rules into force.

use chrono::{DateTime, Utc};

use super::{Policy, PolicyEvent, PolicyRules};
use crate::error::DomainError;
use crate::ids::{EnvironmentName, Person};
use crate::roles::Role;

/// Put a new version of an environment's policy into force (admins only).
#[derive(Debug, Clone, PartialEq)]
pub struct DefinePolicy {
    /// The environment governed.
    pub environment: EnvironmentName,
    /// The rules.
    pub rules: PolicyRules,
    /// Who defines it (from the token).
    pub actor: Person,
    /// The actor's roles (from the token).
    pub actor_roles: Vec<Role>,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl DefinePolicy {
    /// Accepts valid rules that differ from those in force, as the next version.
    pub fn decide(self, state: &Policy) -> Result<Vec<PolicyEvent>, DomainError> {
        if !self.actor_roles.contains(&Role::Admin) {
            return Err(DomainError::RoleRequired(Role::Admin));
        }
        if state
            .environment
            .as_ref()
            .is_some_and(|env| env != &self.environment)
        {
            return Err(DomainError::invalid(
                "environment",
                "a policy stream governs exactly one environment",
            ));
        }
        self.rules.validate()?;
        if state.rules.as_ref() == Some(&self.rules) {
            return Err(DomainError::PolicyUnchanged);
        }
        Ok(vec![PolicyEvent::PolicyDefined {
            environment: self.environment,
            version: state.version + 1,
            rules: self.rules,
            defined_by: self.actor,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EnvironmentTier;
    use crate::testsupport::{at, env, person};
    use cqrs_es::test::TestFramework;

    type Fixture = TestFramework<Policy>;

    fn define(rules: PolicyRules, roles: &[Role]) -> super::super::PolicyCommand {
        super::super::PolicyCommand::Define(DefinePolicy {
            environment: env("production"),
            rules,
            actor: person("root@example.com"),
            actor_roles: roles.to_vec(),
            requested_at: at(0),
        })
    }

    fn defined(version: u64, rules: PolicyRules) -> PolicyEvent {
        PolicyEvent::PolicyDefined {
            environment: env("production"),
            version,
            rules,
            defined_by: person("root@example.com"),
        }
    }

    #[test]
    fn the_first_definition_is_version_1() {
        let rules = PolicyRules::defaults_for(EnvironmentTier::Production);
        Fixture::with(())
            .given_no_previous_events()
            .when(define(rules.clone(), &[Role::Admin]))
            .then_expect_events(vec![defined(1, rules)]);
    }

    #[test]
    fn a_changed_policy_gets_the_next_version() {
        let old = PolicyRules::defaults_for(EnvironmentTier::Production);
        let mut new = old.clone();
        new.approvals.min_approvals = 3;
        Fixture::with(())
            .given(vec![defined(1, old)])
            .when(define(new.clone(), &[Role::Admin]))
            .then_expect_events(vec![defined(2, new)]);
    }

    #[test]
    fn an_unchanged_policy_is_refused() {
        let rules = PolicyRules::defaults_for(EnvironmentTier::Production);
        Fixture::with(())
            .given(vec![defined(1, rules.clone())])
            .when(define(rules, &[Role::Admin]))
            .then_expect_error(DomainError::PolicyUnchanged);
    }

    #[test]
    fn invalid_rules_are_refused() {
        let mut rules = PolicyRules::defaults_for(EnvironmentTier::Production);
        rules.hotfix.retroactive_window_hours = 0;
        let result = Fixture::with(())
            .given_no_previous_events()
            .when(define(rules, &[Role::Admin]))
            .inspect_result();
        assert!(matches!(result, Err(DomainError::InvalidValue { .. })));
    }

    #[test]
    fn only_admins_define_policies() {
        let rules = PolicyRules::defaults_for(EnvironmentTier::Production);
        Fixture::with(())
            .given_no_previous_events()
            .when(define(rules, &[Role::Approver, Role::Ci]))
            .then_expect_error(DomainError::RoleRequired(Role::Admin));
    }

    #[test]
    fn a_policy_stream_cannot_change_environment() {
        let rules = PolicyRules::defaults_for(EnvironmentTier::Production);
        let mut staging = defined(1, rules.clone());
        let PolicyEvent::PolicyDefined { environment, .. } = &mut staging;
        *environment = env("staging");
        let result = Fixture::with(())
            .given(vec![staging])
            .when(define(rules, &[Role::Admin]))
            .inspect_result();
        assert!(matches!(
            result,
            Err(DomainError::InvalidValue {
                field: "environment",
                ..
            })
        ));
    }
}
