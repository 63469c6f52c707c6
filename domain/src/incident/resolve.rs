//! `ResolveIncident`: record that the incident is over.

use chrono::{DateTime, Utc};

use super::{Incident, IncidentEvent};
use crate::error::DomainError;
use crate::ids::Person;

/// Resolve an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveIncident {
    /// When it was resolved (client time, or the server's when absent).
    pub resolved_at: DateTime<Utc>,
    /// What fixed it.
    pub resolution: Option<String>,
    /// Who (from the token).
    pub actor: Person,
}

impl ResolveIncident {
    /// Resolves an open incident, not before it opened.
    pub fn decide(self, state: &Incident) -> Result<Vec<IncidentEvent>, DomainError> {
        let opened_at = state.opened_at.ok_or(DomainError::IncidentNotFound)?;
        if state.resolved_at.is_some() {
            return Err(DomainError::IncidentAlreadyResolved);
        }
        if self.resolved_at < opened_at {
            return Err(DomainError::TimeOutOfOrder {
                field: "resolved_at",
                given: self.resolved_at.to_rfc3339(),
                earlier_field: "opened_at",
                earlier: opened_at.to_rfc3339(),
            });
        }
        let resolution = self
            .resolution
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        if resolution
            .as_ref()
            .is_some_and(|r| r.chars().count() > 2000)
        {
            return Err(DomainError::invalid(
                "resolution",
                "must be at most 2000 characters",
            ));
        }
        Ok(vec![IncidentEvent::IncidentResolved {
            resolved_at: self.resolved_at,
            resolved_by: self.actor,
            resolution,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::fixtures::opened;
    use crate::incident::IncidentCommand;
    use crate::testsupport::{at, person};
    use cqrs_es::test::TestFramework;

    fn resolve(minute: i64) -> IncidentCommand {
        IncidentCommand::Resolve(ResolveIncident {
            resolved_at: at(minute),
            resolution: Some("rolled back".into()),
            actor: person("ic@example.com"),
        })
    }

    fn resolved() -> IncidentEvent {
        IncidentEvent::IncidentResolved {
            resolved_at: at(45),
            resolved_by: person("ic@example.com"),
            resolution: Some("rolled back".into()),
        }
    }

    #[test]
    fn an_open_incident_resolves() {
        TestFramework::<Incident>::with(())
            .given(vec![opened()])
            .when(resolve(45))
            .then_expect_events(vec![resolved()]);
    }

    #[test]
    fn an_incident_resolves_once() {
        TestFramework::<Incident>::with(())
            .given(vec![opened(), resolved()])
            .when(resolve(50))
            .then_expect_error(DomainError::IncidentAlreadyResolved);
    }

    #[test]
    fn resolving_before_opening_is_refused() {
        let result = TestFramework::<Incident>::with(())
            .given(vec![opened()])
            .when(resolve(-5))
            .inspect_result();
        assert!(matches!(
            result,
            Err(DomainError::TimeOutOfOrder {
                field: "resolved_at",
                ..
            })
        ));
    }

    #[test]
    fn an_unknown_incident_is_not_found() {
        TestFramework::<Incident>::with(())
            .given_no_previous_events()
            .when(resolve(5))
            .then_expect_error(DomainError::IncidentNotFound);
    }
}
