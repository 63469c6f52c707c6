//! The command API's Prometheus metrics, served as text at `/metrics`:
//! `http_requests_total{method,route,status}`,
//! `http_request_duration_seconds{method,route}` and
//! `commands_total{command,outcome}` (outcome `accepted` or the refusal's code).

use std::sync::Arc;

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

/// Labels of a command.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// The command, e.g. `StartDeployment`.
    pub command: String,
    /// `accepted`, or the stable code of the refusal or failure.
    pub outcome: String,
}

/// Every metric, and the registry that serves them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Request durations.
    pub durations: Family<RouteLabels, Histogram>,
    /// Commands executed.
    pub commands: Family<CommandLabels, Counter>,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register(
            "commands",
            "Commands executed, by outcome",
            commands.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            durations,
            commands,
        })
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
