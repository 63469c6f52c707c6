//! Release Pilot's ledger: the event store (postgres-es on PostgreSQL, sqlite-es on the
//! embedded SQLite database, behind one [`db::Db`] handle), the sealer that gives
//! every committed event a gap-free position in a SHA-256 hash chain with signed
//! checkpoints, the relay to NATS JetStream, and verification.
//!
//! This is the shared infrastructure member the services build on: the command service
//! appends through [`store`], the projector reads what the [`sealer`] sealed (or what the
//! [`relay`] published), the query API and `release-pilot verify` use [`verify`]. It
//! depends on the domain for aggregate and event types only, never on a service crate.
//!
//! Flow: command → `events` row (committed) → sealer → `ledger` row (position, hash) and
//! periodic `ledger_checkpoints` row (Ed25519) → relay → JetStream `LEDGER`.

pub mod db;
pub mod entry;
pub mod error;
pub mod export;
pub mod jcs;
pub mod metadata;
mod pacing;
pub mod relay;
pub mod sealer;
pub mod signing;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod verify;

/// The Ed25519 public key type used to verify checkpoints.
pub use ed25519_dalek::VerifyingKey;
pub use error::LedgerError;
