//! `RegisterRequirement`: add a requirement to the traceability catalogue.

use chrono::{DateTime, Utc};

use super::{check_text, Requirement, RequirementEvent};
use crate::error::DomainError;
use crate::ids::{Person, RequirementId};

/// Register a requirement.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterRequirement {
    /// Its id, e.g. `REQ-12`.
    pub id: RequirementId,
    /// Its title.
    pub title: String,
    /// Its category.
    pub category: String,
    /// Who (from the token).
    pub actor: Person,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl RegisterRequirement {
    /// Registers the requirement once.
    pub fn decide(self, state: &Requirement) -> Result<Vec<RequirementEvent>, DomainError> {
        if state.id.is_some() {
            return Err(DomainError::AlreadyExists);
        }
        let (title, category) = check_text(&self.title, &self.category)?;
        Ok(vec![RequirementEvent::RequirementRegistered {
            id: self.id,
            title,
            category,
            registered_by: self.actor,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requirement::RequirementCommand;
    use crate::testsupport::{at, person, req};
    use cqrs_es::test::TestFramework;

    fn register(title: &str, category: &str) -> RequirementCommand {
        RequirementCommand::Register(RegisterRequirement {
            id: req("REQ-1"),
            title: title.into(),
            category: category.into(),
            actor: person("pm@example.com"),
            requested_at: at(0),
        })
    }

    fn registered() -> RequirementEvent {
        RequirementEvent::RequirementRegistered {
            id: req("REQ-1"),
            title: "Users can log in".into(),
            category: "functional".into(),
            registered_by: person("pm@example.com"),
        }
    }

    #[test]
    fn a_requirement_is_registered_once() {
        TestFramework::<Requirement>::with(())
            .given_no_previous_events()
            .when(register("Users can log in", "functional"))
            .then_expect_events(vec![registered()]);
        TestFramework::<Requirement>::with(())
            .given(vec![registered()])
            .when(register("Users can log in", "functional"))
            .then_expect_error(DomainError::AlreadyExists);
    }

    #[test]
    fn title_and_category_are_required() {
        for (title, category, field) in [("", "functional", "title"), ("x", " ", "category")] {
            let result = TestFramework::<Requirement>::with(())
                .given_no_previous_events()
                .when(register(title, category))
                .inspect_result();
            assert!(
                matches!(result, Err(DomainError::InvalidValue { field: f, .. }) if f == field),
                "{field}"
            );
        }
    }
}
