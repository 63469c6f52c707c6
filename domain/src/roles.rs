//! The roles a token grants. The command service reads them from the token, never from a
//! request body, and passes them into the commands that policy depends on.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// A role granted by a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A CI system: creates releases, records gates, deploys.
    Ci,
    /// A release manager: approves or rejects releases per environment.
    Approver,
    /// Leads incident response: approves hotfixes, opens and resolves incidents.
    IncidentCommander,
    /// Reads the audit trail and exports.
    Auditor,
    /// Administers policies, requirements and tokens.
    Admin,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 5] = [
        Role::Ci,
        Role::Approver,
        Role::IncidentCommander,
        Role::Auditor,
        Role::Admin,
    ];

    /// The role's wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Ci => "ci",
            Role::Approver => "approver",
            Role::IncidentCommander => "incident_commander",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Parses a role's wire name.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == text.trim())
            .ok_or_else(|| {
                DomainError::invalid(
                    "role",
                    format!(
                        "{text:?} is not a role; expected one of ci, approver, incident_commander, auditor, admin"
                    ),
                )
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for role in Role::ALL {
            let json = serde_json::to_string(&role).expect("serialises");
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("root").is_err());
    }
}
