//! The read side of Release Pilot: the axum HTTP API that dashboards, auditors and
//! compliance exports read from — DORA metrics, traceability, as-of history, the audit
//! trail and signed exports.
//!
//! It reads read-model tables only; it never depends on the command service or the
//! projector. The routes land with the query-API issue; until then this crate only holds
//! its place in the workspace.
