//! The write side of Release Pilot: the axum HTTP API that CI systems, operators and
//! webhooks call to issue commands.
//!
//! Flow of a command: bearer token → [`auth::Caller`] (subject and roles; identity never
//! from the body) → role check → [`extract::CommandRequest`] (JSON body, idempotency key,
//! traceparent) → [`idempotency::once`] → a domain command with ids minted here (UUID v7),
//! `requested_at` stamped here, and the policy and facts of other aggregates looked up →
//! `EventStore::execute` → JSON answer, or one problem+json mapping ([`error::ApiError`]).
//!
//! It depends on the domain and the ledger (the store), never on the projector or the
//! query API.

pub use release_pilot_http::{auth, error};

pub mod extract;
pub mod idempotency;
pub mod lookup;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod state;

use std::net::SocketAddr;

use axum::Router;

pub use state::{AppState, CommandConfig};

/// The whole command API.
pub fn router(state: AppState) -> Router {
    layered(&state).with_state(state)
}

/// The command API's routes with every shared layer, still needing their state (so
/// `serve` can merge them with the query API's).
pub fn layered(state: &AppState) -> Router<AppState> {
    let metrics = state.metrics.clone();
    let routes = Router::new()
        .merge(routes::releases::router())
        .merge(routes::deployments::router())
        .merge(routes::environments::router())
        .merge(routes::incidents::router())
        .merge(routes::catalogue::router())
        .merge(release_pilot_http::health::router(state.db.clone()))
        .merge(openapi::router())
        .merge(release_pilot_http::metrics::route(move || metrics.encode()));
    release_pilot_http::finish(
        routes,
        state.gate(),
        state.metrics.http.clone(),
        &state.config.cors_origins,
    )
}

/// A bound, not yet running, command API.
pub struct App(release_pilot_http::Server);

impl App {
    /// Binds `address` (port 0 picks a free port).
    pub async fn build(address: SocketAddr, state: AppState) -> std::io::Result<Self> {
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
