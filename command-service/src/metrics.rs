//! The command service's Prometheus metrics, served as text at `/metrics`: the shared HTTP
//! and pool metrics, `commands_total{command,outcome}` (outcome `accepted` or the
//! refusal's code), `events_appended_total{aggregate_type}`,
//! `releases_deployed_total{service,environment}`,
//! `rollbacks_executed_total{service,environment,trigger}`, and the ledger's progress as
//! this process measures it every second: `ledger_head_position`,
//! `ledger_unsealed_events`, `ledger_seal_lag_seconds`, `relay_lag_positions`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use release_pilot_http::metrics::{HttpMetrics, PoolGauges};

/// Labels of a command.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// The command, e.g. `StartDeployment`.
    pub command: String,
    /// `accepted`, or the stable code of the refusal or failure.
    pub outcome: String,
}

/// Labels of appended events.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AggregateLabels {
    /// `release`, `environment`, `incident`, `policy` or `requirement`.
    pub aggregate_type: String,
}

/// Labels of a service × environment.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvironmentLabels {
    /// The service.
    pub service: String,
    /// The environment.
    pub environment: String,
}

/// Labels of a rollback.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RollbackLabels {
    /// The service.
    pub service: String,
    /// The environment.
    pub environment: String,
    /// `automatic` (a trigger fired on health samples) or `manual`.
    pub trigger: String,
}

/// The ledger's progress, as this process last measured it.
#[derive(Debug, Clone, Default)]
pub struct LedgerGauges {
    /// The last sealed position.
    pub head: Gauge,
    /// Committed events not sealed yet.
    pub unsealed: Gauge,
    /// Seconds the oldest unsealed event has waited.
    pub seal_lag: Gauge<f64, AtomicU64>,
    /// Sealed entries the relay has not published yet.
    pub relay_lag: Gauge,
}

/// Every metric, and the registry that serves them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered and their durations.
    pub http: HttpMetrics,
    /// Commands executed.
    pub commands: Family<CommandLabels, Counter>,
    /// Events appended, by aggregate type.
    pub events_appended: Family<AggregateLabels, Counter>,
    /// Deployments completed.
    pub releases_deployed: Family<EnvironmentLabels, Counter>,
    /// Rollbacks started, automatically or by a person.
    pub rollbacks: Family<RollbackLabels, Counter>,
    /// The ledger's progress.
    pub ledger: LedgerGauges,
    /// The connection pool's use.
    pub pool: PoolGauges,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let pool = PoolGauges::register(&mut registry);
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands",
            "Commands executed, by outcome",
            commands.clone(),
        );
        let events_appended = Family::<AggregateLabels, Counter>::default();
        registry.register(
            "events_appended",
            "Events appended to the ledger, by aggregate type",
            events_appended.clone(),
        );
        let releases_deployed = Family::<EnvironmentLabels, Counter>::default();
        registry.register(
            "releases_deployed",
            "Deployments completed, by service and environment",
            releases_deployed.clone(),
        );
        let rollbacks = Family::<RollbackLabels, Counter>::default();
        registry.register(
            "rollbacks_executed",
            "Rollbacks started, by service, environment and trigger",
            rollbacks.clone(),
        );
        let ledger = LedgerGauges::default();
        registry.register(
            "ledger_head_position",
            "The last sealed ledger position",
            ledger.head.clone(),
        );
        registry.register(
            "ledger_unsealed_events",
            "Committed events the sealer has not sealed yet",
            ledger.unsealed.clone(),
        );
        registry.register_with_unit(
            "ledger_seal_lag",
            "How long the oldest unsealed event has waited",
            Unit::Seconds,
            ledger.seal_lag.clone(),
        );
        registry.register(
            "relay_lag_positions",
            "Sealed ledger entries not yet published to JetStream",
            ledger.relay_lag.clone(),
        );
        Arc::new(Self {
            registry,
            http,
            commands,
            events_appended,
            releases_deployed,
            rollbacks,
            ledger,
            pool,
        })
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        release_pilot_http::metrics::encode(&self.registry)
    }

    /// Counts what a command appended to `stream` of `aggregate_type`.
    pub fn appended(&self, aggregate_type: &str, stream: &str, event_types: &[String]) {
        if event_types.is_empty() {
            return;
        }
        self.events_appended
            .get_or_create(&AggregateLabels {
                aggregate_type: aggregate_type.to_owned(),
            })
            .inc_by(u64::try_from(event_types.len()).unwrap_or(u64::MAX));
        if aggregate_type != "environment" {
            return;
        }
        let (service, environment) = stream.split_once('/').unwrap_or((stream, ""));
        for event_type in event_types {
            let trigger = match event_type.as_str() {
                "DeploymentCompleted" => {
                    self.releases_deployed
                        .get_or_create(&EnvironmentLabels {
                            service: service.to_owned(),
                            environment: environment.to_owned(),
                        })
                        .inc();
                    continue;
                }
                "RollbackTriggered" => "automatic",
                "RollbackStarted" => "manual",
                _ => continue,
            };
            self.rollbacks
                .get_or_create(&RollbackLabels {
                    service: service.to_owned(),
                    environment: environment.to_owned(),
                    trigger: trigger.to_owned(),
                })
                .inc();
        }
    }

    /// Measures the ledger's progress and the pool now.
    pub async fn measure(&self, db: &release_pilot_ledger::db::Db) -> Result<(), sqlx::Error> {
        self.pool.observe(db);
        let (head, unsealed, waited, relayed): (Option<i64>, i64, Option<f64>, Option<i64>) = release_pilot_ledger::on!(
            db,
            |pool, lite| {
                let waited = if lite {
                    "(julianday('now') - julianday(min(recorded_at))) * 86400.0"
                } else {
                    "extract(epoch FROM clock_timestamp() - min(recorded_at))::float8"
                };
                sqlx::query_as(&format!(
                    "WITH sealed AS (SELECT max(position) AS head, max(global_position) AS last FROM ledger) \
                     SELECT (SELECT head FROM sealed), \
                            (SELECT count(*) FROM events WHERE global_position > coalesce((SELECT last FROM sealed), 0)), \
                            (SELECT {waited} FROM events \
                              WHERE global_position > coalesce((SELECT last FROM sealed), 0)), \
                            (SELECT max(position) FROM relay_checkpoints)"
                ))
                .fetch_one(pool)
                .await?
            }
        );
        let head = head.unwrap_or(0);
        self.ledger.head.set(head);
        self.ledger.unsealed.set(unsealed);
        self.ledger.seal_lag.set(waited.unwrap_or(0.0).max(0.0));
        self.ledger
            .relay_lag
            .set(relayed.map_or(0, |r| (head - r).max(0)));
        Ok(())
    }

    /// Measures every `every` until `shutdown` turns true.
    pub async fn watch(
        self: Arc<Self>,
        db: release_pilot_ledger::db::Db,
        every: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        while !*shutdown.borrow() {
            if let Err(error) = self.measure(&db).await {
                tracing::debug!(%error, "ledger metrics not measured");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
