//! The **Requirement** aggregate: the traceability catalogue (id, title, category).
//! Commits, tests and releases link to requirements by id; the catalogue says what each
//! one is, so coverage reports can name requirements nothing links to.

mod register;
mod update;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

pub use register::RegisterRequirement;
pub use update::UpdateRequirement;

use crate::error::DomainError;
use crate::ids::{non_empty_text, Person, RequirementId};

/// The state of one requirement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requirement {
    /// Set by `RequirementRegistered`.
    pub id: Option<RequirementId>,
    /// Its title.
    pub title: String,
    /// Its category.
    pub category: String,
}

/// Validates a title and category.
fn check_text(title: &str, category: &str) -> Result<(String, String), DomainError> {
    let title = non_empty_text("title", title, 500)?;
    let category = non_empty_text("category", category, 64)?;
    Ok((title, category))
}

/// Commands on a requirement.
#[derive(Debug, Clone, PartialEq)]
pub enum RequirementCommand {
    /// Register it.
    Register(RegisterRequirement),
    /// Change its title or category.
    Update(UpdateRequirement),
}

/// Events of the requirement aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RequirementEvent {
    /// A requirement entered the catalogue.
    RequirementRegistered {
        /// Its id.
        id: RequirementId,
        /// Its title.
        title: String,
        /// Its category (e.g. functional, security, compliance).
        category: String,
        /// Who registered it.
        registered_by: Person,
    },
    /// A requirement's title or category changed.
    RequirementUpdated {
        /// The new title.
        title: String,
        /// The new category.
        category: String,
        /// Who changed it.
        updated_by: Person,
    },
}

impl RequirementEvent {
    /// Every event type of this aggregate, as stored.
    pub const TYPES: &'static [&'static str] = &["RequirementRegistered", "RequirementUpdated"];
}

impl DomainEvent for RequirementEvent {
    fn event_type(&self) -> String {
        match self {
            Self::RequirementRegistered { .. } => "RequirementRegistered",
            Self::RequirementUpdated { .. } => "RequirementUpdated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Aggregate for Requirement {
    const TYPE: &'static str = "requirement";
    type Command = RequirementCommand;
    type Event = RequirementEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: RequirementCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let events = match command {
            RequirementCommand::Register(c) => c.decide(self)?,
            RequirementCommand::Update(c) => c.decide(self)?,
        };
        crate::emit(self, sink, events).await;
        Ok(())
    }

    fn apply(&mut self, event: RequirementEvent) {
        match event {
            RequirementEvent::RequirementRegistered {
                id,
                title,
                category,
                ..
            } => {
                self.id = Some(id);
                self.title = title;
                self.category = category;
            }
            RequirementEvent::RequirementUpdated {
                title, category, ..
            } => {
                self.title = title;
                self.category = category;
            }
        }
    }
}
