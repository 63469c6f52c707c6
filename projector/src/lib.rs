//! The projector: consumes the sealed ledger feed (JetStream or a tail of the ledger
//! table) and maintains the read models — release timeline, environment board,
//! traceability, DORA facts, audit index and exceptions.
//!
//! Each projection stores its checkpoint in the same transaction as its read-model
//! writes, so a crash or a redelivery never loses or doubles an event. It depends on the
//! domain's event types and the store, never on the command service or the query API.
//! The projections land with the projector issue; until then this crate only holds its
//! place in the workspace.
