//! What Release Pilot's HTTP services share: bearer-token identity and roles
//! ([`auth`]), one problem+json mapping for every failure ([`error`]), request metrics
//! ([`metrics`]), and the layers every router gets ([`finish`]): authentication of
//! `/v1/` routes, request logging with the caller's `traceparent`, security headers,
//! CORS, and problem answers for unknown routes and methods.

pub mod auth;
pub mod error;
pub mod health;
pub mod metrics;
pub mod openapi;

use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::auth::Gate;
use crate::error::ApiError;
use crate::metrics::HttpMetrics;

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
/// W3C `traceparent` (so the request's log lines can be joined to the caller's trace),
/// and counts it.
async fn log_request(
    axum::extract::State(metrics): axum::extract::State<HttpMetrics>,
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
    let span = tracing::info_span!(
        "request",
        %method,
        %path,
        %traceparent,
        trace_id = tracing::field::Empty
    );
    // The request continues the caller's trace (or starts one when spans are exported).
    release_pilot_ledger::telemetry::continue_trace(
        &span,
        (!traceparent.is_empty()).then_some(traceparent.as_str()),
    );
    if let Some(id) = release_pilot_ledger::telemetry::trace_id(&span) {
        span.record("trace_id", id);
    }
    let started = std::time::Instant::now();
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    metrics.observe(method.as_str(), &route, status, elapsed);
    let elapsed_ms = elapsed * 1000.0;
    let _entered = span.enter();
    if status >= 500 {
        tracing::error!(status, elapsed_ms, "request failed");
    } else {
        tracing::info!(status, elapsed_ms, "request answered");
    }
    response
}

/// Wraps a service's routes with what every Release Pilot API does: problem answers for
/// unknown routes and methods, authentication of `/v1/` requests (through `gate`),
/// `nosniff` and `no-store` headers, CORS for `cors_origins`, and request logging and
/// metrics.
pub fn finish<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    gate: Gate,
    metrics: HttpMetrics,
    cors_origins: &[String],
) -> Router<S> {
    routes
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
            gate,
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
        .layer(cors(cors_origins))
        .layer(axum::middleware::from_fn_with_state(metrics, log_request))
}

/// A bound, not yet running, HTTP service.
pub struct Server {
    listener: tokio::net::TcpListener,
    router: Router,
}

impl Server {
    /// Binds `address` (port 0 picks a free port) for `router`.
    pub async fn bind(address: std::net::SocketAddr, router: Router) -> std::io::Result<Self> {
        Ok(Self {
            listener: tokio::net::TcpListener::bind(address).await?,
            router,
        })
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
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
