//! Identifiers and constrained names.
//!
//! Every id and every constrained string is a newtype built only through `parse`, so a
//! value that exists is a valid one. Serde goes through the same `parse`, so an event or
//! command can never carry an invalid name.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an id minted at the edge (UUID v7 in the command service).
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the hyphenated UUID form.
            pub fn parse(text: &str) -> Result<Self, DomainError> {
                Uuid::parse_str(text.trim())
                    .map(Self)
                    .map_err(|e| DomainError::invalid($field, format!("not a UUID: {e}")))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// Identifies one release (minted by the command service).
    ReleaseId,
    "release_id"
);
uuid_id!(
    /// Identifies one deployment (minted by the command service).
    DeploymentId,
    "deployment_id"
);
uuid_id!(
    /// Identifies one incident (minted by the command service).
    IncidentId,
    "incident_id"
);

/// Checks a name used as a NATS subject token: letters, digits, `-` and `_`, starting with
/// a letter or digit, at most 64 characters. Dots and spaces would split or break the
/// subjects `ledger.<type>.<id>` and `decisions.<kind>.<service>.<environment>`.
fn check_token(field: &'static str, text: &str) -> Result<String, DomainError> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(DomainError::invalid(
            field,
            format!(
                "{text:?} must be 1-64 characters of letters, digits, '-' or '_', starting with a letter or digit"
            ),
        ))
    }
}

macro_rules! token_name {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the name.
            pub fn parse(text: &str) -> Result<Self, DomainError> {
                check_token($field, text).map(Self)
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(text: String) -> Result<Self, DomainError> {
                Self::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

token_name!(
    /// A service's name, e.g. `checkout-api`.
    ServiceName,
    "service"
);
token_name!(
    /// An environment's name, e.g. `production`, `staging`, `eu-prod`.
    EnvironmentName,
    "environment"
);
token_name!(
    /// A feature flag's name, e.g. `new-checkout`.
    FlagName,
    "flag"
);

/// How strict an environment is. Policies default by tier, and DORA metrics count only
/// production-tier environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentTier {
    /// Serves real users.
    Production,
    /// The last stop before production.
    Staging,
    /// Everything else (dev, test, preview, …).
    Development,
}

impl EnvironmentName {
    /// The tier an environment has when no policy says otherwise, from its name:
    /// `production`, `prod`, `prd`, `live` (or ending in `-prod`/`-production`) are
    /// production; `staging`, `stage`, `stg`, `preprod`, `uat` (or ending in
    /// `-staging`/`-stage`) are staging; anything else is development.
    pub fn default_tier(&self) -> EnvironmentTier {
        let name = self.0.to_ascii_lowercase();
        let is = |words: &[&str]| {
            words.iter().any(|w| {
                name == *w || name.ends_with(&format!("-{w}")) || name.ends_with(&format!("_{w}"))
            })
        };
        if is(&["production", "prod", "prd", "live"]) {
            EnvironmentTier::Production
        } else if is(&["staging", "stage", "stg", "preprod", "uat"]) {
            EnvironmentTier::Staging
        } else {
            EnvironmentTier::Development
        }
    }
}

/// A git commit id: 7 to 64 hexadecimal digits (abbreviated, SHA-1 or SHA-256), stored in
/// lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitSha(String);

impl CommitSha {
    /// Parses and normalises a commit id.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let text = text.trim();
        if (7..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Self(text.to_ascii_lowercase()))
        } else {
            Err(DomainError::invalid(
                "sha",
                format!("{text:?} must be 7-64 hexadecimal digits"),
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first seven digits, as people read them.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

impl TryFrom<String> for CommitSha {
    type Error = DomainError;
    fn try_from(text: String) -> Result<Self, DomainError> {
        Self::parse(&text)
    }
}

impl From<CommitSha> for String {
    fn from(sha: CommitSha) -> String {
        sha.0
    }
}

impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn requirement_id_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[A-Za-z][A-Za-z0-9_]{0,31}-[0-9]{1,12}$").expect("static pattern compiles")
    })
}

/// A requirement's key in the traceability catalogue, e.g. `REQ-12` or `AUTH-123`:
/// a letter-led prefix, a dash and a number, stored in upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequirementId(String);

impl RequirementId {
    /// Parses and normalises a requirement key.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let text = text.trim();
        if requirement_id_regex().is_match(text) {
            Ok(Self(text.to_ascii_uppercase()))
        } else {
            Err(DomainError::invalid(
                "requirement",
                format!("{text:?} must look like PREFIX-NUMBER, e.g. REQ-12"),
            ))
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RequirementId {
    type Error = DomainError;
    fn try_from(text: String) -> Result<Self, DomainError> {
        Self::parse(&text)
    }
}

impl From<RequirementId> for String {
    fn from(id: RequirementId) -> String {
        id.0
    }
}

impl fmt::Display for RequirementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who did something: the subject of a token (an approver, a CI system) or a commit
/// author. Trimmed, non-empty, at most 256 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Person(String);

impl Person {
    /// Parses a subject or author identity.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let text = text.trim();
        if text.is_empty() || text.len() > 256 || text.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "person",
                "an identity must be 1-256 printable characters",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The identity as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The forms under which this identity may appear elsewhere, lower-cased: the whole
    /// text and, for `Name <email>`, the name and the email separately. Separation of
    /// duties compares these, so `Alice <alice@example.com>` as a commit author matches
    /// the token subject `alice@example.com`.
    pub fn aliases(&self) -> Vec<String> {
        let whole = self.0.to_lowercase();
        let mut aliases = vec![whole.clone()];
        if let (Some(open), Some(close)) = (whole.find('<'), whole.rfind('>')) {
            if open < close {
                let email = whole[open + 1..close].trim();
                let name = whole[..open].trim();
                for part in [email, name] {
                    if !part.is_empty() {
                        aliases.push(part.to_owned());
                    }
                }
            }
        }
        aliases
    }

    /// Whether two identities denote the same person under [`Person::aliases`].
    pub fn same_person(&self, other: &Person) -> bool {
        let mine = self.aliases();
        other.aliases().iter().any(|alias| mine.contains(alias))
    }
}

impl TryFrom<String> for Person {
    type Error = DomainError;
    fn try_from(text: String) -> Result<Self, DomainError> {
        Self::parse(&text)
    }
}

impl From<Person> for String {
    fn from(person: Person) -> String {
        person.0
    }
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A free-text field (titles, reasons, comments): trimmed, non-empty, bounded.
pub fn non_empty_text(field: &'static str, text: &str, max: usize) -> Result<String, DomainError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_subject_breaking_characters() {
        assert!(ServiceName::parse("checkout-api").is_ok());
        assert!(ServiceName::parse("checkout_api2").is_ok());
        for bad in ["", "a.b", "a b", "-lead", "a*", "ü", &"x".repeat(65)] {
            assert!(
                matches!(
                    ServiceName::parse(bad),
                    Err(DomainError::InvalidValue {
                        field: "service",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn serde_goes_through_parse() {
        let ok: ServiceName = serde_json::from_str("\"api\"").expect("valid name");
        assert_eq!(ok.as_str(), "api");
        assert!(serde_json::from_str::<ServiceName>("\"a.b\"").is_err());
        assert!(serde_json::from_str::<CommitSha>("\"xyz\"").is_err());
    }

    #[test]
    fn commit_shas_are_normalised_to_lower_case() {
        let sha = CommitSha::parse("ABCDEF1234").expect("hex");
        assert_eq!(sha.as_str(), "abcdef1234");
        assert_eq!(sha.short(), "abcdef1");
        assert!(CommitSha::parse("abc").is_err());
        assert!(CommitSha::parse("abcdefg").is_err());
    }

    #[test]
    fn requirement_ids_are_upper_cased() {
        assert_eq!(
            RequirementId::parse("auth-123").expect("valid").as_str(),
            "AUTH-123"
        );
        assert!(RequirementId::parse("123-AUTH").is_err());
        assert!(RequirementId::parse("REQ12").is_err());
    }

    #[test]
    fn tiers_follow_the_environment_name() {
        let tier = |n: &str| EnvironmentName::parse(n).expect("valid").default_tier();
        assert_eq!(tier("production"), EnvironmentTier::Production);
        assert_eq!(tier("eu-prod"), EnvironmentTier::Production);
        assert_eq!(tier("staging"), EnvironmentTier::Staging);
        assert_eq!(tier("uat"), EnvironmentTier::Staging);
        assert_eq!(tier("dev"), EnvironmentTier::Development);
        assert_eq!(tier("productivity"), EnvironmentTier::Development);
    }

    #[test]
    fn the_same_person_is_recognised_across_author_formats() {
        let author = Person::parse("Alice Doe <Alice@Example.com>").expect("valid");
        let subject = Person::parse("alice@example.com").expect("valid");
        let other = Person::parse("bob@example.com").expect("valid");
        assert!(author.same_person(&subject));
        assert!(subject.same_person(&author));
        assert!(!author.same_person(&other));
        assert!(Person::parse("  ").is_err());
        assert!(Person::parse("a\u{7}b").is_err());
    }
}
