//! `UpdateRequirement`: change a requirement's title or category.

use chrono::{DateTime, Utc};

use super::{check_text, Requirement, RequirementEvent};
use crate::error::DomainError;
use crate::ids::Person;

/// Update a requirement.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRequirement {
    /// The new title.
    pub title: String,
    /// The new category.
    pub category: String,
    /// Who (from the token).
    pub actor: Person,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl UpdateRequirement {
    /// Records a real change to a registered requirement.
    pub fn decide(self, state: &Requirement) -> Result<Vec<RequirementEvent>, DomainError> {
        if state.id.is_none() {
            return Err(DomainError::RequirementNotFound);
        }
        let (title, category) = check_text(&self.title, &self.category)?;
        if title == state.title && category == state.category {
            return Err(DomainError::invalid(
                "title",
                "nothing changed: give a new title or category",
            ));
        }
        Ok(vec![RequirementEvent::RequirementUpdated {
            title,
            category,
            updated_by: self.actor,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requirement::RequirementCommand;
    use crate::testsupport::{at, person, req};
    use cqrs_es::test::TestFramework;

    fn update(title: &str) -> RequirementCommand {
        RequirementCommand::Update(UpdateRequirement {
            title: title.into(),
            category: "functional".into(),
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
    fn a_requirement_is_updated() {
        TestFramework::<Requirement>::with(())
            .given(vec![registered()])
            .when(update("Users can log in with SSO"))
            .then_expect_events(vec![RequirementEvent::RequirementUpdated {
                title: "Users can log in with SSO".into(),
                category: "functional".into(),
                updated_by: person("pm@example.com"),
            }]);
    }

    #[test]
    fn an_unknown_or_unchanged_requirement_is_refused() {
        TestFramework::<Requirement>::with(())
            .given_no_previous_events()
            .when(update("x"))
            .then_expect_error(DomainError::RequirementNotFound);
        let same = TestFramework::<Requirement>::with(())
            .given(vec![registered()])
            .when(update("Users can log in"))
            .inspect_result();
        assert!(matches!(same, Err(DomainError::InvalidValue { .. })));
    }
}
