//! The write side of Release Pilot: the axum HTTP API that CI systems, operators and
//! webhooks call to issue commands.
//!
//! Flow: request → authentication (subject and roles from the bearer token) →
//! idempotency check → a domain command built with ids and `requested_at` stamped here →
//! the `CqrsFramework` executes it against the event store → the answer or a
//! problem+json error.
//!
//! It depends on the domain and the event store only; it never depends on the projector
//! or the query API. The routes land with the command-service issue; until then this
//! crate only holds its place in the workspace.
