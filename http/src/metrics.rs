//! HTTP request metrics: `http_requests_total{method,route,status}` and
//! `http_request_duration_seconds{method,route}`, by the matched route template.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Labels of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The HTTP method.
    pub method: String,
    /// The matched route template (`/v1/releases/{id}/gates`), never a raw path.
    pub route: String,
    /// The status answered.
    pub status: u16,
}

/// Labels of a request's duration.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The HTTP method.
    pub method: String,
    /// The matched route template.
    pub route: String,
}

/// The HTTP metrics of one process.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Request durations.
    pub durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl HttpMetrics {
    /// The metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(request_histogram),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request",
            Unit::Seconds,
            metrics.durations.clone(),
        );
        metrics
    }

    /// Counts one answered request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = RouteLabels {
            method: method.to_owned(),
            route: route.to_owned(),
        };
        self.durations.get_or_create(&labels).observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                method: labels.method,
                route: labels.route,
                status,
            })
            .inc();
    }
}

/// The Prometheus text exposition of `registry`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a connection pool gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `idle` or `in_use`.
    pub state: String,
}

/// The database connection pool's use: `db_pool_connections{state}` and
/// `db_pool_max_connections`.
#[derive(Debug, Clone, Default)]
pub struct PoolGauges {
    connections: Family<PoolLabels, prometheus_client::metrics::gauge::Gauge>,
    max: prometheus_client::metrics::gauge::Gauge,
}

impl PoolGauges {
    /// The gauges, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let gauges = Self::default();
        registry.register(
            "db_pool_connections",
            "Database connections of this process, by state",
            gauges.connections.clone(),
        );
        registry.register(
            "db_pool_max_connections",
            "The most database connections this process opens",
            gauges.max.clone(),
        );
        gauges
    }

    /// Samples `pool` now.
    pub fn observe(&self, db: &release_pilot_ledger::db::Db) {
        let size = i64::from(db.size());
        let idle = i64::try_from(db.num_idle()).unwrap_or(i64::MAX);
        self.connections
            .get_or_create(&PoolLabels {
                state: "idle".to_owned(),
            })
            .set(idle);
        self.connections
            .get_or_create(&PoolLabels {
                state: "in_use".to_owned(),
            })
            .set((size - idle).max(0));
        self.max
            .set(i64::from(release_pilot_ledger::on!(db, |pool| pool
                .options()
                .get_max_connections())));
    }

    /// Samples `pool` every `every` until `shutdown` turns true.
    pub async fn watch(
        self,
        db: release_pilot_ledger::db::Db,
        every: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        while !*shutdown.borrow() {
            self.observe(&db);
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// `GET /metrics` serving what `encode` returns, as Prometheus text.
pub fn route<S, F>(encode: F) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
    F: Fn() -> String + Clone + Send + Sync + 'static,
{
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = encode();
            async move { ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text) }
        }),
    )
}
