//! `StartFreeze` and `EndFreeze`: an ad-hoc change freeze on an environment (during an
//! incident, a launch, an audit). Scheduled freezes live in the policy instead.

use chrono::{DateTime, Utc};

use super::{Environment, EnvironmentEvent};
use crate::error::DomainError;
use crate::ids::{non_empty_text, EnvironmentName, Person, ServiceName};

/// Start a change freeze.
#[derive(Debug, Clone, PartialEq)]
pub struct StartFreeze {
    /// The service.
    pub service: ServiceName,
    /// The environment.
    pub environment: EnvironmentName,
    /// Why; shown to whoever is refused.
    pub reason: String,
    /// Who (from the token).
    pub actor: Person,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl StartFreeze {
    /// Freezes an environment that is not frozen yet.
    pub fn decide(self, state: &Environment) -> Result<Vec<EnvironmentEvent>, DomainError> {
        state.check_key(&self.service, &self.environment)?;
        if state.freeze.is_some() {
            return Err(DomainError::AlreadyFrozen);
        }
        let reason = non_empty_text("reason", &self.reason, 2000)?;
        Ok(vec![EnvironmentEvent::ChangeFreezeStarted {
            service: self.service,
            environment: self.environment,
            reason,
            started_by: self.actor,
        }])
    }
}

/// End a change freeze.
#[derive(Debug, Clone, PartialEq)]
pub struct EndFreeze {
    /// The service.
    pub service: ServiceName,
    /// The environment.
    pub environment: EnvironmentName,
    /// Who (from the token).
    pub actor: Person,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl EndFreeze {
    /// Ends the freeze in force.
    pub fn decide(self, state: &Environment) -> Result<Vec<EnvironmentEvent>, DomainError> {
        state.check_key(&self.service, &self.environment)?;
        if state.freeze.is_none() {
            return Err(DomainError::NotFrozen);
        }
        Ok(vec![EnvironmentEvent::ChangeFreezeEnded {
            ended_by: self.actor,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::EnvironmentCommand;
    use crate::testsupport::{at, env, person, service};
    use cqrs_es::test::TestFramework;

    fn start(reason: &str) -> EnvironmentCommand {
        EnvironmentCommand::StartFreeze(StartFreeze {
            service: service("api"),
            environment: env("production"),
            reason: reason.into(),
            actor: person("ic@example.com"),
            requested_at: at(0),
        })
    }

    fn end() -> EnvironmentCommand {
        EnvironmentCommand::EndFreeze(EndFreeze {
            service: service("api"),
            environment: env("production"),
            actor: person("ic@example.com"),
            requested_at: at(60),
        })
    }

    fn started() -> EnvironmentEvent {
        EnvironmentEvent::ChangeFreezeStarted {
            service: service("api"),
            environment: env("production"),
            reason: "incident 12".into(),
            started_by: person("ic@example.com"),
        }
    }

    #[test]
    fn a_freeze_starts_and_ends() {
        TestFramework::<Environment>::with(())
            .given_no_previous_events()
            .when(start("incident 12"))
            .then_expect_events(vec![started()]);
        TestFramework::<Environment>::with(())
            .given(vec![started()])
            .when(end())
            .then_expect_events(vec![EnvironmentEvent::ChangeFreezeEnded {
                ended_by: person("ic@example.com"),
            }]);
    }

    #[test]
    fn freezes_do_not_nest_and_need_a_reason() {
        TestFramework::<Environment>::with(())
            .given(vec![started()])
            .when(start("again"))
            .then_expect_error(DomainError::AlreadyFrozen);
        let blank = TestFramework::<Environment>::with(())
            .given_no_previous_events()
            .when(start(" "))
            .inspect_result();
        assert!(matches!(
            blank,
            Err(DomainError::InvalidValue {
                field: "reason",
                ..
            })
        ));
    }

    #[test]
    fn only_a_frozen_environment_thaws() {
        TestFramework::<Environment>::with(())
            .given_no_previous_events()
            .when(end())
            .then_expect_error(DomainError::NotFrozen);
    }
}
