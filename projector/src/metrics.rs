//! The projector's Prometheus metrics, per projection:
//! `projection_events_applied_total`, `projection_apply_duration_seconds` (one batch:
//! apply and commit), `projection_lag_positions` (sealed entries not yet applied),
//! `projection_lag_seconds` (how long the oldest of them has waited) and
//! `projection_stopped` (1 while an entry it cannot apply holds it).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The projection a sample belongs to.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabels {
    /// Its name.
    pub projection: String,
}

/// Every projector metric.
#[derive(Debug, Clone)]
pub struct ProjectorMetrics {
    applied: Family<ProjectionLabels, Counter>,
    apply_seconds: Family<ProjectionLabels, Histogram, fn() -> Histogram>,
    lag_positions: Family<ProjectionLabels, Gauge>,
    lag_seconds: Family<ProjectionLabels, Gauge<f64, AtomicU64>>,
    stopped: Family<ProjectionLabels, Gauge>,
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for ProjectorMetrics {
    /// Metrics that are recorded but not registered anywhere.
    fn default() -> Self {
        Self {
            applied: Family::default(),
            apply_seconds: Family::new_with_constructor(batch_histogram),
            lag_positions: Family::default(),
            lag_seconds: Family::default(),
            stopped: Family::default(),
        }
    }
}

impl ProjectorMetrics {
    /// The metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "projection_events_applied",
            "Ledger entries applied, per projection",
            metrics.applied.clone(),
        );
        registry.register_with_unit(
            "projection_apply_duration",
            "Time to apply and commit one batch of entries",
            Unit::Seconds,
            metrics.apply_seconds.clone(),
        );
        registry.register(
            "projection_lag_positions",
            "Sealed ledger entries the projection has not applied yet",
            metrics.lag_positions.clone(),
        );
        registry.register_with_unit(
            "projection_lag",
            "How long the oldest entry the projection has not applied has been sealed",
            Unit::Seconds,
            metrics.lag_seconds.clone(),
        );
        registry.register(
            "projection_stopped",
            "1 while the projection is stopped by an entry it cannot apply",
            metrics.stopped.clone(),
        );
        metrics
    }

    fn labels(projection: &str) -> ProjectionLabels {
        ProjectionLabels {
            projection: projection.to_owned(),
        }
    }

    pub(crate) fn batch(&self, projection: &str, applied: usize, seconds: f64) {
        let labels = Self::labels(projection);
        self.applied
            .get_or_create(&labels)
            .inc_by(u64::try_from(applied).unwrap_or(u64::MAX));
        if applied > 0 {
            self.apply_seconds.get_or_create(&labels).observe(seconds);
        }
    }

    pub(crate) fn lag(&self, projection: &str, positions: i64, seconds: f64) {
        let labels = Self::labels(projection);
        self.lag_positions.get_or_create(&labels).set(positions);
        self.lag_seconds.get_or_create(&labels).set(seconds);
    }

    pub(crate) fn stopped(&self, projection: &str, stopped: bool) {
        self.stopped
            .get_or_create(&Self::labels(projection))
            .set(i64::from(stopped));
    }
}
