//! The **Incident** aggregate: opened (severity, service, environment, optionally the
//! deployment that caused it) and resolved. Incidents feed the change-fail-rate and
//! recovery-time DORA metrics.

mod open;
mod resolve;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

pub use open::OpenIncident;
pub use resolve::ResolveIncident;

use crate::error::DomainError;
use crate::ids::{DeploymentId, EnvironmentName, IncidentId, Person, ServiceName};

/// How bad an incident is. `sev1`…`sev4` are accepted as aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Customer-facing outage.
    #[serde(alias = "sev1")]
    Critical,
    /// Major degradation.
    #[serde(alias = "sev2")]
    High,
    /// Partial degradation.
    #[serde(alias = "sev3")]
    Medium,
    /// Minor issue.
    #[serde(alias = "sev4")]
    Low,
}

/// The state of one incident.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Set by `IncidentOpened`.
    pub incident_id: Option<IncidentId>,
    /// When it opened.
    pub opened_at: Option<DateTime<Utc>>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Commands on an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentCommand {
    /// Open it.
    Open(OpenIncident),
    /// Resolve it.
    Resolve(ResolveIncident),
}

/// Events of the incident aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IncidentEvent {
    /// An incident was opened.
    IncidentOpened {
        /// Its id.
        incident_id: IncidentId,
        /// The affected service.
        service: ServiceName,
        /// The affected environment.
        environment: EnvironmentName,
        /// Its severity.
        severity: Severity,
        /// A short title.
        title: String,
        /// The deployment that caused it, when known.
        deployment_id: Option<DeploymentId>,
        /// When it opened (domain time).
        opened_at: DateTime<Utc>,
        /// Who opened it.
        opened_by: Person,
    },
    /// The incident was resolved.
    IncidentResolved {
        /// When (domain time).
        resolved_at: DateTime<Utc>,
        /// Who resolved it.
        resolved_by: Person,
        /// What fixed it.
        resolution: Option<String>,
    },
}

impl IncidentEvent {
    /// Every event type of this aggregate, as stored.
    pub const TYPES: &'static [&'static str] = &["IncidentOpened", "IncidentResolved"];
}

impl DomainEvent for IncidentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::IncidentOpened { .. } => "IncidentOpened",
            Self::IncidentResolved { .. } => "IncidentResolved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Aggregate for Incident {
    const TYPE: &'static str = "incident";
    type Command = IncidentCommand;
    type Event = IncidentEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: IncidentCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let events = match command {
            IncidentCommand::Open(c) => c.decide(self)?,
            IncidentCommand::Resolve(c) => c.decide(self)?,
        };
        crate::emit(self, sink, events).await;
        Ok(())
    }

    fn apply(&mut self, event: IncidentEvent) {
        match event {
            IncidentEvent::IncidentOpened {
                incident_id,
                opened_at,
                ..
            } => {
                self.incident_id = Some(incident_id);
                self.opened_at = Some(opened_at);
            }
            IncidentEvent::IncidentResolved { resolved_at, .. } => {
                self.resolved_at = Some(resolved_at);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::testsupport::{at, env, incident_id, person, service};

    pub fn opened() -> IncidentEvent {
        IncidentEvent::IncidentOpened {
            incident_id: incident_id(1),
            service: service("api"),
            environment: env("production"),
            severity: Severity::High,
            title: "checkout errors".into(),
            deployment_id: None,
            opened_at: at(0),
            opened_by: person("ic@example.com"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sev_aliases_are_accepted() {
        let severity: Severity = serde_json::from_str("\"sev1\"").expect("alias");
        assert_eq!(severity, Severity::Critical);
        assert_eq!(
            serde_json::to_string(&Severity::Critical).expect("serialises"),
            "\"critical\""
        );
    }
}
