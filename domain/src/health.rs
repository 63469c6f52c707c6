//! Health samples, automatic rollback triggers and canary stage criteria.
//!
//! Both rules read a time series of [`HealthSample`]s:
//! - a rollback trigger fires when a breach is *sustained*: every sample carrying the
//!   metric breaches it from the first breaching sample to one at least the trigger's
//!   window later, with no healthy sample of that metric in between ([`evaluate_triggers`]);
//! - a canary stage may advance when every sample of the stage meets the stage's limits
//!   and the samples cover the stage's full duration ([`check_canary_stage`]).

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CanaryRefusal, DomainError};

/// One observation of a deployment's health. Percentages are 0-100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSample {
    /// When it was observed (domain time, from the client).
    pub at: DateTime<Utc>,
    /// Error rate in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_pct: Option<f64>,
    /// p95 latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// Whether the health check passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_ok: Option<bool>,
    /// Memory use in percent of the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_pct: Option<f64>,
    /// Database connections in use, in percent of the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_pool_pct: Option<f64>,
}

/// A metric a health sample carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Error rate (percent).
    ErrorRatePct,
    /// p95 latency (ms).
    P95Ms,
    /// Health check result.
    HealthOk,
    /// Memory use (percent).
    MemoryPct,
    /// DB pool use (percent).
    DbPoolPct,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::ErrorRatePct => "error_rate_pct",
            Metric::P95Ms => "p95_ms",
            Metric::HealthOk => "health_ok",
            Metric::MemoryPct => "memory_pct",
            Metric::DbPoolPct => "db_pool_pct",
        })
    }
}

impl HealthSample {
    /// Checks ranges: percentages finite and within 0-100, latency finite and ≥ 0, at
    /// least one measure present.
    pub fn validate(&self) -> Result<(), DomainError> {
        for (field, value) in [
            ("error_rate_pct", self.error_rate_pct),
            ("memory_pct", self.memory_pct),
            ("db_pool_pct", self.db_pool_pct),
        ] {
            if let Some(v) = value {
                if !v.is_finite() || !(0.0..=100.0).contains(&v) {
                    return Err(DomainError::invalid(
                        field,
                        "must be a number from 0 to 100",
                    ));
                }
            }
        }
        if let Some(v) = self.p95_ms {
            if !v.is_finite() || v < 0.0 {
                return Err(DomainError::invalid(
                    "p95_ms",
                    "must be a non-negative number of milliseconds",
                ));
            }
        }
        let any = self.error_rate_pct.is_some()
            || self.p95_ms.is_some()
            || self.health_ok.is_some()
            || self.memory_pct.is_some()
            || self.db_pool_pct.is_some();
        if !any {
            return Err(DomainError::invalid(
                "samples",
                "a sample needs at least one of error_rate_pct, p95_ms, health_ok, memory_pct, db_pool_pct",
            ));
        }
        Ok(())
    }

    fn value(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::ErrorRatePct => self.error_rate_pct,
            Metric::P95Ms => self.p95_ms,
            Metric::MemoryPct => self.memory_pct,
            Metric::DbPoolPct => self.db_pool_pct,
            Metric::HealthOk => self.health_ok.map(|ok| if ok { 1.0 } else { 0.0 }),
        }
    }
}

/// The policy's automatic rollback triggers. A value must exceed the limit (strictly) to
/// breach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackTriggers {
    /// Error rate limit (percent).
    pub error_rate_pct: f64,
    /// How long the error rate must stay above it (seconds).
    pub error_rate_window_seconds: u32,
    /// p95 latency limit (ms).
    pub p95_ms: f64,
    /// How long p95 must stay above it (seconds).
    pub p95_window_seconds: u32,
    /// Consecutive failed health checks that trigger at once.
    pub consecutive_health_failures: u32,
    /// Memory limit (percent).
    pub memory_pct: f64,
    /// How long memory must stay above it (seconds).
    pub memory_window_seconds: u32,
    /// DB pool limit (percent); one breaching sample triggers.
    pub db_pool_pct: f64,
}

impl Default for RollbackTriggers {
    /// The product brief's defaults: error rate > 2 % for 2 min, p95 > 1000 ms for
    /// 5 min, 3 consecutive health-check failures, memory > 95 % for 2 min, DB
    /// connections > 95 % of the pool.
    fn default() -> Self {
        Self {
            error_rate_pct: 2.0,
            error_rate_window_seconds: 120,
            p95_ms: 1000.0,
            p95_window_seconds: 300,
            consecutive_health_failures: 3,
            memory_pct: 95.0,
            memory_window_seconds: 120,
            db_pool_pct: 95.0,
        }
    }
}

/// Which trigger fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// Sustained error rate.
    ErrorRate,
    /// Sustained p95 latency.
    Latency,
    /// Consecutive failed health checks.
    HealthChecks,
    /// Sustained memory pressure.
    Memory,
    /// DB pool exhaustion.
    DbPool,
}

/// The evidence behind a fired trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerEvidence {
    /// Which trigger.
    pub trigger: TriggerKind,
    /// The metric.
    pub metric: Metric,
    /// The limit it exceeded.
    pub limit: f64,
    /// The worst value seen during the breach.
    pub peak: f64,
    /// The first breaching sample's time.
    pub breach_started_at: DateTime<Utc>,
    /// The sample at which the trigger fired.
    pub fired_at: DateTime<Utc>,
    /// How many breaching samples.
    pub samples: u32,
}

/// A sustained-breach detector over one metric.
struct Sustained {
    trigger: TriggerKind,
    metric: Metric,
    limit: f64,
    window: Duration,
}

impl Sustained {
    fn check(&self, samples: &[&HealthSample]) -> Option<TriggerEvidence> {
        let mut run: Option<(DateTime<Utc>, f64, u32)> = None;
        for sample in samples {
            let Some(value) = sample.value(self.metric) else {
                continue;
            };
            if value <= self.limit {
                run = None;
                continue;
            }
            let (started, peak, count) = run.unwrap_or((sample.at, value, 0));
            let state = (started, peak.max(value), count + 1);
            run = Some(state);
            if sample.at - started >= self.window {
                return Some(TriggerEvidence {
                    trigger: self.trigger,
                    metric: self.metric,
                    limit: self.limit,
                    peak: state.1,
                    breach_started_at: started,
                    fired_at: sample.at,
                    samples: state.2,
                });
            }
        }
        None
    }
}

/// Consecutive failed health checks; samples without a health check do not break a run.
fn check_health_failures(samples: &[&HealthSample], needed: u32) -> Option<TriggerEvidence> {
    if needed == 0 {
        return None;
    }
    let mut run: Option<(DateTime<Utc>, u32)> = None;
    for sample in samples {
        match sample.health_ok {
            None => continue,
            Some(true) => run = None,
            Some(false) => {
                let (started, count) = run.unwrap_or((sample.at, 0));
                run = Some((started, count + 1));
                if count + 1 >= needed {
                    return Some(TriggerEvidence {
                        trigger: TriggerKind::HealthChecks,
                        metric: Metric::HealthOk,
                        limit: f64::from(needed),
                        peak: f64::from(count + 1),
                        breach_started_at: started,
                        fired_at: sample.at,
                        samples: count + 1,
                    });
                }
            }
        }
    }
    None
}

/// Evaluates every rollback trigger over `samples` (any order). Returns the trigger that
/// fired earliest, or `None` when no breach has lasted its window.
pub fn evaluate_triggers(
    samples: &[HealthSample],
    triggers: &RollbackTriggers,
) -> Option<TriggerEvidence> {
    let mut ordered: Vec<&HealthSample> = samples.iter().collect();
    ordered.sort_by_key(|s| s.at);
    let seconds = |s: u32| Duration::seconds(i64::from(s));
    let detectors = [
        Sustained {
            trigger: TriggerKind::ErrorRate,
            metric: Metric::ErrorRatePct,
            limit: triggers.error_rate_pct,
            window: seconds(triggers.error_rate_window_seconds),
        },
        Sustained {
            trigger: TriggerKind::Latency,
            metric: Metric::P95Ms,
            limit: triggers.p95_ms,
            window: seconds(triggers.p95_window_seconds),
        },
        Sustained {
            trigger: TriggerKind::Memory,
            metric: Metric::MemoryPct,
            limit: triggers.memory_pct,
            window: seconds(triggers.memory_window_seconds),
        },
        Sustained {
            trigger: TriggerKind::DbPool,
            metric: Metric::DbPoolPct,
            limit: triggers.db_pool_pct,
            window: Duration::zero(),
        },
    ];
    detectors
        .iter()
        .filter_map(|d| d.check(&ordered))
        .chain(check_health_failures(
            &ordered,
            triggers.consecutive_health_failures,
        ))
        .min_by_key(|evidence| evidence.fired_at)
}

/// One canary stage: traffic weight, how long to observe it, and the limits every sample
/// must stay strictly below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryStage {
    /// Share of traffic on the new version (1-100).
    pub weight_percent: u8,
    /// How long the stage must be observed healthy (seconds).
    pub duration_seconds: u32,
    /// Error rate must stay below this (percent).
    pub max_error_rate_pct: f64,
    /// p95 latency must stay below this (ms).
    pub max_p95_ms: f64,
}

/// The product brief's default canary: 5 % for 10 min (< 0.5 %, < 400 ms), 25 % for
/// 30 min (< 1 %, < 450 ms), 75 % for 60 min (< 1.5 %, < 500 ms), then 100 %.
pub fn default_canary_stages() -> Vec<CanaryStage> {
    let stage = |weight_percent, minutes: u32, max_error_rate_pct, max_p95_ms| CanaryStage {
        weight_percent,
        duration_seconds: minutes * 60,
        max_error_rate_pct,
        max_p95_ms,
    };
    vec![
        stage(5, 10, 0.5, 400.0),
        stage(25, 30, 1.0, 450.0),
        stage(75, 60, 1.5, 500.0),
    ]
}

/// Checks whether a canary stage that started at `stage_started_at` may advance, given the
/// deployment's samples. Only samples at or after the stage start count, and only those
/// carrying both error rate and p95 are evidence.
pub fn check_canary_stage(
    stage: &CanaryStage,
    stage_started_at: DateTime<Utc>,
    samples: &[HealthSample],
) -> Result<(), CanaryRefusal> {
    let mut evidence: Vec<(DateTime<Utc>, f64, f64)> = samples
        .iter()
        .filter(|s| s.at >= stage_started_at)
        .filter_map(|s| Some((s.at, s.error_rate_pct?, s.p95_ms?)))
        .collect();
    evidence.sort_by_key(|(at, _, _)| *at);
    let Some(last) = evidence.last() else {
        return Err(CanaryRefusal::NoHealthEvidence);
    };
    for (_, error_rate, p95) in &evidence {
        if *error_rate >= stage.max_error_rate_pct {
            return Err(CanaryRefusal::CriteriaBreached {
                metric: Metric::ErrorRatePct,
                value: *error_rate,
                limit: stage.max_error_rate_pct,
            });
        }
        if *p95 >= stage.max_p95_ms {
            return Err(CanaryRefusal::CriteriaBreached {
                metric: Metric::P95Ms,
                value: *p95,
                limit: stage.max_p95_ms,
            });
        }
    }
    let observed = (last.0 - stage_started_at).num_seconds();
    let required = i64::from(stage.duration_seconds);
    if observed < required {
        return Err(CanaryRefusal::StageNotElapsed {
            observed_seconds: observed,
            required_seconds: required,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 3, 12, 0, 0)
            .single()
            .expect("valid")
    }

    fn sample(offset_s: i64) -> HealthSample {
        HealthSample {
            at: t0() + Duration::seconds(offset_s),
            error_rate_pct: None,
            p95_ms: None,
            health_ok: None,
            memory_pct: None,
            db_pool_pct: None,
        }
    }

    fn error_rate(offset_s: i64, pct: f64) -> HealthSample {
        HealthSample {
            error_rate_pct: Some(pct),
            ..sample(offset_s)
        }
    }

    #[test]
    fn error_rate_fires_once_the_breach_lasts_two_minutes() {
        let triggers = RollbackTriggers::default();
        let short: Vec<_> = (0..=11).map(|i| error_rate(i * 10, 3.0)).collect();
        assert_eq!(
            evaluate_triggers(&short, &triggers),
            None,
            "110 s is not 2 min"
        );
        let long: Vec<_> = (0..=12).map(|i| error_rate(i * 10, 3.0)).collect();
        let fired = evaluate_triggers(&long, &triggers).expect("120 s breach fires");
        assert_eq!(fired.trigger, TriggerKind::ErrorRate);
        assert_eq!(fired.fired_at, t0() + Duration::seconds(120));
        assert_eq!(fired.samples, 13);
    }

    #[test]
    fn a_healthy_sample_resets_the_breach() {
        let mut samples: Vec<_> = (0..=12).map(|i| error_rate(i * 10, 3.0)).collect();
        samples[6] = error_rate(60, 1.0);
        assert_eq!(
            evaluate_triggers(&samples, &RollbackTriggers::default()),
            None
        );
    }

    #[test]
    fn exactly_at_the_limit_is_not_a_breach() {
        let samples: Vec<_> = (0..=20).map(|i| error_rate(i * 10, 2.0)).collect();
        assert_eq!(
            evaluate_triggers(&samples, &RollbackTriggers::default()),
            None
        );
    }

    #[test]
    fn three_consecutive_failed_health_checks_fire_at_once() {
        let check = |offset, ok| HealthSample {
            health_ok: Some(ok),
            ..sample(offset)
        };
        let two = [
            check(0, false),
            check(1, false),
            check(2, true),
            check(3, false),
        ];
        assert_eq!(evaluate_triggers(&two, &RollbackTriggers::default()), None);
        let three = [check(0, false), check(1, false), check(2, false)];
        let fired = evaluate_triggers(&three, &RollbackTriggers::default()).expect("fires");
        assert_eq!(fired.trigger, TriggerKind::HealthChecks);
        assert_eq!(fired.fired_at, t0() + Duration::seconds(2));
    }

    #[test]
    fn one_db_pool_sample_above_the_limit_fires() {
        let samples = [HealthSample {
            db_pool_pct: Some(96.0),
            ..sample(0)
        }];
        let fired = evaluate_triggers(&samples, &RollbackTriggers::default()).expect("fires");
        assert_eq!(fired.trigger, TriggerKind::DbPool);
    }

    #[test]
    fn latency_and_memory_use_their_own_windows() {
        let triggers = RollbackTriggers::default();
        let p95 = |offset, ms| HealthSample {
            p95_ms: Some(ms),
            ..sample(offset)
        };
        let four_minutes: Vec<_> = (0..=8).map(|i| p95(i * 30, 1500.0)).collect();
        assert_eq!(evaluate_triggers(&four_minutes, &triggers), None);
        let five_minutes: Vec<_> = (0..=10).map(|i| p95(i * 30, 1500.0)).collect();
        assert_eq!(
            evaluate_triggers(&five_minutes, &triggers).map(|e| e.trigger),
            Some(TriggerKind::Latency)
        );
        let memory: Vec<_> = (0..=4)
            .map(|i| HealthSample {
                memory_pct: Some(97.0),
                ..sample(i * 30)
            })
            .collect();
        assert_eq!(
            evaluate_triggers(&memory, &triggers).map(|e| e.trigger),
            Some(TriggerKind::Memory)
        );
    }

    #[test]
    fn samples_out_of_order_are_evaluated_in_time_order() {
        let mut samples: Vec<_> = (0..=12).map(|i| error_rate(i * 10, 3.0)).collect();
        samples.reverse();
        assert!(evaluate_triggers(&samples, &RollbackTriggers::default()).is_some());
    }

    fn canary_sample(offset_s: i64, error: f64, p95: f64) -> HealthSample {
        HealthSample {
            error_rate_pct: Some(error),
            p95_ms: Some(p95),
            ..sample(offset_s)
        }
    }

    #[test]
    fn a_canary_stage_needs_evidence_for_its_whole_duration() {
        let stage = &default_canary_stages()[0];
        assert_eq!(
            check_canary_stage(stage, t0(), &[]),
            Err(CanaryRefusal::NoHealthEvidence)
        );
        let nine_minutes = [canary_sample(0, 0.1, 200.0), canary_sample(540, 0.1, 200.0)];
        assert_eq!(
            check_canary_stage(stage, t0(), &nine_minutes),
            Err(CanaryRefusal::StageNotElapsed {
                observed_seconds: 540,
                required_seconds: 600
            })
        );
        let ten_minutes = [canary_sample(0, 0.1, 200.0), canary_sample(600, 0.1, 200.0)];
        assert_eq!(check_canary_stage(stage, t0(), &ten_minutes), Ok(()));
    }

    #[test]
    fn a_canary_stage_limit_is_strict() {
        let stage = &default_canary_stages()[0];
        let at_limit = [canary_sample(0, 0.5, 200.0), canary_sample(600, 0.1, 200.0)];
        assert!(matches!(
            check_canary_stage(stage, t0(), &at_limit),
            Err(CanaryRefusal::CriteriaBreached {
                metric: Metric::ErrorRatePct,
                ..
            })
        ));
        let slow = [canary_sample(0, 0.1, 400.0), canary_sample(600, 0.1, 200.0)];
        assert!(matches!(
            check_canary_stage(stage, t0(), &slow),
            Err(CanaryRefusal::CriteriaBreached {
                metric: Metric::P95Ms,
                ..
            })
        ));
    }

    #[test]
    fn samples_before_the_stage_started_do_not_count() {
        let stage = &default_canary_stages()[0];
        let samples = [
            canary_sample(-60, 5.0, 900.0),
            canary_sample(600, 0.1, 200.0),
        ];
        assert!(check_canary_stage(stage, t0(), &samples).is_ok());
    }

    #[test]
    fn samples_are_validated() {
        assert!(error_rate(0, 50.0).validate().is_ok());
        assert!(error_rate(0, 101.0).validate().is_err());
        assert!(error_rate(0, f64::NAN).validate().is_err());
        assert!(sample(0).validate().is_err(), "a sample with no measure");
        let negative = HealthSample {
            p95_ms: Some(-1.0),
            ..sample(0)
        };
        assert!(negative.validate().is_err());
    }

    /// Samples every 10 s with arbitrary in-threshold values for every metric.
    fn healthy_samples() -> impl Strategy<Value = Vec<HealthSample>> {
        prop::collection::vec(
            (
                0.0f64..=2.0,
                0.0f64..=1000.0,
                0.0f64..=95.0,
                0.0f64..=95.0,
                any::<bool>(),
            ),
            1..200,
        )
        .prop_map(|values| {
            let mut failures = 0;
            values
                .into_iter()
                .enumerate()
                .map(|(i, (error, p95, memory, pool, ok))| {
                    // At most two failed health checks in a row: within the threshold.
                    let ok = if failures >= 2 { true } else { ok };
                    failures = if ok { 0 } else { failures + 1 };
                    HealthSample {
                        at: t0() + Duration::seconds(i as i64 * 10),
                        error_rate_pct: Some(error),
                        p95_ms: Some(p95),
                        health_ok: Some(ok),
                        memory_pct: Some(memory),
                        db_pool_pct: Some(pool),
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn triggers_never_fire_when_every_sample_is_within_thresholds(samples in healthy_samples()) {
            prop_assert_eq!(evaluate_triggers(&samples, &RollbackTriggers::default()), None);
        }

        #[test]
        fn a_breach_always_fires_once_it_lasts_its_window(
            metric in 0usize..3,
            excess in 0.001f64..50.0,
            step in 1i64..60,
            healthy_prefix in 0usize..20,
        ) {
            let triggers = RollbackTriggers::default();
            let (window, limit) = match metric {
                0 => (triggers.error_rate_window_seconds, triggers.error_rate_pct),
                1 => (triggers.p95_window_seconds, triggers.p95_ms),
                _ => (triggers.memory_window_seconds, triggers.memory_pct),
            };
            let value = |breach: bool| if breach { (limit + excess).min(100.0) } else { limit / 2.0 };
            let make = |at: i64, breach: bool| {
                let mut s = sample(at);
                match metric {
                    0 => s.error_rate_pct = Some(value(breach)),
                    1 => s.p95_ms = Some(if breach { limit + excess } else { limit / 2.0 }),
                    _ => s.memory_pct = Some(value(breach)),
                }
                s
            };
            let mut samples: Vec<_> = (0..healthy_prefix as i64).map(|i| make(i * step, false)).collect();
            let start = healthy_prefix as i64 * step;
            let mut at = start;
            while at - start < i64::from(window) {
                samples.push(make(at, true));
                at += step;
            }
            samples.push(make(at, true));
            let fired = evaluate_triggers(&samples, &triggers);
            prop_assert!(fired.is_some());
            let fired = fired.expect("checked");
            prop_assert!(fired.fired_at - fired.breach_started_at >= Duration::seconds(i64::from(window)));
            prop_assert_eq!(fired.breach_started_at, t0() + Duration::seconds(start));
        }

        #[test]
        fn a_stage_with_any_sample_at_or_over_a_limit_never_advances(
            good in prop::collection::vec((0.0f64..0.5, 0.0f64..400.0), 1..50),
            bad_index in 0usize..50,
            bad_error in 0.5f64..100.0,
            bad_is_latency in any::<bool>(),
        ) {
            let stage = &default_canary_stages()[0];
            let mut samples: Vec<_> = good
                .iter()
                .enumerate()
                .map(|(i, (e, p))| canary_sample(i as i64 * 60 + 600, *e, *p))
                .collect();
            let index = bad_index % samples.len();
            if bad_is_latency {
                samples[index].p95_ms = Some(400.0 + bad_error);
            } else {
                samples[index].error_rate_pct = Some(bad_error);
            }
            let is_breach = matches!(
                check_canary_stage(stage, t0(), &samples),
                Err(CanaryRefusal::CriteriaBreached { .. })
            );
            prop_assert!(is_breach);
        }
    }
}
