//! What every read handler shares.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use release_pilot_http::auth::{Gate, TokenStore};
use release_pilot_http::metrics::{HttpMetrics, PoolGauges};
use release_pilot_ledger::db::Db;
use release_pilot_ledger::VerifyingKey;

/// Settings of the query API.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Sustained requests per second per token subject.
    pub rate_per_second: NonZeroU32,
    /// Requests a subject may burst above the sustained rate.
    pub rate_burst: NonZeroU32,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Origins browsers may call from (CORS); empty allows none.
    pub cors_origins: Vec<String>,
    /// The ledger's public key, served at `/v1/ledger/public-key`.
    pub public_key: Option<VerifyingKey>,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            rate_per_second: NonZeroU32::new(500).expect("non-zero"),
            rate_burst: NonZeroU32::new(1000).expect("non-zero"),
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            public_key: None,
        }
    }
}

/// The query API's metrics and the registry serving them.
#[derive(Debug)]
pub struct QueryMetrics {
    registry: Registry,
    /// Requests answered and their durations.
    pub http: HttpMetrics,
    /// The connection pool's use.
    pub pool: PoolGauges,
    /// DORA metrics per service, for Prometheus.
    pub dora: crate::gauges::DoraGauges,
    /// The ledger's verified integrity.
    pub chain: crate::gauges::ChainGauges,
}

impl QueryMetrics {
    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        release_pilot_http::metrics::encode(&self.registry)
    }
}

/// Shared state.
#[derive(Debug, Clone)]
pub struct QueryState {
    /// The database (read models, ledger).
    pub db: Db,
    /// Authentication.
    pub gate: Gate,
    /// Settings.
    pub config: Arc<QueryConfig>,
    /// Metrics.
    pub metrics: Arc<QueryMetrics>,
}

impl QueryState {
    /// State over `pool`.
    pub fn new(db: impl Into<Db>, config: QueryConfig) -> Self {
        Self::with_more_metrics(db, config, |_| {})
    }

    /// State over `pool` whose `/metrics` also serves what `more` registers (when one
    /// process runs the query API beside other components, such as the projector).
    pub fn with_more_metrics(
        db: impl Into<Db>,
        config: QueryConfig,
        more: impl FnOnce(&mut Registry),
    ) -> Self {
        let db = db.into();
        let mut registry = Registry::default();
        more(&mut registry);
        let http = HttpMetrics::register(&mut registry);
        let pool_gauges = PoolGauges::register(&mut registry);
        let dora = crate::gauges::DoraGauges::register(&mut registry);
        let chain = crate::gauges::ChainGauges::register(&mut registry);
        Self {
            gate: Gate::new(
                TokenStore::new(db.clone()),
                config.rate_per_second,
                config.rate_burst,
                config.request_timeout,
            ),
            db,
            config: Arc::new(config),
            metrics: Arc::new(QueryMetrics {
                registry,
                http,
                pool: pool_gauges,
                dora,
                chain,
            }),
        }
    }
}
