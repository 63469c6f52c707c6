//! `OpenIncident`: record that something broke.

use chrono::{DateTime, Utc};

use super::{Incident, IncidentEvent, Severity};
use crate::error::DomainError;
use crate::ids::{non_empty_text, DeploymentId, EnvironmentName, IncidentId, Person, ServiceName};

/// Open an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIncident {
    /// Minted by the command service.
    pub incident_id: IncidentId,
    /// The affected service.
    pub service: ServiceName,
    /// The affected environment.
    pub environment: EnvironmentName,
    /// Its severity.
    pub severity: Severity,
    /// A short title.
    pub title: String,
    /// The deployment that caused it, when known.
    pub deployment_id: Option<DeploymentId>,
    /// When it opened (client time, or the server's when absent).
    pub opened_at: DateTime<Utc>,
    /// Who (from the token).
    pub actor: Person,
}

impl OpenIncident {
    /// Opens the incident once.
    pub fn decide(self, state: &Incident) -> Result<Vec<IncidentEvent>, DomainError> {
        if state.incident_id.is_some() {
            return Err(DomainError::AlreadyExists);
        }
        let title = non_empty_text("title", &self.title, 500)?;
        Ok(vec![IncidentEvent::IncidentOpened {
            incident_id: self.incident_id,
            service: self.service,
            environment: self.environment,
            severity: self.severity,
            title,
            deployment_id: self.deployment_id,
            opened_at: self.opened_at,
            opened_by: self.actor,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::fixtures::opened;
    use crate::incident::IncidentCommand;
    use crate::testsupport::{at, env, incident_id, person, service};
    use cqrs_es::test::TestFramework;

    fn open(title: &str) -> IncidentCommand {
        IncidentCommand::Open(OpenIncident {
            incident_id: incident_id(1),
            service: service("api"),
            environment: env("production"),
            severity: Severity::High,
            title: title.into(),
            deployment_id: None,
            opened_at: at(0),
            actor: person("ic@example.com"),
        })
    }

    #[test]
    fn an_incident_opens() {
        TestFramework::<Incident>::with(())
            .given_no_previous_events()
            .when(open(" checkout errors "))
            .then_expect_events(vec![opened()]);
    }

    #[test]
    fn an_incident_opens_once_and_needs_a_title() {
        TestFramework::<Incident>::with(())
            .given(vec![opened()])
            .when(open("again"))
            .then_expect_error(DomainError::AlreadyExists);
        let blank = TestFramework::<Incident>::with(())
            .given_no_previous_events()
            .when(open(""))
            .inspect_result();
        assert!(matches!(
            blank,
            Err(DomainError::InvalidValue { field: "title", .. })
        ));
    }
}
