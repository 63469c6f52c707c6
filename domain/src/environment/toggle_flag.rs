//! `ToggleFeatureFlag`: switch a feature flag in an environment.

use chrono::{DateTime, Utc};

use super::{Environment, EnvironmentEvent};
use crate::error::DomainError;
use crate::ids::{EnvironmentName, FlagName, Person, ServiceName};

/// Toggle a feature flag.
#[derive(Debug, Clone, PartialEq)]
pub struct ToggleFeatureFlag {
    /// The service.
    pub service: ServiceName,
    /// The environment.
    pub environment: EnvironmentName,
    /// The flag.
    pub flag: FlagName,
    /// The new state.
    pub enabled: bool,
    /// Who (from the token).
    pub actor: Person,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl ToggleFeatureFlag {
    /// Records the change; setting a flag to the state it has is refused so the ledger
    /// holds only real changes.
    pub fn decide(self, state: &Environment) -> Result<Vec<EnvironmentEvent>, DomainError> {
        state.check_key(&self.service, &self.environment)?;
        let current = state.flags.get(&self.flag).copied().unwrap_or(false);
        if state.flags.contains_key(&self.flag) && current == self.enabled {
            let word = if self.enabled { "enabled" } else { "disabled" };
            return Err(DomainError::FlagUnchanged(self.flag.to_string(), word));
        }
        Ok(vec![EnvironmentEvent::FeatureFlagToggled {
            service: self.service,
            environment: self.environment,
            flag: self.flag,
            enabled: self.enabled,
            toggled_by: self.actor,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::EnvironmentCommand;
    use crate::testsupport::{at, env, person, service};
    use cqrs_es::test::TestFramework;

    fn flag() -> FlagName {
        FlagName::parse("new-checkout").expect("valid")
    }

    fn toggle(enabled: bool) -> EnvironmentCommand {
        EnvironmentCommand::ToggleFeatureFlag(ToggleFeatureFlag {
            service: service("api"),
            environment: env("production"),
            flag: flag(),
            enabled,
            actor: person("pm@example.com"),
            requested_at: at(0),
        })
    }

    fn toggled(enabled: bool) -> EnvironmentEvent {
        EnvironmentEvent::FeatureFlagToggled {
            service: service("api"),
            environment: env("production"),
            flag: flag(),
            enabled,
            toggled_by: person("pm@example.com"),
        }
    }

    #[test]
    fn a_flag_is_switched_on_and_off() {
        TestFramework::<Environment>::with(())
            .given_no_previous_events()
            .when(toggle(true))
            .then_expect_events(vec![toggled(true)]);
        TestFramework::<Environment>::with(())
            .given(vec![toggled(true)])
            .when(toggle(false))
            .then_expect_events(vec![toggled(false)]);
    }

    #[test]
    fn an_unchanged_flag_is_refused() {
        TestFramework::<Environment>::with(())
            .given(vec![toggled(true)])
            .when(toggle(true))
            .then_expect_error(DomainError::FlagUnchanged("new-checkout".into(), "enabled"));
    }
}
