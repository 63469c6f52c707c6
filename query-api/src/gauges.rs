//! DORA metrics per service as Prometheus gauges, so dashboards and alerts can use them:
//! `dora_deployments_per_day`, `dora_change_lead_time_median_seconds`,
//! `dora_change_fail_rate`, `dora_failed_deployment_recovery_median_seconds` and
//! `dora_deployment_rework_rate`, each `{service}`, over the last 30 days, refreshed
//! every minute (and on demand). A metric with no data for a service has no sample.

use release_pilot_ledger::on;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use release_pilot_http::error::ApiError;
use serde_json::Value;

use crate::dora::{self, Window};
use crate::state::QueryState;

/// The services a sample belongs to.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The service.
    pub service: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The five gauges.
#[derive(Debug, Clone, Default)]
pub struct DoraGauges {
    per_day: Family<ServiceLabels, FloatGauge>,
    lead_time: Family<ServiceLabels, FloatGauge>,
    fail_rate: Family<ServiceLabels, FloatGauge>,
    recovery: Family<ServiceLabels, FloatGauge>,
    rework: Family<ServiceLabels, FloatGauge>,
}

/// At most this many services get gauges (the busiest, by deployments in the window).
const MAX_SERVICES: i64 = 500;

impl DoraGauges {
    /// The gauges, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let g = Self::default();
        registry.register(
            "dora_deployments_per_day",
            "Successful production deployments per day over the last 30 days",
            g.per_day.clone(),
        );
        registry.register_with_unit(
            "dora_change_lead_time_median",
            "Median change lead time over the last 30 days",
            Unit::Seconds,
            g.lead_time.clone(),
        );
        registry.register(
            "dora_change_fail_rate",
            "Change fail rate (0-1) over the last 30 days",
            g.fail_rate.clone(),
        );
        registry.register_with_unit(
            "dora_failed_deployment_recovery_median",
            "Median failed deployment recovery time over the last 30 days",
            Unit::Seconds,
            g.recovery.clone(),
        );
        registry.register(
            "dora_deployment_rework_rate",
            "Deployment rework rate (0-1) over the last 30 days",
            g.rework.clone(),
        );
        g
    }

    fn set(family: &Family<ServiceLabels, FloatGauge>, service: &str, value: Option<f64>) {
        let labels = ServiceLabels {
            service: service.to_owned(),
        };
        match value {
            Some(v) => {
                family.get_or_create(&labels).set(v);
            }
            None => {
                family.remove(&labels);
            }
        }
    }
}

/// Recomputes every service's gauges over the 30 days up to now.
pub async fn refresh(state: &QueryState) -> Result<(), ApiError> {
    let to = Utc::now();
    let window = Window {
        from: to - chrono::Duration::days(30),
        to,
    };
    let services: Vec<String> = on!(&state.db, |pool| sqlx::query_scalar(
        "SELECT service FROM rm_dora_deployments WHERE production AND finished_at >= $1 \
         GROUP BY service ORDER BY count(*) DESC, service LIMIT $2",
    )
    .bind(window.from)
    .bind(MAX_SERVICES)
    .fetch_all(pool)
    .await)?;
    let gauges = &state.metrics.dora;
    for service in &services {
        let facts = crate::routes::dora::load(state, Some(service), None, &window).await?;
        let r = dora::report(&facts, &window, false);
        let num = |v: &Value| v.as_f64();
        DoraGauges::set(
            &gauges.per_day,
            service,
            num(&r["deployment_frequency"]["value"]["per_day"]),
        );
        DoraGauges::set(
            &gauges.lead_time,
            service,
            num(&r["change_lead_time"]["value"]["median_minutes"]).map(|m| m * 60.0),
        );
        DoraGauges::set(
            &gauges.fail_rate,
            service,
            num(&r["change_fail_rate"]["value"]["rate"]),
        );
        DoraGauges::set(
            &gauges.recovery,
            service,
            num(&r["failed_deployment_recovery_time"]["value"]["median_minutes"]).map(|m| m * 60.0),
        );
        DoraGauges::set(
            &gauges.rework,
            service,
            num(&r["deployment_rework_rate"]["value"]["rate"]),
        );
    }
    Ok(())
}

/// Refreshes the DORA gauges every `every` and the pool gauges every second, until
/// `shutdown` turns true.
pub async fn watch(
    state: QueryState,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last: Option<std::time::Instant> = None;
    while !*shutdown.borrow() {
        state.metrics.pool.observe(&state.db);
        if last.is_none_or(|at| at.elapsed() >= every) {
            last = Some(std::time::Instant::now());
            if let Err(error) = refresh(&state).await {
                tracing::debug!(?error, "DORA gauges not refreshed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// The ledger's integrity as this process last verified it: `ledger_chain_valid` (1 or
/// 0), `ledger_verified_position`, `ledger_verification_failures_total` and
/// `ledger_last_verification_timestamp_seconds`.
#[derive(Debug, Clone, Default)]
pub struct ChainGauges {
    valid: Gauge,
    verified: Gauge,
    failures: prometheus_client::metrics::counter::Counter,
    last: FloatGauge,
}

impl ChainGauges {
    /// The gauges, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let g = Self::default();
        registry.register(
            "ledger_chain_valid",
            "1 when the last full verification of the hash chain and checkpoints passed, 0 when it failed",
            g.valid.clone(),
        );
        registry.register(
            "ledger_verified_position",
            "The last position the last verification covered",
            g.verified.clone(),
        );
        registry.register(
            "ledger_verification_failures",
            "Verifications that found the chain or a checkpoint broken",
            g.failures.clone(),
        );
        registry.register_with_unit(
            "ledger_last_verification_timestamp",
            "When the last verification finished (Unix time)",
            Unit::Seconds,
            g.last.clone(),
        );
        g
    }
}

/// Verifies the whole ledger now (needs the public key); records the outcome.
pub async fn verify_chain(state: &QueryState) -> Result<bool, ApiError> {
    let Some(key) = state.config.public_key else {
        return Ok(false);
    };
    let outcome = release_pilot_ledger::verify::verify_database(&state.db, &key, |_| {}).await?;
    let gauges = &state.metrics.chain;
    let valid = match outcome {
        Ok(report) => {
            gauges.verified.set(report.head);
            true
        }
        Err(failure) => {
            tracing::error!(%failure, "ledger verification failed");
            gauges.failures.inc();
            false
        }
    };
    gauges.valid.set(i64::from(valid));
    gauges
        .last
        .set(Utc::now().timestamp_millis() as f64 / 1000.0);
    Ok(valid)
}

/// Verifies the ledger every `every` until `shutdown` turns true (only with the public
/// key configured).
pub async fn watch_chain(
    state: QueryState,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if state.config.public_key.is_none() {
        return;
    }
    while !*shutdown.borrow() {
        if let Err(error) = verify_chain(&state).await {
            tracing::warn!(?error, "ledger verification could not run");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}
