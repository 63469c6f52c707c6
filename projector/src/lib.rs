//! The projector: consumes the sealed ledger and maintains read models.
//!
//! Each projection applies entries in position order and stores its checkpoint in
//! `projection_checkpoints` **in the same transaction** as its read-model writes, and
//! ignores entries at or below its checkpoint — so a crash loses nothing, a redelivered
//! entry changes nothing, and a rebuild from position 0 equals what was built
//! incrementally. A projection that cannot apply an entry stops at that position and
//! records why; the other projections go on.
//!
//! It depends on the ledger (entries, the store) and the domain's event types, never on
//! the command service or the query API.

pub mod audit_index;
pub mod catalogue;
pub mod dora_facts;
pub mod environment_history;
pub mod exceptions;
pub mod feed;
pub mod metrics;
pub mod release_timeline;
pub mod replay;
pub mod runner;
pub mod traceability;

pub use runner::{BatchError, EntryExt, Projection, ProjectionError, Projector, RunError};
