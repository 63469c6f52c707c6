//! The **Policy** aggregate: the rules in force for one environment, as versioned events.
//!
//! Policies are events too, so "which rules were in force at time T" is answerable, and
//! every deployment records the policy version it was checked against. An environment
//! with no policy of its own uses [`PolicyRules::defaults_for`] its tier (version 0).

mod define;
mod rules;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

pub use define::DefinePolicy;
pub use rules::{AppliedPolicy, ApprovalRules, FreezeWindow, HotfixRules, PolicyRules};

use crate::error::DomainError;
use crate::ids::{EnvironmentName, Person};

/// The state of one environment's policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The environment it governs (set by the first definition).
    pub environment: Option<EnvironmentName>,
    /// The latest version (0 = never defined).
    pub version: u64,
    /// The rules of the latest version.
    pub rules: Option<PolicyRules>,
}

impl Policy {
    /// The policy in force, or the tier defaults when none was ever defined.
    pub fn applied(&self, environment: &EnvironmentName) -> AppliedPolicy {
        match &self.rules {
            Some(rules) => AppliedPolicy {
                version: self.version,
                rules: rules.clone(),
            },
            None => AppliedPolicy::defaults_for(environment.default_tier()),
        }
    }
}

/// Commands on a policy.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyCommand {
    /// Define a new version of the policy.
    Define(DefinePolicy),
}

/// Events of the policy aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PolicyEvent {
    /// A new version of an environment's policy came into force.
    PolicyDefined {
        /// The environment governed.
        environment: EnvironmentName,
        /// The new version, 1, 2, 3, …
        version: u64,
        /// The rules.
        rules: PolicyRules,
        /// Who defined it.
        defined_by: Person,
    },
}

impl PolicyEvent {
    /// Every event type of this aggregate, as stored.
    pub const TYPES: &'static [&'static str] = &["PolicyDefined"];
}

impl DomainEvent for PolicyEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PolicyDefined { .. } => "PolicyDefined",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Aggregate for Policy {
    const TYPE: &'static str = "policy";
    type Command = PolicyCommand;
    type Event = PolicyEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: PolicyCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let events = match command {
            PolicyCommand::Define(c) => c.decide(self)?,
        };
        crate::emit(self, sink, events).await;
        Ok(())
    }

    fn apply(&mut self, event: PolicyEvent) {
        match event {
            PolicyEvent::PolicyDefined {
                environment,
                version,
                rules,
                ..
            } => {
                self.environment = Some(environment);
                self.version = version;
                self.rules = Some(rules);
            }
        }
    }
}
