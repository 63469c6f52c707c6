//! Ledger entries, their canonical form and the hash chain.
//!
//! `hash_n = SHA-256(hash_{n-1} ‖ JCS(entry_n))` with `hash_0` = 32 zero bytes, where
//! `JCS` is the RFC 8785 canonical JSON of the entry's fields below. Canonical JSON makes
//! the hash verifiable from any faithful copy of the entry: the database, an export line,
//! a JetStream message.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::LedgerError;

/// A SHA-256 chain hash.
pub type Hash = [u8; 32];

/// The hash before position 1.
pub const GENESIS: Hash = [0u8; 32];

/// One ledger entry: an event with its position. Field names are the canonical JSON keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Ledger position, 1, 2, 3, …
    pub position: i64,
    /// The aggregate's type (`release`, `environment`, …).
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The event's sequence within its aggregate.
    pub sequence: i64,
    /// The event's type.
    pub event_type: String,
    /// The event's version.
    pub event_version: String,
    /// The event's payload.
    pub payload: serde_json::Value,
    /// The event's metadata (actor, roles, command, correlation, …).
    pub metadata: serde_json::Value,
    /// When the event was recorded (database clock, UTC), RFC 3339 with microseconds.
    pub recorded_at: String,
}

/// Formats a recording time the one way the canonical form accepts.
pub fn format_recorded_at(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Entry {
    /// The RFC 8785 canonical JSON bytes of the entry.
    pub fn canonical(&self) -> Result<Vec<u8>, LedgerError> {
        let corrupt = |e: serde_json::Error| {
            LedgerError::Corrupt(format!(
                "entry {} cannot be canonicalised: {e}",
                self.position
            ))
        };
        // Keys in canonical (sorted) order, written directly; payload and metadata go
        // through the JCS writer.
        let field = |name: &str, out: &mut Vec<u8>| {
            out.push(if out.is_empty() { b'{' } else { b',' });
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
        };
        let mut out = Vec::with_capacity(512);
        field("aggregate_id", &mut out);
        serde_json::to_writer(&mut out, &self.aggregate_id).map_err(corrupt)?;
        field("aggregate_type", &mut out);
        serde_json::to_writer(&mut out, &self.aggregate_type).map_err(corrupt)?;
        field("event_type", &mut out);
        serde_json::to_writer(&mut out, &self.event_type).map_err(corrupt)?;
        field("event_version", &mut out);
        serde_json::to_writer(&mut out, &self.event_version).map_err(corrupt)?;
        field("metadata", &mut out);
        crate::jcs::write(&self.metadata, &mut out).map_err(corrupt)?;
        field("payload", &mut out);
        crate::jcs::write(&self.payload, &mut out).map_err(corrupt)?;
        field("position", &mut out);
        crate::jcs::write(&self.position.into(), &mut out).map_err(corrupt)?;
        field("recorded_at", &mut out);
        serde_json::to_writer(&mut out, &self.recorded_at).map_err(corrupt)?;
        field("sequence", &mut out);
        crate::jcs::write(&self.sequence.into(), &mut out).map_err(corrupt)?;
        out.push(b'}');
        Ok(out)
    }

    /// The chain hash of this entry after `previous`.
    pub fn chain_hash(&self, previous: &Hash) -> Result<Hash, LedgerError> {
        Ok(chain(previous, &self.canonical()?))
    }
}

/// `SHA-256(previous ‖ canonical)`.
pub fn chain(previous: &Hash, canonical: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Parses a hash from bytes read back from storage.
pub fn hash_from_slice(bytes: &[u8]) -> Result<Hash, LedgerError> {
    bytes.try_into().map_err(|_| {
        LedgerError::Corrupt(format!("a stored hash has {} bytes, not 32", bytes.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            position: 1,
            aggregate_type: "release".into(),
            aggregate_id: "0190c2a8-0000-7000-8000-000000000001".into(),
            sequence: 1,
            event_type: "ReleaseCreated".into(),
            event_version: "1".into(),
            payload: serde_json::json!({"ReleaseCreated": {"version": "1.2.0", "b": 1.5e2, "a": [3, "x"]}}),
            metadata: serde_json::json!({"actor": "ci-bot", "command": "CreateRelease"}),
            recorded_at: "2026-03-02T09:00:00.000000Z".into(),
        }
    }

    #[test]
    fn the_entry_writer_matches_the_reference_canonicaliser() {
        let reference = serde_json_canonicalizer::to_vec(&entry()).expect("reference");
        assert_eq!(entry().canonical().expect("canonical"), reference);
    }

    #[test]
    fn the_canonical_form_sorts_keys_and_normalises_numbers() {
        let text = String::from_utf8(entry().canonical().expect("canonical")).expect("utf-8");
        assert!(text.starts_with(r#"{"aggregate_id":"0190c2a8"#), "{text}");
        assert!(
            text.contains(r#"{"ReleaseCreated":{"a":[3,"x"],"b":150,"version":"1.2.0"}}"#),
            "{text}"
        );
    }

    #[test]
    fn key_order_and_whitespace_of_the_stored_json_do_not_change_the_hash() {
        let reordered: serde_json::Value = serde_json::from_str(
            r#"{ "ReleaseCreated" : { "version":"1.2.0", "a":[3,"x"], "b":150.0 } }"#,
        )
        .expect("json");
        let mut copy = entry();
        copy.payload = reordered;
        assert_eq!(
            copy.chain_hash(&GENESIS).ok(),
            entry().chain_hash(&GENESIS).ok()
        );
    }

    #[test]
    fn any_change_to_the_entry_or_the_previous_hash_changes_the_hash() {
        let original = entry().chain_hash(&GENESIS).expect("hash");
        let mut changed = entry();
        changed.payload["ReleaseCreated"]["version"] = "1.2.1".into();
        assert_ne!(changed.chain_hash(&GENESIS).expect("hash"), original);
        let mut moved = entry();
        moved.position = 2;
        assert_ne!(moved.chain_hash(&GENESIS).expect("hash"), original);
        assert_ne!(entry().chain_hash(&[1u8; 32]).expect("hash"), original);
    }

    #[test]
    fn the_chain_matches_an_independent_sha256() {
        // Computed with coreutils:
        // { head -c 32 /dev/zero; printf '{}'; } | sha256sum
        assert_eq!(
            hex::encode(chain(&GENESIS, b"{}")),
            "fb1634c4e6cd4b1f1afe3ce2d6ef080f7ac5d1f357d723ad4dfca782733b62db"
        );
    }

    #[test]
    fn recorded_at_has_one_form() {
        let at = DateTime::parse_from_rfc3339("2026-03-02T10:00:00.5+01:00")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(format_recorded_at(at), "2026-03-02T09:00:00.500000Z");
    }
}
