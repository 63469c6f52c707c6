//! Event metadata, typed once and converted once into the string map cqrs-es stores.
//!
//! Every event records who did it (actor and roles, from the token), which command,
//! correlation and causation ids, the idempotency key and the caller's W3C `traceparent`.
//! `recorded_at` is not here: the database stamps it on the event row with its own clock,
//! so no client and no service clock can set it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::LedgerError;

/// Metadata of one command's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Who (the token's subject).
    pub actor: String,
    /// The token's roles.
    pub actor_roles: Vec<String>,
    /// The command's name, e.g. `ApproveRelease`.
    pub command: String,
    /// Ties together everything one request caused.
    pub correlation_id: Uuid,
    /// The event or request that caused this command, when there is one.
    pub causation_id: Option<Uuid>,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// The caller's W3C trace context.
    pub traceparent: Option<String>,
}

const ACTOR: &str = "actor";
const ROLES: &str = "actor_roles";
const COMMAND: &str = "command";
const CORRELATION: &str = "correlation_id";
const CAUSATION: &str = "causation_id";
const IDEMPOTENCY: &str = "idempotency_key";
const TRACEPARENT: &str = "traceparent";

impl EventMetadata {
    /// The string map cqrs-es stores. Roles are comma-separated (role names never
    /// contain commas).
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            (ACTOR.to_owned(), self.actor.clone()),
            (ROLES.to_owned(), self.actor_roles.join(",")),
            (COMMAND.to_owned(), self.command.clone()),
            (CORRELATION.to_owned(), self.correlation_id.to_string()),
        ]);
        let optional = [
            (CAUSATION, self.causation_id.map(|id| id.to_string())),
            (IDEMPOTENCY, self.idempotency_key.clone()),
            (TRACEPARENT, self.traceparent.clone()),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                map.insert(key.to_owned(), value);
            }
        }
        map
    }

    /// Reads metadata back from the stored map.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, LedgerError> {
        let required = |key: &str| {
            map.get(key)
                .cloned()
                .ok_or_else(|| LedgerError::Corrupt(format!("event metadata lacks {key}")))
        };
        let uuid = |key: &str, text: &str| {
            Uuid::parse_str(text)
                .map_err(|e| LedgerError::Corrupt(format!("event metadata {key}: {e}")))
        };
        let roles = required(ROLES)?;
        Ok(Self {
            actor: required(ACTOR)?,
            actor_roles: roles
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            command: required(COMMAND)?,
            correlation_id: uuid(CORRELATION, &required(CORRELATION)?)?,
            causation_id: map
                .get(CAUSATION)
                .map(|text| uuid(CAUSATION, text))
                .transpose()?,
            idempotency_key: map.get(IDEMPOTENCY).cloned(),
            traceparent: map.get(TRACEPARENT).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> EventMetadata {
        EventMetadata {
            actor: "ann@example.com".into(),
            actor_roles: vec!["approver".into(), "admin".into()],
            command: "ApproveRelease".into(),
            correlation_id: Uuid::from_u128(7),
            causation_id: None,
            idempotency_key: Some("key-1".into()),
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        }
    }

    #[test]
    fn metadata_round_trips_through_the_stored_map() {
        let map = metadata().to_map();
        assert_eq!(map["actor_roles"], "approver,admin");
        assert!(!map.contains_key("causation_id"));
        assert_eq!(EventMetadata::from_map(&map).expect("valid"), metadata());
    }

    #[test]
    fn missing_or_malformed_fields_are_reported() {
        let mut map = metadata().to_map();
        map.remove("actor");
        assert!(matches!(
            EventMetadata::from_map(&map),
            Err(LedgerError::Corrupt(_))
        ));
        let mut map = metadata().to_map();
        map.insert("correlation_id".into(), "nope".into());
        assert!(matches!(
            EventMetadata::from_map(&map),
            Err(LedgerError::Corrupt(_))
        ));
    }
}
