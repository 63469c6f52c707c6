//! `AdvanceCanary`: move a canary to its next weight once the current stage's criteria
//! have held for the stage's duration.

use chrono::{DateTime, Utc};

use super::{Environment, EnvironmentEvent, Strategy};
use crate::error::DomainError;
use crate::health::check_canary_stage;
use crate::ids::DeploymentId;

/// Advance a canary.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvanceCanary {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// The requested weight: the next stage's, or 100 after the last stage.
    pub weight_percent: u8,
    /// When the new stage starts (client time, or the server's when absent).
    pub at: DateTime<Utc>,
}

impl AdvanceCanary {
    /// Advances when the weight is the next one and the current stage is healthy and done.
    pub fn decide(self, state: &Environment) -> Result<Vec<EnvironmentEvent>, DomainError> {
        let active = state.in_progress(self.deployment_id)?;
        if active.strategy != Strategy::Canary {
            return Err(DomainError::NotACanary);
        }
        let current = active.canary_weight();
        let expected = active
            .canary_stages
            .get(active.canary_stage + 1)
            .map_or(100, |s| s.weight_percent);
        if current == 100 || self.weight_percent != expected {
            return Err(DomainError::UnexpectedCanaryWeight {
                given: self.weight_percent,
                expected,
            });
        }
        let stage = &active.canary_stages[active.canary_stage];
        check_canary_stage(stage, active.stage_started_at, &active.samples)
            .map_err(DomainError::CanaryCriteriaUnmet)?;
        Ok(vec![EnvironmentEvent::CanaryAdvanced {
            deployment_id: self.deployment_id,
            from_weight_percent: current,
            to_weight_percent: self.weight_percent,
            at: self.at,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::fixtures::{one_live, started};
    use crate::environment::EnvironmentCommand;
    use crate::environment::Strategy;
    use crate::error::CanaryRefusal;
    use crate::health::HealthSample;
    use crate::testsupport::{at, at_s, deployment_id};
    use cqrs_es::test::TestFramework;
    use proptest::prelude::{prop, prop_assert, proptest};

    fn sample(seconds: i64, error: f64, p95: f64) -> HealthSample {
        HealthSample {
            at: at_s(seconds),
            error_rate_pct: Some(error),
            p95_ms: Some(p95),
            health_ok: Some(true),
            memory_pct: None,
            db_pool_pct: None,
        }
    }

    fn sampled(samples: Vec<HealthSample>) -> EnvironmentEvent {
        EnvironmentEvent::HealthSampled {
            deployment_id: deployment_id(2),
            samples,
        }
    }

    /// Canary of release 2 started at minute 0, healthy for the first stage's 10 min.
    fn canary_healthy_for_stage_one() -> Vec<EnvironmentEvent> {
        vec![
            started(2, Strategy::Canary, 0),
            sampled((0..=10).map(|m| sample(m * 60, 0.1, 250.0)).collect()),
        ]
    }

    fn advance(weight: u8, minute: i64) -> EnvironmentCommand {
        EnvironmentCommand::AdvanceCanary(AdvanceCanary {
            deployment_id: deployment_id(2),
            weight_percent: weight,
            at: at(minute),
        })
    }

    fn run(
        given: Vec<EnvironmentEvent>,
        command: EnvironmentCommand,
    ) -> Result<Vec<EnvironmentEvent>, DomainError> {
        crate::testsupport::when::<Environment>(given, command)
    }

    #[test]
    fn a_healthy_stage_advances_to_the_next_weight() {
        TestFramework::<Environment>::with(())
            .given(canary_healthy_for_stage_one())
            .when(advance(25, 10))
            .then_expect_events(vec![EnvironmentEvent::CanaryAdvanced {
                deployment_id: deployment_id(2),
                from_weight_percent: 5,
                to_weight_percent: 25,
                at: at(10),
            }]);
    }

    #[test]
    fn skipping_a_stage_is_refused() {
        assert_eq!(
            run(canary_healthy_for_stage_one(), advance(75, 10)),
            Err(DomainError::UnexpectedCanaryWeight {
                given: 75,
                expected: 25
            })
        );
    }

    #[test]
    fn a_stage_observed_too_briefly_is_refused() {
        let given = vec![
            started(2, Strategy::Canary, 0),
            sampled((0..=5).map(|m| sample(m * 60, 0.1, 250.0)).collect()),
        ];
        assert_eq!(
            run(given, advance(25, 5)),
            Err(DomainError::CanaryCriteriaUnmet(
                CanaryRefusal::StageNotElapsed {
                    observed_seconds: 300,
                    required_seconds: 600
                }
            ))
        );
    }

    #[test]
    fn a_stage_without_samples_is_refused() {
        assert_eq!(
            run(vec![started(2, Strategy::Canary, 0)], advance(25, 10)),
            Err(DomainError::CanaryCriteriaUnmet(
                CanaryRefusal::NoHealthEvidence
            ))
        );
    }

    #[test]
    fn a_breached_stage_is_refused() {
        let mut given = canary_healthy_for_stage_one();
        given.push(sampled(vec![sample(610, 0.9, 250.0)]));
        assert!(matches!(
            run(given, advance(25, 11)),
            Err(DomainError::CanaryCriteriaUnmet(
                CanaryRefusal::CriteriaBreached { .. }
            ))
        ));
    }

    #[test]
    fn the_new_stage_is_judged_on_its_own_samples() {
        let mut given = canary_healthy_for_stage_one();
        given.push(EnvironmentEvent::CanaryAdvanced {
            deployment_id: deployment_id(2),
            from_weight_percent: 5,
            to_weight_percent: 25,
            at: at(10),
        });
        // The first stage's ten minutes do not count toward the second's thirty: only the
        // sample taken at the moment of advancing belongs to the new stage.
        assert_eq!(
            run(given, advance(75, 11)),
            Err(DomainError::CanaryCriteriaUnmet(
                CanaryRefusal::StageNotElapsed {
                    observed_seconds: 0,
                    required_seconds: 1800
                }
            ))
        );
    }

    #[test]
    fn only_canaries_advance() {
        let mut given = one_live();
        given.push(started(2, Strategy::Standard, 10));
        assert_eq!(run(given, advance(25, 20)), Err(DomainError::NotACanary));
    }

    #[test]
    fn unknown_or_finished_deployments_are_refused() {
        assert_eq!(
            run(one_live(), advance(25, 10)),
            Err(DomainError::DeploymentNotFound)
        );
        let mut given = canary_healthy_for_stage_one();
        given.push(EnvironmentEvent::DeploymentFailed {
            deployment_id: deployment_id(2),
            reason: "x".into(),
            finished_at: at(5),
        });
        assert_eq!(
            run(given, advance(25, 10)),
            Err(DomainError::DeploymentNotInProgress("failed"))
        );
    }

    proptest! {
        #[test]
        fn advancing_is_refused_whenever_the_stage_criteria_are_unmet(
            minutes in 0i64..10,
            breach_at in prop::option::of(0i64..20),
            breach_error in prop::bool::ANY,
        ) {
            // Healthy samples for `minutes` (< the stage's 10), or a full 10+ minutes with
            // one breaching sample somewhere: the criteria are unmet either way.
            let span = if breach_at.is_some() { 12 } else { minutes };
            let mut samples: Vec<_> = (0..=span).map(|m| sample(m * 60, 0.1, 250.0)).collect();
            if let Some(i) = breach_at {
                let index = usize::try_from(i).expect("small") % samples.len();
                if breach_error { samples[index].error_rate_pct = Some(0.5); }
                else { samples[index].p95_ms = Some(400.0); }
            }
            let given = vec![started(2, Strategy::Canary, 0), sampled(samples)];
            let refused = matches!(run(given, advance(25, 12)), Err(DomainError::CanaryCriteriaUnmet(_)));
            prop_assert!(refused);
        }
    }
}
