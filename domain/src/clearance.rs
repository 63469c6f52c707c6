//! May this release be deployed to this environment now? The rule that joins a release's
//! gates and approvals, the environment's policy and its freezes.
//!
//! A deployment is an Environment command, but its preconditions live in the Release
//! aggregate and the Policy. The command service loads both and places them in the
//! command as [`ReleaseFacts`] and an [`AppliedPolicy`]; [`clear_deployment`] decides,
//! listing every refusal reason at once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::environment::Strategy;
use crate::error::{DeploymentRefusal, DomainError};
use crate::gate::GateKind;
use crate::ids::{Person, ReleaseId, ServiceName};
use crate::policy::{AppliedPolicy, ApprovalRules};
use crate::roles::Role;

/// Where a gate stands for a release: its latest result, or a bypass of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStanding {
    /// The latest result passed.
    Passed,
    /// The latest result failed.
    Failed,
    /// Bypassed by an authorised role, with a reason.
    Bypassed,
}

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Approve.
    Approve,
    /// Reject.
    Reject,
}

/// One person's latest decision for an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApproverDecision {
    /// Who.
    pub approver: Person,
    /// Their roles when they decided.
    pub roles: BTreeSet<Role>,
    /// What they decided.
    pub decision: Decision,
}

/// What a deployment needs to know about its release, for one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseFacts {
    /// The release.
    pub release_id: ReleaseId,
    /// Its service.
    pub service: ServiceName,
    /// Its version.
    pub version: Version,
    /// Whether it was withdrawn.
    pub withdrawn: bool,
    /// Every gate with a result or bypass.
    pub gates: BTreeMap<GateKind, GateStanding>,
    /// The latest decision of each person for the environment.
    pub decisions: Vec<ApproverDecision>,
    /// The hotfix approval for the environment, if any.
    pub hotfix_approved_by: Option<Person>,
    /// Who created the release.
    pub creator: Person,
    /// Who authored its commits.
    pub commit_authors: Vec<Person>,
}

impl ReleaseFacts {
    /// How `person` relates to the release, if they are its creator or a commit author.
    pub fn self_relation(&self, person: &Person) -> Option<String> {
        self_relation(&self.creator, &self.commit_authors, person)
    }
}

/// How `person` relates to a release created by `creator` from commits by `authors`:
/// `created the release`, `authored a commit in the release`, or `None`.
pub fn self_relation(creator: &Person, authors: &[Person], person: &Person) -> Option<String> {
    if creator.same_person(person) {
        return Some("created the release".to_owned());
    }
    authors
        .iter()
        .any(|author| author.same_person(person))
        .then(|| "authored a commit in the release".to_owned())
}

/// How far a release's approvals for one environment are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalStatus {
    /// Distinct approvals that count.
    pub have: u32,
    /// Approvals required.
    pub need: u32,
    /// Who approved (counted ones).
    pub approved_by: Vec<Person>,
    /// Required roles not yet represented.
    pub missing_roles: Vec<Role>,
    /// People whose latest decision is a rejection.
    pub rejected_by: Vec<Person>,
}

impl ApprovalStatus {
    /// Whether approvals are complete and nothing is rejected.
    pub fn is_complete(&self) -> bool {
        self.have >= self.need && self.missing_roles.is_empty() && self.rejected_by.is_empty()
    }
}

/// Counts approvals under the rules: one person counts once (their latest decision), and
/// when self-approval is forbidden the creator and commit authors never count.
pub fn approval_status(rules: &ApprovalRules, facts: &ReleaseFacts) -> ApprovalStatus {
    let mut approved_by = Vec::new();
    let mut covered_roles = BTreeSet::new();
    let mut rejected_by = Vec::new();
    for decision in &facts.decisions {
        match decision.decision {
            Decision::Reject => rejected_by.push(decision.approver.clone()),
            Decision::Approve => {
                let is_self = facts.self_relation(&decision.approver).is_some();
                let already = approved_by
                    .iter()
                    .any(|p: &Person| p.same_person(&decision.approver));
                if (rules.forbid_self_approval && is_self) || already {
                    continue;
                }
                approved_by.push(decision.approver.clone());
                covered_roles.extend(decision.roles.iter().copied());
            }
        }
    }
    ApprovalStatus {
        have: u32::try_from(approved_by.len()).unwrap_or(u32::MAX),
        need: rules.min_approvals,
        approved_by,
        missing_roles: rules
            .required_roles
            .difference(&covered_roles)
            .copied()
            .collect(),
        rejected_by,
    }
}

/// How a deployment was cleared; recorded in `DeploymentStarted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clearance {
    /// The policy version checked against (0 = built-in defaults).
    pub policy_version: u64,
    /// Approvals that counted.
    pub approved_by: Vec<Person>,
    /// Required gates that were bypassed rather than passed.
    pub bypassed_gates: Vec<GateKind>,
    /// The incident commander who opened the hotfix lane, when it was used.
    pub hotfix_approved_by: Option<Person>,
    /// When the hotfix lane was used: the deadline for the regular approvals.
    pub retroactive_approval_due: Option<DateTime<Utc>>,
}

/// Decides whether `facts`' release may start deploying with `strategy` at `at`.
/// `environment_freeze` is the reason of an ad-hoc freeze in force, if any.
pub fn clear_deployment(
    policy: &AppliedPolicy,
    facts: &ReleaseFacts,
    strategy: Strategy,
    at: DateTime<Utc>,
    environment_freeze: Option<&str>,
) -> Result<Clearance, DomainError> {
    let rules = &policy.rules;
    let mut refusals = Vec::new();
    let is_hotfix = strategy == Strategy::Hotfix;

    if facts.withdrawn {
        refusals.push(DeploymentRefusal::ReleaseWithdrawn);
    }

    let missing_gates: Vec<GateKind> = rules
        .required_gates
        .iter()
        .filter(|gate| {
            !matches!(
                facts.gates.get(*gate),
                Some(GateStanding::Passed | GateStanding::Bypassed)
            )
        })
        .cloned()
        .collect();
    if !missing_gates.is_empty() {
        refusals.push(DeploymentRefusal::GatesNotPassed {
            gates: missing_gates,
        });
    }
    let bypassed_gates = rules
        .required_gates
        .iter()
        .filter(|gate| facts.gates.get(*gate) == Some(&GateStanding::Bypassed))
        .cloned()
        .collect();

    let approvals = approval_status(&rules.approvals, facts);
    if !approvals.rejected_by.is_empty() {
        refusals.push(DeploymentRefusal::ApprovalRejected {
            by: approvals
                .rejected_by
                .iter()
                .map(ToString::to_string)
                .collect(),
        });
    }
    let approvals_complete = approvals.have >= approvals.need && approvals.missing_roles.is_empty();
    let mut hotfix_lane = None;
    if is_hotfix && !rules.hotfix.allowed {
        refusals.push(DeploymentRefusal::HotfixNotAllowed);
    } else if is_hotfix && !approvals_complete {
        match &facts.hotfix_approved_by {
            Some(commander) => hotfix_lane = Some(commander.clone()),
            None => refusals.push(DeploymentRefusal::HotfixApprovalMissing),
        }
    } else if !approvals_complete {
        if approvals.have < approvals.need {
            refusals.push(DeploymentRefusal::ApprovalsIncomplete {
                have: approvals.have,
                need: approvals.need,
            });
        }
        if !approvals.missing_roles.is_empty() {
            refusals.push(DeploymentRefusal::ApproverRolesMissing {
                roles: approvals.missing_roles.clone(),
            });
        }
    }

    let freeze_exempt = is_hotfix && rules.hotfix.allowed && rules.hotfix.allowed_during_freeze;
    if !freeze_exempt {
        let reason = environment_freeze
            .map(str::to_owned)
            .or_else(|| rules.freeze_at(at).map(|w| w.reason.clone()));
        if let Some(reason) = reason {
            refusals.push(DeploymentRefusal::ChangeFrozen { reason });
        }
    }

    if !refusals.is_empty() {
        return Err(DomainError::DeploymentRefused(refusals));
    }
    let retroactive_approval_due = hotfix_lane
        .as_ref()
        .map(|_| at + Duration::hours(i64::from(rules.hotfix.retroactive_window_hours)));
    Ok(Clearance {
        policy_version: policy.version,
        approved_by: approvals.approved_by,
        bypassed_gates,
        hotfix_approved_by: hotfix_lane,
        retroactive_approval_due,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::Strategy;
    use crate::ids::EnvironmentTier;
    use crate::policy::FreezeWindow;
    use crate::testsupport::{at, person, release_id, service};
    use proptest::prelude::{any, prop, prop_assert, proptest};

    fn production() -> AppliedPolicy {
        AppliedPolicy {
            version: 3,
            rules: crate::policy::PolicyRules::defaults_for(EnvironmentTier::Production),
        }
    }

    fn approve(name: &str) -> ApproverDecision {
        ApproverDecision {
            approver: person(name),
            roles: BTreeSet::from([Role::Approver]),
            decision: Decision::Approve,
        }
    }

    fn ready() -> ReleaseFacts {
        ReleaseFacts {
            release_id: release_id(1),
            service: service("api"),
            version: Version::new(1, 2, 0),
            withdrawn: false,
            gates: BTreeMap::from([
                (GateKind::Testing, GateStanding::Passed),
                (GateKind::Security, GateStanding::Passed),
            ]),
            decisions: vec![approve("ann@example.com"), approve("bob@example.com")],
            hotfix_approved_by: None,
            creator: person("ci-bot"),
            commit_authors: vec![person("Dev One <dev1@example.com>")],
        }
    }

    fn refusals(result: Result<Clearance, DomainError>) -> Vec<DeploymentRefusal> {
        match result {
            Err(DomainError::DeploymentRefused(refusals)) => refusals,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_ready_release_is_cleared_with_the_policy_version() {
        let clearance = clear_deployment(&production(), &ready(), Strategy::Canary, at(0), None)
            .expect("cleared");
        assert_eq!(clearance.policy_version, 3);
        assert_eq!(clearance.approved_by.len(), 2);
        assert_eq!(clearance.retroactive_approval_due, None);
    }

    #[test]
    fn a_failed_or_missing_required_gate_refuses() {
        let mut facts = ready();
        facts.gates.insert(GateKind::Security, GateStanding::Failed);
        facts.gates.remove(&GateKind::Testing);
        assert_eq!(
            refusals(clear_deployment(
                &production(),
                &facts,
                Strategy::Standard,
                at(0),
                None
            )),
            [DeploymentRefusal::GatesNotPassed {
                gates: vec![GateKind::Testing, GateKind::Security]
            }]
        );
    }

    #[test]
    fn a_bypassed_gate_clears_and_is_recorded() {
        let mut facts = ready();
        facts
            .gates
            .insert(GateKind::Security, GateStanding::Bypassed);
        let clearance =
            clear_deployment(&production(), &facts, Strategy::Standard, at(0), None).expect("ok");
        assert_eq!(clearance.bypassed_gates, [GateKind::Security]);
    }

    #[test]
    fn one_approval_is_not_enough_for_production() {
        let mut facts = ready();
        facts.decisions.pop();
        assert_eq!(
            refusals(clear_deployment(
                &production(),
                &facts,
                Strategy::Standard,
                at(0),
                None
            )),
            [DeploymentRefusal::ApprovalsIncomplete { have: 1, need: 2 }]
        );
    }

    #[test]
    fn one_person_counts_once_across_identity_formats() {
        let mut facts = ready();
        facts.decisions[1] = approve("Ann <ann@example.com>");
        assert_eq!(
            refusals(clear_deployment(
                &production(),
                &facts,
                Strategy::Standard,
                at(0),
                None
            )),
            [DeploymentRefusal::ApprovalsIncomplete { have: 1, need: 2 }]
        );
    }

    #[test]
    fn required_roles_must_be_represented() {
        let mut facts = ready();
        for d in &mut facts.decisions {
            d.roles = BTreeSet::from([Role::Ci]);
        }
        assert_eq!(
            refusals(clear_deployment(
                &production(),
                &facts,
                Strategy::Standard,
                at(0),
                None
            )),
            [DeploymentRefusal::ApproverRolesMissing {
                roles: vec![Role::Approver]
            }]
        );
    }

    #[test]
    fn a_rejection_blocks() {
        let mut facts = ready();
        facts.decisions.push(ApproverDecision {
            decision: Decision::Reject,
            ..approve("carol@example.com")
        });
        assert!(matches!(
            refusals(clear_deployment(
                &production(),
                &facts,
                Strategy::Standard,
                at(0),
                None
            ))[..],
            [DeploymentRefusal::ApprovalRejected { .. }]
        ));
    }

    #[test]
    fn a_withdrawn_release_is_refused() {
        let mut facts = ready();
        facts.withdrawn = true;
        assert_eq!(
            refusals(clear_deployment(
                &production(),
                &facts,
                Strategy::Standard,
                at(0),
                None
            )),
            [DeploymentRefusal::ReleaseWithdrawn]
        );
    }

    #[test]
    fn a_hotfix_with_a_commander_approval_gets_a_retroactive_deadline() {
        let mut facts = ready();
        facts.decisions.clear();
        facts.hotfix_approved_by = Some(person("ic@example.com"));
        let clearance =
            clear_deployment(&production(), &facts, Strategy::Hotfix, at(0), None).expect("ok");
        assert_eq!(clearance.hotfix_approved_by, Some(person("ic@example.com")));
        assert_eq!(clearance.retroactive_approval_due, Some(at(24 * 60)));
    }

    #[test]
    fn a_hotfix_without_a_commander_approval_is_refused() {
        let mut facts = ready();
        facts.decisions.clear();
        assert_eq!(
            refusals(clear_deployment(
                &production(),
                &facts,
                Strategy::Hotfix,
                at(0),
                None
            )),
            [DeploymentRefusal::HotfixApprovalMissing]
        );
    }

    #[test]
    fn a_hotfix_is_refused_when_the_policy_closes_the_lane() {
        let mut policy = production();
        policy.rules.hotfix.allowed = false;
        let mut facts = ready();
        facts.decisions.clear();
        facts.hotfix_approved_by = Some(person("ic@example.com"));
        assert_eq!(
            refusals(clear_deployment(
                &policy,
                &facts,
                Strategy::Hotfix,
                at(0),
                None
            )),
            [DeploymentRefusal::HotfixNotAllowed]
        );
    }

    #[test]
    fn the_commander_approval_does_not_clear_a_regular_deployment() {
        let mut facts = ready();
        facts.decisions.clear();
        facts.hotfix_approved_by = Some(person("ic@example.com"));
        assert!(matches!(
            refusals(clear_deployment(
                &production(),
                &facts,
                Strategy::Standard,
                at(0),
                None
            ))[..],
            [
                DeploymentRefusal::ApprovalsIncomplete { have: 0, need: 2 },
                ..
            ]
        ));
    }

    #[test]
    fn freezes_refuse_regular_deployments_but_not_hotfixes() {
        let mut policy = production();
        policy.rules.freeze_windows.push(FreezeWindow {
            starts_at: at(-60),
            ends_at: at(60),
            reason: "quarter close".into(),
        });
        assert_eq!(
            refusals(clear_deployment(
                &policy,
                &ready(),
                Strategy::Standard,
                at(0),
                None
            )),
            [DeploymentRefusal::ChangeFrozen {
                reason: "quarter close".into()
            }]
        );
        assert!(clear_deployment(&policy, &ready(), Strategy::Standard, at(60), None).is_ok());
        assert!(clear_deployment(&policy, &ready(), Strategy::Hotfix, at(0), None).is_ok());
        assert!(matches!(
            refusals(clear_deployment(
                &production(),
                &ready(),
                Strategy::Standard,
                at(0),
                Some("incident 42")
            ))[..],
            [DeploymentRefusal::ChangeFrozen { .. }]
        ));
    }

    #[test]
    fn every_reason_is_listed_at_once() {
        let mut facts = ready();
        facts.withdrawn = true;
        facts.decisions.clear();
        facts.gates.clear();
        let codes: Vec<_> = refusals(clear_deployment(
            &production(),
            &facts,
            Strategy::Standard,
            at(0),
            Some("freeze"),
        ))
        .iter()
        .map(DeploymentRefusal::code)
        .collect();
        assert_eq!(
            codes,
            [
                "release_withdrawn",
                "gates_not_passed",
                "approvals_incomplete",
                "approver_roles_missing",
                "change_frozen"
            ]
        );
    }

    /// Any set of approvals from distinct people plus one from the creator or an author.
    fn approvals_with_a_self_approver(
    ) -> impl proptest::strategy::Strategy<Value = (Vec<String>, usize, bool)> {
        (
            prop::collection::vec("[a-z]{3,8}@example\\.com", 0..6),
            0usize..6,
            any::<bool>(),
        )
    }

    proptest! {
        #[test]
        fn no_approval_set_including_a_self_approver_counts_the_self_approver(
            (others, insert_at, creator_not_author) in approvals_with_a_self_approver()
        ) {
            let mut facts = ready();
            let self_approver = if creator_not_author { "ci-bot" } else { "dev1@example.com" };
            let mut decisions: Vec<_> = others.iter().map(|n| approve(n)).collect();
            let index = insert_at.min(decisions.len());
            decisions.insert(index, approve(self_approver));
            facts.decisions = decisions;
            let mut rules = production().rules.approvals;
            // Require every listed approval, including the self-approver's.
            rules.min_approvals = u32::try_from(facts.decisions.len()).expect("small");
            let status = approval_status(&rules, &facts);
            prop_assert!(!status.approved_by.iter().any(|p| p.same_person(&person(self_approver))));
            prop_assert!(!status.is_complete());
            let cleared = clear_deployment(
                &AppliedPolicy { version: 1, rules: crate::policy::PolicyRules { approvals: rules, ..production().rules } },
                &facts, Strategy::Standard, at(0), None,
            );
            prop_assert!(cleared.is_err());
        }
    }
}
