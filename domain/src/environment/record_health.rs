//! `RecordHealth`: record health samples of a deployment in progress and evaluate the
//! automatic rollback triggers over everything sampled since it started.

use chrono::{DateTime, Utc};

use super::{Environment, EnvironmentEvent};
use crate::error::DomainError;
use crate::health::{evaluate_triggers, HealthSample};
use crate::ids::DeploymentId;

/// Most samples in one command.
pub const MAX_SAMPLES: usize = 1000;

/// Record health samples.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordHealth {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// The samples (any order).
    pub samples: Vec<HealthSample>,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl RecordHealth {
    /// Records the samples and, when a trigger fires, the automatic rollback with its
    /// evidence (the command service publishes that decision).
    pub fn decide(self, state: &Environment) -> Result<Vec<EnvironmentEvent>, DomainError> {
        let active = state.in_progress(self.deployment_id)?;
        if self.samples.is_empty() || self.samples.len() > MAX_SAMPLES {
            return Err(DomainError::invalid(
                "samples",
                format!("send 1 to {MAX_SAMPLES} samples"),
            ));
        }
        for sample in &self.samples {
            sample.validate()?;
            if sample.at < active.started_at {
                return Err(DomainError::TimeOutOfOrder {
                    field: "samples.at",
                    given: sample.at.to_rfc3339(),
                    earlier_field: "started_at",
                    earlier: active.started_at.to_rfc3339(),
                });
            }
        }
        let mut all = active.samples.clone();
        all.extend(self.samples.iter().cloned());
        let fired = evaluate_triggers(&all, &active.rollback_triggers);
        let mut events = vec![EnvironmentEvent::HealthSampled {
            deployment_id: self.deployment_id,
            samples: self.samples,
        }];
        if let Some(evidence) = fired {
            events.push(EnvironmentEvent::RollbackTriggered {
                deployment_id: self.deployment_id,
                evidence,
                target: state.rollback_target_of_active(),
            });
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::fixtures::{one_live, running, started};
    use crate::environment::{EnvironmentCommand, Strategy};
    use crate::health::TriggerKind;
    use crate::testsupport::{at, at_s, deployment_id};
    use cqrs_es::test::TestFramework;

    fn errors(seconds: i64, pct: f64) -> HealthSample {
        HealthSample {
            at: at(10) + chrono::Duration::seconds(seconds),
            error_rate_pct: Some(pct),
            p95_ms: Some(200.0),
            health_ok: Some(true),
            memory_pct: Some(40.0),
            db_pool_pct: Some(20.0),
        }
    }

    fn record(samples: Vec<HealthSample>) -> EnvironmentCommand {
        EnvironmentCommand::RecordHealth(RecordHealth {
            deployment_id: deployment_id(2),
            samples,
            requested_at: at(30),
        })
    }

    fn deploying() -> Vec<EnvironmentEvent> {
        let mut events = one_live();
        events.push(started(2, Strategy::Canary, 10));
        events
    }

    fn run(
        given: Vec<EnvironmentEvent>,
        command: EnvironmentCommand,
    ) -> Result<Vec<EnvironmentEvent>, DomainError> {
        TestFramework::<super::Environment>::with(())
            .given(given)
            .when(command)
            .inspect_result()
    }

    #[test]
    fn healthy_samples_are_recorded_without_a_trigger() {
        let samples = vec![errors(0, 0.1), errors(60, 0.2)];
        TestFramework::<super::Environment>::with(())
            .given(deploying())
            .when(record(samples.clone()))
            .then_expect_events(vec![EnvironmentEvent::HealthSampled {
                deployment_id: deployment_id(2),
                samples,
            }]);
    }

    #[test]
    fn a_sustained_breach_across_commands_triggers_a_rollback_to_the_live_version() {
        let mut given = deploying();
        given.push(EnvironmentEvent::HealthSampled {
            deployment_id: deployment_id(2),
            samples: vec![errors(0, 3.0), errors(60, 3.5)],
        });
        let events = run(given, record(vec![errors(120, 4.0)])).expect("recorded");
        let [EnvironmentEvent::HealthSampled { .. }, EnvironmentEvent::RollbackTriggered {
            evidence, target, ..
        }] = &events[..]
        else {
            panic!("expected samples and a trigger, got {events:?}");
        };
        assert_eq!(evidence.trigger, TriggerKind::ErrorRate);
        assert_eq!(evidence.peak, 4.0);
        assert_eq!(target, &Some(running(1)));
    }

    #[test]
    fn samples_after_a_trigger_are_refused() {
        let mut given = deploying();
        given.push(EnvironmentEvent::HealthSampled {
            deployment_id: deployment_id(2),
            samples: vec![errors(0, 3.0), errors(120, 3.0)],
        });
        let triggered = run(given.clone(), record(vec![errors(121, 3.0)])).expect("ok");
        given.extend(triggered);
        assert_eq!(
            run(given, record(vec![errors(180, 0.1)])),
            Err(DomainError::DeploymentNotInProgress("rolling_back"))
        );
    }

    #[test]
    fn invalid_or_early_samples_are_refused() {
        assert!(matches!(
            run(deploying(), record(vec![errors(0, 120.0)])),
            Err(DomainError::InvalidValue {
                field: "error_rate_pct",
                ..
            })
        ));
        assert!(matches!(
            run(
                deploying(),
                record(vec![HealthSample {
                    at: at_s(0),
                    ..errors(0, 0.1)
                }])
            ),
            Err(DomainError::TimeOutOfOrder {
                field: "samples.at",
                ..
            })
        ));
        assert!(matches!(
            run(deploying(), record(vec![])),
            Err(DomainError::InvalidValue {
                field: "samples",
                ..
            })
        ));
    }

    #[test]
    fn samples_for_unknown_deployments_are_refused() {
        assert_eq!(
            run(one_live(), record(vec![errors(0, 0.1)])),
            Err(DomainError::DeploymentNotFound)
        );
    }
}
