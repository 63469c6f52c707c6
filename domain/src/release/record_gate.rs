//! `RecordGateResult`: record a quality gate's evidence; the ledger evaluates it against
//! the policy's thresholds.

use chrono::{DateTime, Utc};

use super::{Release, ReleaseEvent};
use crate::error::DomainError;
use crate::gate::{evaluate, Evidence, GateKind, GateStatus, GateThresholds};
use crate::ids::Person;

/// Record a gate result.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordGateResult {
    /// The gate.
    pub gate: GateKind,
    /// The structured evidence.
    pub evidence: Evidence,
    /// The status the CI system reported, if any.
    pub reported_status: Option<GateStatus>,
    /// The thresholds of the policy in force (looked up by the command service).
    pub thresholds: GateThresholds,
    /// Who records it (from the token).
    pub actor: Person,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl RecordGateResult {
    /// Evaluates the evidence; a later result for the same gate replaces the earlier one.
    pub fn decide(self, state: &Release) -> Result<Vec<ReleaseEvent>, DomainError> {
        state.open()?;
        let verdict = evaluate(&self.evidence, self.reported_status, &self.thresholds)?;
        Ok(vec![ReleaseEvent::GateEvaluated {
            gate: self.gate,
            evidence: self.evidence,
            reported_status: self.reported_status,
            thresholds: self.thresholds,
            verdict,
            recorded_by: self.actor,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clearance::GateStanding;
    use crate::gate::GateFailure;
    use crate::release::fixtures::{created, now, withdrawn};
    use crate::release::ReleaseCommand;
    use crate::testsupport::person;

    fn record(evidence: Evidence, status: Option<GateStatus>) -> ReleaseCommand {
        ReleaseCommand::RecordGate(RecordGateResult {
            gate: GateKind::Testing,
            evidence,
            reported_status: status,
            thresholds: GateThresholds::default(),
            actor: person("ci-bot"),
            requested_at: now(),
        })
    }

    fn run(
        given: Vec<ReleaseEvent>,
        command: ReleaseCommand,
    ) -> Result<Vec<ReleaseEvent>, DomainError> {
        crate::testsupport::when::<Release>(given, command)
    }

    #[test]
    fn failing_evidence_is_recorded_as_a_failed_gate() {
        let evidence = Evidence {
            tests_passed: Some(120),
            tests_failed: Some(1),
            coverage_pct: Some(93.0),
            ..Evidence::default()
        };
        let events = run(vec![created()], record(evidence, Some(GateStatus::Passed))).expect("ok");
        let [ReleaseEvent::GateEvaluated { verdict, .. }] = &events[..] else {
            panic!("expected GateEvaluated, got {events:?}");
        };
        assert_eq!(verdict.status, GateStatus::Failed);
        assert!(matches!(
            verdict.failures[..],
            [GateFailure::TestsFailed { failed: 1, .. }]
        ));
    }

    #[test]
    fn a_later_result_replaces_the_earlier_standing() {
        let mut release = Release::default();
        cqrs_es::Aggregate::apply(&mut release, created());
        let failing = Evidence {
            tests_failed: Some(3),
            ..Evidence::default()
        };
        let passing = Evidence {
            tests_failed: Some(0),
            ..Evidence::default()
        };
        for (evidence, expected) in [
            (failing, GateStanding::Failed),
            (passing, GateStanding::Passed),
        ] {
            let ReleaseCommand::RecordGate(command) = record(evidence, None) else {
                unreachable!()
            };
            for event in command.decide(&release).expect("recorded") {
                cqrs_es::Aggregate::apply(&mut release, event);
            }
            assert_eq!(release.gates[&GateKind::Testing], expected);
        }
    }

    #[test]
    fn a_result_for_an_unknown_release_is_not_found() {
        assert_eq!(
            run(
                vec![],
                record(Evidence::default(), Some(GateStatus::Passed))
            ),
            Err(DomainError::ReleaseNotFound)
        );
    }

    #[test]
    fn a_withdrawn_release_takes_no_results() {
        assert_eq!(
            run(
                vec![created(), withdrawn()],
                record(Evidence::default(), Some(GateStatus::Passed))
            ),
            Err(DomainError::ReleaseWithdrawn)
        );
    }

    #[test]
    fn a_result_with_neither_evidence_nor_status_is_refused() {
        assert_eq!(
            run(vec![created()], record(Evidence::default(), None)),
            Err(DomainError::EmptyGateResult)
        );
    }

    #[test]
    fn invalid_evidence_is_refused() {
        let evidence = Evidence {
            coverage_pct: Some(140.0),
            ..Evidence::default()
        };
        assert!(matches!(
            run(vec![created()], record(evidence, None)),
            Err(DomainError::InvalidValue {
                field: "coverage_pct",
                ..
            })
        ));
    }
}
