//! The read side of Release Pilot: the axum HTTP API that dashboards, auditors and
//! compliance exports read from — releases and environments as of any time, deployments,
//! DORA metrics, traceability, the audit trail and signed exports.
//!
//! It reads read-model tables (and the ledger, for exports); it never depends on the
//! command service or the projector. Every read is authenticated; the audit trail,
//! exports and the exceptions report need the auditor or admin role.

pub mod dora;
pub mod gauges;
pub mod openapi;
pub mod params;
pub mod routes;
pub mod state;

use std::net::SocketAddr;

use axum::Router;

pub use state::{QueryConfig, QueryState};

/// The whole query API.
pub fn router(state: QueryState) -> Router {
    layered(&state).with_state(state)
}

/// The query API's routes with every shared layer, still needing their state.
pub fn layered(state: &QueryState) -> Router<QueryState> {
    let metrics = state.metrics.clone();
    let routes = Router::new()
        .merge(routes::releases::router())
        .merge(routes::environments::router())
        .merge(routes::deployments::router())
        .merge(routes::dora::router())
        .merge(routes::trace::router())
        .merge(routes::audit::router())
        .merge(routes::exceptions::router())
        .merge(openapi::router())
        .merge(release_pilot_http::health::router(state.db.clone()))
        .merge(release_pilot_http::metrics::route(move || metrics.encode()));
    release_pilot_http::finish(
        routes,
        state.gate.clone(),
        state.metrics.http.clone(),
        &state.config.cors_origins,
    )
}

/// A bound, not yet running, query API.
pub struct App(release_pilot_http::Server);

impl App {
    /// Binds `address` (port 0 picks a free port).
    pub async fn build(address: SocketAddr, state: QueryState) -> std::io::Result<Self> {
        Ok(Self(
            release_pilot_http::Server::bind(address, router(state)).await?,
        ))
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// Serves until `shutdown` completes, finishing requests in flight.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.0.run(shutdown).await
    }
}
