//! Release Pilot's domain: what may happen to releases, deployments, incidents, policies
//! and requirements, decided by pure functions.
//!
//! Flow: the command service builds a command (ids minted, `requested_at` stamped,
//! identity and roles from the token, the policy in force and any facts from other
//! aggregates looked up and placed in the command), the aggregate's `decide` turns it into
//! events or a [`DomainError`], and `apply` folds events into state without rules.
//!
//! This crate performs no I/O and reads no clock or RNG (`clippy.toml` forbids the
//! methods; `.ci/check-domain-deps` forbids the crates). Its only async is the cqrs-es
//! `handle` signature, which dispatches to synchronous `decide` functions.
//!
//! Aggregates (one consistency boundary each; see `docs/adr/0001-aggregate-boundaries.md`):
//! - [`release::Release`] `(service, version)`: commits, gates, approvals, withdrawal;
//! - [`environment::Environment`] `(service, environment)`: deployments, canary, health,
//!   rollbacks, feature flags, change freezes;
//! - [`incident::Incident`], [`policy::Policy`] (per environment), [`requirement::Requirement`].

pub mod clearance;
pub mod conventional;
pub mod environment;
pub mod error;
pub mod gate;
pub mod health;
pub mod ids;
pub mod incident;
pub mod links;
pub mod policy;
pub mod release;
pub mod requirement;
pub mod roles;

#[cfg(test)]
mod event_contract;
#[cfg(test)]
pub(crate) mod testsupport;

pub use error::{DomainError, ErrorKind};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

/// Writes decided events to the sink, which applies each to the aggregate in order.
async fn emit<A: Aggregate>(aggregate: &mut A, sink: &EventSink<A>, events: Vec<A::Event>) {
    for event in events {
        sink.write(event, aggregate).await;
    }
}
