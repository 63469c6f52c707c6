//! `WithdrawRelease`: take a release out of consideration; it can no longer be approved
//! or deployed.

use chrono::{DateTime, Utc};

use super::{Release, ReleaseEvent};
use crate::error::DomainError;
use crate::ids::{non_empty_text, Person};

/// Withdraw a release.
#[derive(Debug, Clone, PartialEq)]
pub struct WithdrawRelease {
    /// Why.
    pub reason: String,
    /// Who (from the token).
    pub actor: Person,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl WithdrawRelease {
    /// Records the withdrawal once.
    pub fn decide(self, state: &Release) -> Result<Vec<ReleaseEvent>, DomainError> {
        state.open()?;
        let reason = non_empty_text("reason", &self.reason, 2000)?;
        Ok(vec![ReleaseEvent::ReleaseWithdrawn {
            reason,
            withdrawn_by: self.actor,
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

    fn withdraw(reason: &str) -> ReleaseCommand {
        ReleaseCommand::Withdraw(WithdrawRelease {
            reason: reason.into(),
            actor: person("ci-bot"),
            requested_at: now(),
        })
    }

    #[test]
    fn a_release_is_withdrawn_with_a_reason() {
        TestFramework::<Release>::with(())
            .given(vec![created()])
            .when(withdraw("superseded"))
            .then_expect_events(vec![withdrawn()]);
    }

    #[test]
    fn a_release_is_withdrawn_once() {
        TestFramework::<Release>::with(())
            .given(vec![created(), withdrawn()])
            .when(withdraw("again"))
            .then_expect_error(DomainError::ReleaseWithdrawn);
    }

    #[test]
    fn a_withdrawal_needs_a_reason_and_a_release() {
        let blank = TestFramework::<Release>::with(())
            .given(vec![created()])
            .when(withdraw(""))
            .inspect_result();
        assert!(matches!(
            blank,
            Err(DomainError::InvalidValue {
                field: "reason",
                ..
            })
        ));
        TestFramework::<Release>::with(())
            .given_no_previous_events()
            .when(withdraw("x"))
            .then_expect_error(DomainError::ReleaseNotFound);
    }
}
