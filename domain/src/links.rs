//! Requirement links read from commit messages.
//!
//! Two sources, both configurable:
//! - **trailers** in the message's last paragraph, such as `Refs: REQ-12, REQ-14` or
//!   `Implements: AUTH-3` (keys compared case-insensitively; see [`DEFAULT_TRAILER_KEYS`]);
//! - an optional **key pattern** such as `[A-Z]+-\d+`, matched anywhere in the message.
//!   It is off by default because a loose pattern also matches text like `UTF-8`.
//!
//! Tokens that are not valid requirement ids are ignored, never an error: a commit message
//! is history, not input to reject.

use std::collections::BTreeSet;

use regex::Regex;

use crate::error::DomainError;
use crate::ids::RequirementId;

/// Trailer keys read by default.
pub const DEFAULT_TRAILER_KEYS: &[&str] = &[
    "refs",
    "ref",
    "references",
    "implements",
    "requirement",
    "requirements",
    "req",
    "satisfies",
    "verifies",
];

/// How requirement links are found in commit messages.
#[derive(Debug, Clone)]
pub struct LinkRules {
    trailer_keys: Vec<String>,
    key_pattern: Option<Regex>,
}

impl PartialEq for LinkRules {
    fn eq(&self, other: &Self) -> bool {
        self.trailer_keys == other.trailer_keys
            && self.key_pattern.as_ref().map(Regex::as_str)
                == other.key_pattern.as_ref().map(Regex::as_str)
    }
}

impl Default for LinkRules {
    fn default() -> Self {
        Self {
            trailer_keys: DEFAULT_TRAILER_KEYS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
            key_pattern: None,
        }
    }
}

impl LinkRules {
    /// Default trailers plus a key pattern matched anywhere in the message.
    pub fn with_key_pattern(pattern: &str) -> Result<Self, DomainError> {
        let regex = Regex::new(pattern).map_err(|e| {
            DomainError::invalid("requirement_pattern", format!("not a valid regex: {e}"))
        })?;
        Ok(Self {
            key_pattern: Some(regex),
            ..Self::default()
        })
    }

    /// Replaces the trailer keys (compared case-insensitively).
    pub fn with_trailer_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.trailer_keys = keys
            .into_iter()
            .map(|k| k.as_ref().trim().to_ascii_lowercase())
            .collect();
        self
    }

    /// The requirement ids a commit message links to, sorted and without duplicates.
    pub fn find(&self, message: &str) -> Vec<RequirementId> {
        let mut found = BTreeSet::new();
        let last_paragraph = message.trim_end().rsplit("\n\n").next().unwrap_or_default();
        // The subject line is never a trailer block, even in a one-line message.
        let is_single_line = !message.trim().contains('\n');
        if !is_single_line {
            for line in last_paragraph.lines() {
                let Some((key, value)) = line.split_once(':') else {
                    continue;
                };
                let key = key.trim().to_ascii_lowercase();
                if !self.trailer_keys.contains(&key) {
                    continue;
                }
                for token in value.split(|c: char| c == ',' || c.is_whitespace()) {
                    let token = token.trim_matches(|c: char| !c.is_ascii_alphanumeric());
                    if let Ok(id) = RequirementId::parse(token) {
                        found.insert(id);
                    }
                }
            }
        }
        if let Some(pattern) = &self.key_pattern {
            for m in pattern.find_iter(message) {
                if let Ok(id) = RequirementId::parse(m.as_str()) {
                    found.insert(id);
                }
            }
        }
        found.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::req;

    #[test]
    fn trailers_in_the_last_paragraph_link_requirements() {
        let message = "feat: login\n\nAdds the form.\n\nRefs: REQ-12, req-14\nSigned-off-by: a";
        assert_eq!(
            LinkRules::default().find(message),
            [req("REQ-12"), req("REQ-14")]
        );
    }

    #[test]
    fn unknown_trailer_keys_and_invalid_tokens_are_ignored() {
        let message = "fix: x\n\nCloses: #12\nRefs: #99, see-later, AUTH-7.";
        assert_eq!(LinkRules::default().find(message), [req("AUTH-7")]);
    }

    #[test]
    fn a_trailer_outside_the_last_paragraph_does_not_count() {
        let message = "feat: y\n\nRefs: REQ-1\n\nMore text here.";
        assert!(LinkRules::default().find(message).is_empty());
        assert!(LinkRules::default().find("Refs: REQ-1").is_empty());
    }

    #[test]
    fn a_key_pattern_finds_keys_anywhere_and_is_off_by_default() {
        let message = "fix(AUTH-123): handle UTF-8 names";
        assert!(LinkRules::default().find(message).is_empty());
        let rules = LinkRules::with_key_pattern(r"\bAUTH-\d+").expect("valid regex");
        assert_eq!(rules.find(message), [req("AUTH-123")]);
    }

    #[test]
    fn trailer_keys_are_configurable() {
        let rules = LinkRules::default().with_trailer_keys(["Jira"]);
        assert_eq!(rules.find("feat: x\n\njira: PAY-9"), [req("PAY-9")]);
        assert!(rules.find("feat: x\n\nRefs: PAY-9").is_empty());
    }

    #[test]
    fn a_bad_pattern_is_an_invalid_value() {
        assert!(matches!(
            LinkRules::with_key_pattern("(["),
            Err(DomainError::InvalidValue {
                field: "requirement_pattern",
                ..
            })
        ));
    }
}
