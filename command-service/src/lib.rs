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

pub mod auth;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod lookup;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod state;

use std::net::SocketAddr;

use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

pub use state::{AppState, CommandConfig};

use crate::error::ApiError;

/// Browsers may call from the configured origins only.
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("traceparent"),
        ])
}

/// Logs every request once, when it is answered, inside a span that carries the caller's
/// W3C `traceparent` (so the request's log lines can be joined to the caller's trace).
async fn log_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span = tracing::info_span!("request", %method, %path, %traceparent);
    let started = std::time::Instant::now();
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    let elapsed_ms = elapsed * 1000.0;
    let labels = metrics::RouteLabels {
        method: method.to_string(),
        route,
    };
    state
        .metrics
        .durations
        .get_or_create(&labels)
        .observe(elapsed);
    state
        .metrics
        .requests
        .get_or_create(&metrics::RequestLabels {
            method: labels.method.clone(),
            route: labels.route.clone(),
            status,
        })
        .inc();
    let _entered = span.enter();
    if status >= 500 {
        tracing::error!(status, elapsed_ms, "request failed");
    } else {
        tracing::info!(status, elapsed_ms, "request answered");
    }
    response
}

/// The whole command API.
pub fn router(state: AppState) -> Router {
    let cors = cors(&state.config.cors_origins);
    Router::new()
        .merge(routes::releases::router())
        .merge(routes::deployments::router())
        .merge(routes::environments::router())
        .merge(routes::incidents::router())
        .merge(routes::catalogue::router())
        .merge(routes::health::router())
        .merge(openapi::router())
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(state): axum::extract::State<AppState>| async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        state.metrics.encode(),
                    )
                },
            ),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                "no such route; see /openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            log_request,
        ))
        .with_state(state)
}

/// A bound, not yet running, command API.
pub struct App {
    listener: TcpListener,
    router: Router,
}

impl App {
    /// Binds `address` (port 0 picks a free port).
    pub async fn build(address: SocketAddr, state: AppState) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(address).await?,
            router: router(state),
        })
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, finishing requests in flight.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
