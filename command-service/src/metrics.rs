//! The command API's Prometheus metrics, served as text at `/metrics`: the shared HTTP
//! metrics (`http_requests_total`, `http_request_duration_seconds`) and
//! `commands_total{command,outcome}` (outcome `accepted` or the refusal's code).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use release_pilot_http::metrics::HttpMetrics;

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
    /// Requests answered and their durations.
    pub http: HttpMetrics,
    /// Commands executed.
    pub commands: Family<CommandLabels, Counter>,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands",
            "Commands executed, by outcome",
            commands.clone(),
        );
        Arc::new(Self {
            registry,
            http,
            commands,
        })
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        release_pilot_http::metrics::encode(&self.registry)
    }
}
