//! The **Release** aggregate `(service, version)`: created from commits, then quality-gate
//! results, approval requests, approvals, rejections and hotfix approvals per environment,
//! and withdrawal.
//!
//! Its state answers one question for the Environment aggregate: [`Release::facts_for`] an
//! environment — what a deployment needs to know to be cleared.

mod approve;
mod approve_hotfix;
mod bypass_gate;
mod create;
mod record_gate;
mod record_refused_approval;
mod reject;
mod request_approval;
mod withdraw;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use semver::Version;
use serde::{Deserialize, Serialize};

pub use approve::ApproveRelease;
pub use approve_hotfix::ApproveHotfix;
pub use bypass_gate::BypassGate;
pub use create::{CommitInput, CreateRelease};
pub use record_gate::RecordGateResult;
pub use record_refused_approval::RecordRefusedApproval;
pub use reject::RejectRelease;
pub use request_approval::RequestApproval;
pub use withdraw::WithdrawRelease;

use crate::clearance::{ApproverDecision, Decision, GateStanding, ReleaseFacts};
use crate::conventional::{Changelog, VersionSource};
use crate::error::DomainError;
use crate::gate::{Evidence, GateKind, GateStatus, GateThresholds, GateVerdict};
use crate::ids::{CommitSha, EnvironmentName, Person, ReleaseId, RequirementId, ServiceName};
use crate::roles::Role;

/// A commit as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseCommit {
    /// Its id.
    pub sha: CommitSha,
    /// The full message.
    pub message: String,
    /// Its author.
    pub author: Person,
    /// When it was committed (domain time, from the client).
    pub committed_at: DateTime<Utc>,
    /// Requirements linked from the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<RequirementId>,
}

/// What never changes about a release once created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    /// Its id.
    pub release_id: ReleaseId,
    /// Its service.
    pub service: ServiceName,
    /// Its version.
    pub version: Version,
    /// Who created it.
    pub created_by: Person,
    /// Its commit authors, without duplicates.
    pub commit_authors: Vec<Person>,
}

/// Decisions for one environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentApprovals {
    /// Whether an approval request is pending (requested, no decision since).
    pub request_pending: bool,
    /// Each person's latest decision, in the order people first decided.
    pub decisions: Vec<ApproverDecision>,
    /// The hotfix approval, if any.
    pub hotfix_approved_by: Option<Person>,
}

/// The state of one release.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// Set by `ReleaseCreated`.
    pub info: Option<ReleaseInfo>,
    /// Where each gate stands.
    pub gates: BTreeMap<GateKind, GateStanding>,
    /// Approvals per environment.
    pub approvals: BTreeMap<EnvironmentName, EnvironmentApprovals>,
    /// Whether it was withdrawn.
    pub withdrawn: bool,
}

impl Release {
    /// The release's fixed facts, or `ReleaseNotFound` before creation.
    pub fn info(&self) -> Result<&ReleaseInfo, DomainError> {
        self.info.as_ref().ok_or(DomainError::ReleaseNotFound)
    }

    /// The fixed facts of a release that still accepts gates and approvals.
    fn open(&self) -> Result<&ReleaseInfo, DomainError> {
        let info = self.info()?;
        if self.withdrawn {
            return Err(DomainError::ReleaseWithdrawn);
        }
        Ok(info)
    }

    /// The latest decision of `person` for `environment`, if any.
    fn decision_of(&self, environment: &EnvironmentName, person: &Person) -> Option<Decision> {
        self.approvals.get(environment).and_then(|env| {
            env.decisions
                .iter()
                .find(|d| d.approver.same_person(person))
                .map(|d| d.decision)
        })
    }

    /// Everything a deployment of this release to `environment` needs to be cleared.
    pub fn facts_for(&self, environment: &EnvironmentName) -> Result<ReleaseFacts, DomainError> {
        let info = self.info()?;
        let env = self.approvals.get(environment).cloned().unwrap_or_default();
        Ok(ReleaseFacts {
            release_id: info.release_id,
            service: info.service.clone(),
            version: info.version.clone(),
            withdrawn: self.withdrawn,
            gates: self.gates.clone(),
            decisions: env.decisions,
            hotfix_approved_by: env.hotfix_approved_by,
            creator: info.created_by.clone(),
            commit_authors: info.commit_authors.clone(),
        })
    }

    fn record_decision(
        &mut self,
        environment: EnvironmentName,
        approver: Person,
        roles: BTreeSet<Role>,
        decision: Decision,
    ) {
        let env = self.approvals.entry(environment).or_default();
        env.request_pending = false;
        let latest = ApproverDecision {
            approver,
            roles,
            decision,
        };
        match env
            .decisions
            .iter_mut()
            .find(|d| d.approver.same_person(&latest.approver))
        {
            Some(existing) => *existing = latest,
            None => env.decisions.push(latest),
        }
    }
}

/// Commands on a release.
#[derive(Debug, Clone, PartialEq)]
pub enum ReleaseCommand {
    /// Create the release.
    Create(CreateRelease),
    /// Record a quality-gate result.
    RecordGate(RecordGateResult),
    /// Bypass a gate.
    BypassGate(BypassGate),
    /// Ask for approval to an environment.
    RequestApproval(RequestApproval),
    /// Approve for an environment.
    Approve(ApproveRelease),
    /// Reject for an environment.
    Reject(RejectRelease),
    /// Open the hotfix lane for an environment.
    ApproveHotfix(ApproveHotfix),
    /// Record an approval attempt that policy refused.
    RecordRefusedApproval(RecordRefusedApproval),
    /// Withdraw the release.
    Withdraw(WithdrawRelease),
}

/// Events of the release aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReleaseEvent {
    /// A release was created from commits.
    ReleaseCreated {
        /// Its id.
        release_id: ReleaseId,
        /// Its service.
        service: ServiceName,
        /// Its version.
        version: Version,
        /// Where the version came from.
        version_source: VersionSource,
        /// The service's previous release, if any.
        previous_version: Option<Version>,
        /// Its commits, with requirement links.
        commits: Vec<ReleaseCommit>,
        /// Requirements it implements (declared and linked from commits).
        requirements: Vec<RequirementId>,
        /// The changelog.
        changelog: Changelog,
        /// The artifact reference (image digest, package URL), if given.
        artifact: Option<String>,
        /// Who created it.
        created_by: Person,
    },
    /// A gate result was recorded and evaluated against the policy's thresholds.
    GateEvaluated {
        /// The gate.
        gate: GateKind,
        /// The evidence as submitted.
        evidence: Evidence,
        /// The status the CI system reported, if any.
        reported_status: Option<GateStatus>,
        /// The thresholds it was evaluated against.
        thresholds: GateThresholds,
        /// The ledger's verdict.
        verdict: GateVerdict,
        /// Who recorded it.
        recorded_by: Person,
    },
    /// A gate was bypassed by an authorised role.
    GateBypassed {
        /// The gate.
        gate: GateKind,
        /// Why.
        reason: String,
        /// Who.
        bypassed_by: Person,
        /// Their roles.
        roles: BTreeSet<Role>,
    },
    /// Approval to deploy to an environment was requested.
    ApprovalRequested {
        /// The environment.
        environment: EnvironmentName,
        /// Who asked.
        requested_by: Person,
    },
    /// Someone approved the release for an environment.
    ApprovalGranted {
        /// The environment.
        environment: EnvironmentName,
        /// Who approved.
        approver: Person,
        /// Their roles.
        roles: BTreeSet<Role>,
        /// Their comment.
        comment: Option<String>,
    },
    /// Someone rejected the release for an environment.
    ApprovalRejected {
        /// The environment.
        environment: EnvironmentName,
        /// Who rejected.
        approver: Person,
        /// Their roles.
        roles: BTreeSet<Role>,
        /// Why.
        reason: String,
    },
    /// An incident commander opened the hotfix lane for an environment.
    HotfixApproved {
        /// The environment.
        environment: EnvironmentName,
        /// The incident commander.
        approver: Person,
        /// Why the hotfix is needed.
        reason: String,
    },
    /// An approval attempt was refused by policy (kept for the exceptions report).
    ApprovalRefused {
        /// The environment.
        environment: EnvironmentName,
        /// Who tried.
        approver: Person,
        /// The refusal's code, e.g. `self_approval`.
        code: String,
    },
    /// The release was withdrawn; it can no longer be approved or deployed.
    ReleaseWithdrawn {
        /// Why.
        reason: String,
        /// Who.
        withdrawn_by: Person,
    },
}

impl ReleaseEvent {
    /// Every event type of this aggregate, as stored.
    pub const TYPES: &'static [&'static str] = &[
        "ReleaseCreated",
        "GateEvaluated",
        "GateBypassed",
        "ApprovalRequested",
        "ApprovalGranted",
        "ApprovalRejected",
        "HotfixApproved",
        "ApprovalRefused",
        "ReleaseWithdrawn",
    ];
}

impl DomainEvent for ReleaseEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ReleaseCreated { .. } => "ReleaseCreated",
            Self::GateEvaluated { .. } => "GateEvaluated",
            Self::GateBypassed { .. } => "GateBypassed",
            Self::ApprovalRequested { .. } => "ApprovalRequested",
            Self::ApprovalGranted { .. } => "ApprovalGranted",
            Self::ApprovalRejected { .. } => "ApprovalRejected",
            Self::HotfixApproved { .. } => "HotfixApproved",
            Self::ApprovalRefused { .. } => "ApprovalRefused",
            Self::ReleaseWithdrawn { .. } => "ReleaseWithdrawn",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Aggregate for Release {
    const TYPE: &'static str = "release";
    type Command = ReleaseCommand;
    type Event = ReleaseEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ReleaseCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let events = match command {
            ReleaseCommand::Create(c) => c.decide(self)?,
            ReleaseCommand::RecordGate(c) => c.decide(self)?,
            ReleaseCommand::BypassGate(c) => c.decide(self)?,
            ReleaseCommand::RequestApproval(c) => c.decide(self)?,
            ReleaseCommand::Approve(c) => c.decide(self)?,
            ReleaseCommand::Reject(c) => c.decide(self)?,
            ReleaseCommand::ApproveHotfix(c) => c.decide(self)?,
            ReleaseCommand::RecordRefusedApproval(c) => c.decide(self)?,
            ReleaseCommand::Withdraw(c) => c.decide(self)?,
        };
        crate::emit(self, sink, events).await;
        Ok(())
    }

    fn apply(&mut self, event: ReleaseEvent) {
        match event {
            ReleaseEvent::ReleaseCreated {
                release_id,
                service,
                version,
                commits,
                created_by,
                ..
            } => {
                let mut commit_authors: Vec<Person> = Vec::new();
                for commit in commits {
                    if !commit_authors.contains(&commit.author) {
                        commit_authors.push(commit.author);
                    }
                }
                self.info = Some(ReleaseInfo {
                    release_id,
                    service,
                    version,
                    created_by,
                    commit_authors,
                });
            }
            ReleaseEvent::GateEvaluated { gate, verdict, .. } => {
                let standing = match verdict.status {
                    GateStatus::Passed => GateStanding::Passed,
                    GateStatus::Failed => GateStanding::Failed,
                };
                self.gates.insert(gate, standing);
            }
            ReleaseEvent::GateBypassed { gate, .. } => {
                self.gates.insert(gate, GateStanding::Bypassed);
            }
            ReleaseEvent::ApprovalRequested { environment, .. } => {
                self.approvals
                    .entry(environment)
                    .or_default()
                    .request_pending = true;
            }
            ReleaseEvent::ApprovalGranted {
                environment,
                approver,
                roles,
                ..
            } => self.record_decision(environment, approver, roles, Decision::Approve),
            ReleaseEvent::ApprovalRejected {
                environment,
                approver,
                roles,
                ..
            } => self.record_decision(environment, approver, roles, Decision::Reject),
            ReleaseEvent::HotfixApproved {
                environment,
                approver,
                ..
            } => {
                self.approvals
                    .entry(environment)
                    .or_default()
                    .hotfix_approved_by = Some(approver);
            }
            ReleaseEvent::ApprovalRefused { .. } => {}
            ReleaseEvent::ReleaseWithdrawn { .. } => self.withdrawn = true,
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Events and commands the release command tests share.

    use super::*;
    use crate::testsupport::{at, person, release_id, service, sha};

    /// `api` 1.1.0, created by `ci-bot` from one commit by `dev@example.com`.
    pub fn created() -> ReleaseEvent {
        ReleaseEvent::ReleaseCreated {
            release_id: release_id(1),
            service: service("api"),
            version: Version::new(1, 1, 0),
            version_source: VersionSource::Computed {
                bump: crate::conventional::Bump::Minor,
            },
            previous_version: Some(Version::new(1, 0, 0)),
            commits: vec![ReleaseCommit {
                sha: sha(1),
                message: "feat: search\n\nRefs: REQ-1".into(),
                author: person("Dev <dev@example.com>"),
                committed_at: at(-60),
                requirements: vec![crate::testsupport::req("REQ-1")],
            }],
            requirements: vec![crate::testsupport::req("REQ-1")],
            changelog: Changelog::default(),
            artifact: None,
            created_by: person("ci-bot"),
        }
    }

    pub fn withdrawn() -> ReleaseEvent {
        ReleaseEvent::ReleaseWithdrawn {
            reason: "superseded".into(),
            withdrawn_by: person("ci-bot"),
        }
    }

    pub fn granted(env: &str, who: &str) -> ReleaseEvent {
        ReleaseEvent::ApprovalGranted {
            environment: crate::testsupport::env(env),
            approver: person(who),
            roles: BTreeSet::from([Role::Approver]),
            comment: None,
        }
    }

    pub fn rejected(env: &str, who: &str) -> ReleaseEvent {
        ReleaseEvent::ApprovalRejected {
            environment: crate::testsupport::env(env),
            approver: person(who),
            roles: BTreeSet::from([Role::Approver]),
            reason: "not yet".into(),
        }
    }

    /// When the tests issue their commands.
    pub fn now() -> DateTime<Utc> {
        at(0)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::testsupport::{env, person};

    fn state(events: Vec<ReleaseEvent>) -> Release {
        let mut release = Release::default();
        for event in events {
            release.apply(event);
        }
        release
    }

    #[test]
    fn facts_reflect_the_latest_decision_of_each_person() {
        let release = state(vec![
            created(),
            granted("production", "ann@example.com"),
            rejected("production", "Ann <ann@example.com>"),
            granted("production", "bob@example.com"),
            granted("staging", "carol@example.com"),
        ]);
        let facts = release.facts_for(&env("production")).expect("created");
        assert_eq!(facts.decisions.len(), 2);
        assert_eq!(facts.decisions[0].decision, Decision::Reject);
        assert_eq!(facts.decisions[1].approver, person("bob@example.com"));
        assert_eq!(facts.commit_authors, [person("Dev <dev@example.com>")]);
    }

    #[test]
    fn facts_of_a_release_that_does_not_exist_are_not_found() {
        assert_eq!(
            Release::default().facts_for(&env("production")),
            Err(DomainError::ReleaseNotFound)
        );
    }
}
