//! The **Environment** aggregate `(service, environment)`: deployments and their
//! strategies (standard, canary, blue-green, hotfix), canary stages, the blue-green
//! traffic switch, health samples and automatic rollback triggers, completion, failure,
//! rollbacks, feature-flag toggles and change freezes.
//!
//! Its invariants: at most one deployment in progress (a rollback in progress counts);
//! the rollback target is the last successful version before the one rolled back.

mod advance_canary;
mod complete_deployment;
mod complete_rollback;
mod fail_deployment;
mod freeze;
mod record_health;
mod start_deployment;
mod start_rollback;
mod switch_traffic;
mod toggle_flag;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use semver::Version;
use serde::{Deserialize, Serialize};

pub use advance_canary::AdvanceCanary;
pub use complete_deployment::CompleteDeployment;
pub use complete_rollback::CompleteRollback;
pub use fail_deployment::FailDeployment;
pub use freeze::{EndFreeze, StartFreeze};
pub use record_health::RecordHealth;
pub use start_deployment::StartDeployment;
pub use start_rollback::StartRollback;
pub use switch_traffic::SwitchTraffic;
pub use toggle_flag::ToggleFeatureFlag;

use crate::clearance::Clearance;
use crate::error::DomainError;
use crate::health::{CanaryStage, HealthSample, RollbackTriggers, TriggerEvidence};
use crate::ids::{
    DeploymentId, EnvironmentName, FlagName, IncidentId, Person, ReleaseId, ServiceName,
};

/// How a deployment rolls out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// All at once.
    Standard,
    /// In weighted stages with health criteria.
    Canary,
    /// Next to the old version, then a traffic switch.
    BlueGreen,
    /// The emergency lane: one incident-commander approval, regular approvals later.
    Hotfix,
}

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Rolling out.
    InProgress,
    /// Finished successfully; it is (or was) the live version.
    Completed,
    /// Failed.
    Failed,
    /// Being rolled back.
    RollingBack,
    /// Rolled back.
    RolledBack,
}

impl DeploymentStatus {
    /// The status's wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::RollingBack => "rolling_back",
            Self::RolledBack => "rolled_back",
        }
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version running in the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningVersion {
    /// The deployment that made it live.
    pub deployment_id: DeploymentId,
    /// Its release.
    pub release_id: ReleaseId,
    /// Its version.
    pub version: Version,
}

/// The deployment currently rolling out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveDeployment {
    /// Its id.
    pub deployment_id: DeploymentId,
    /// What it deploys.
    pub release_id: ReleaseId,
    /// Its version.
    pub version: Version,
    /// Its strategy.
    pub strategy: Strategy,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The canary stages in force when it started (empty unless canary).
    pub canary_stages: Vec<CanaryStage>,
    /// The index of the current canary stage (`canary_stages.len()` once at 100 %).
    pub canary_stage: usize,
    /// When the current canary stage started.
    pub stage_started_at: DateTime<Utc>,
    /// The rollback triggers in force when it started.
    pub rollback_triggers: RollbackTriggers,
    /// Health samples recorded so far.
    pub samples: Vec<HealthSample>,
    /// Whether blue-green traffic was switched.
    pub traffic_switched: bool,
}

impl ActiveDeployment {
    /// The current canary weight (100 once past the last stage).
    pub fn canary_weight(&self) -> u8 {
        self.canary_stages
            .get(self.canary_stage)
            .map_or(100, |s| s.weight_percent)
    }
}

/// A rollback under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackInProgress {
    /// The deployment being rolled back.
    pub deployment_id: DeploymentId,
    /// What will be live afterwards (none when nothing ran before).
    pub target: Option<RunningVersion>,
    /// Whether the deployment rolled back was the live one.
    pub was_live: bool,
}

/// The state of one service in one environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The service (set by the first event).
    pub service: Option<ServiceName>,
    /// The environment (set by the first event).
    pub environment: Option<EnvironmentName>,
    /// The live version.
    pub live: Option<RunningVersion>,
    /// Versions that were live before, oldest first: the rollback targets.
    pub previous_live: Vec<RunningVersion>,
    /// The deployment rolling out.
    pub active: Option<ActiveDeployment>,
    /// A rollback under way.
    pub rollback: Option<RollbackInProgress>,
    /// Every deployment's status.
    pub deployments: BTreeMap<DeploymentId, DeploymentStatus>,
    /// The reason of an ad-hoc change freeze in force.
    pub freeze: Option<String>,
    /// Feature flags.
    pub flags: BTreeMap<FlagName, bool>,
}

impl Environment {
    /// Checks that a command addressed to `(service, environment)` belongs here.
    fn check_key(
        &self,
        service: &ServiceName,
        environment: &EnvironmentName,
    ) -> Result<(), DomainError> {
        let mismatch = self.service.as_ref().is_some_and(|s| s != service)
            || self.environment.as_ref().is_some_and(|e| e != environment);
        if mismatch {
            return Err(DomainError::invalid(
                "environment",
                "this stream holds another service or environment",
            ));
        }
        Ok(())
    }

    /// The deployment rolling out, when it is `id`; the right refusal otherwise.
    fn in_progress(&self, id: DeploymentId) -> Result<&ActiveDeployment, DomainError> {
        let status = self
            .deployments
            .get(&id)
            .ok_or(DomainError::DeploymentNotFound)?;
        match &self.active {
            Some(active)
                if active.deployment_id == id && *status == DeploymentStatus::InProgress =>
            {
                Ok(active)
            }
            _ => Err(DomainError::DeploymentNotInProgress(status.as_str())),
        }
    }

    /// The target a rollback of the active deployment would restore.
    fn rollback_target_of_active(&self) -> Option<RunningVersion> {
        self.live.clone()
    }
}

/// Commands on an environment.
// A command is built once per request and moved once; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum EnvironmentCommand {
    /// Start a deployment.
    StartDeployment(StartDeployment),
    /// Advance a canary.
    AdvanceCanary(AdvanceCanary),
    /// Record health samples.
    RecordHealth(RecordHealth),
    /// Switch blue-green traffic.
    SwitchTraffic(SwitchTraffic),
    /// Complete a deployment.
    CompleteDeployment(CompleteDeployment),
    /// Fail a deployment.
    FailDeployment(FailDeployment),
    /// Start a rollback.
    StartRollback(StartRollback),
    /// Complete a rollback.
    CompleteRollback(CompleteRollback),
    /// Toggle a feature flag.
    ToggleFeatureFlag(ToggleFeatureFlag),
    /// Start a change freeze.
    StartFreeze(StartFreeze),
    /// End a change freeze.
    EndFreeze(EndFreeze),
}

/// Events of the environment aggregate.
// Events are a serialised contract; their in-memory size is not worth a boxed field.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EnvironmentEvent {
    /// A deployment started, cleared against the policy version it records.
    DeploymentStarted {
        /// Its id.
        deployment_id: DeploymentId,
        /// The service.
        service: ServiceName,
        /// The environment.
        environment: EnvironmentName,
        /// The release deployed.
        release_id: ReleaseId,
        /// Its version.
        version: Version,
        /// The strategy.
        strategy: Strategy,
        /// When it started (domain time).
        started_at: DateTime<Utc>,
        /// Who started it.
        started_by: Person,
        /// How it was cleared (policy version, approvals, bypasses, hotfix lane).
        clearance: Clearance,
        /// The incident this deployment remediates (counts toward rework).
        remediates_incident: Option<IncidentId>,
        /// Canary stages in force (empty unless canary).
        canary_stages: Vec<CanaryStage>,
        /// Rollback triggers in force.
        rollback_triggers: RollbackTriggers,
        /// What was live when it started.
        previous: Option<RunningVersion>,
    },
    /// A canary moved to its next weight.
    CanaryAdvanced {
        /// The deployment.
        deployment_id: DeploymentId,
        /// From this weight.
        from_weight_percent: u8,
        /// To this weight.
        to_weight_percent: u8,
        /// When.
        at: DateTime<Utc>,
    },
    /// Health samples were recorded.
    HealthSampled {
        /// The deployment.
        deployment_id: DeploymentId,
        /// The samples.
        samples: Vec<HealthSample>,
    },
    /// Blue-green traffic moved to the new version.
    TrafficSwitched {
        /// The deployment.
        deployment_id: DeploymentId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The deployment finished successfully; its version is live.
    DeploymentCompleted {
        /// The deployment.
        deployment_id: DeploymentId,
        /// Its release.
        release_id: ReleaseId,
        /// Its version.
        version: Version,
        /// When (domain time).
        finished_at: DateTime<Utc>,
    },
    /// The deployment failed.
    DeploymentFailed {
        /// The deployment.
        deployment_id: DeploymentId,
        /// Why.
        reason: String,
        /// When (domain time).
        finished_at: DateTime<Utc>,
    },
    /// A rollback trigger fired on health samples; the rollback has begun.
    RollbackTriggered {
        /// The deployment.
        deployment_id: DeploymentId,
        /// What fired, with its evidence.
        evidence: TriggerEvidence,
        /// What will be live afterwards.
        target: Option<RunningVersion>,
    },
    /// Someone started a rollback.
    RollbackStarted {
        /// The deployment.
        deployment_id: DeploymentId,
        /// Why.
        reason: String,
        /// What will be live afterwards.
        target: RunningVersion,
        /// When (domain time).
        started_at: DateTime<Utc>,
        /// Who.
        started_by: Person,
    },
    /// A rollback finished; the target is live again.
    RollbackCompleted {
        /// The deployment rolled back.
        deployment_id: DeploymentId,
        /// What is live now.
        restored: Option<RunningVersion>,
        /// When (domain time).
        finished_at: DateTime<Utc>,
    },
    /// A feature flag was switched.
    FeatureFlagToggled {
        /// The service.
        service: ServiceName,
        /// The environment.
        environment: EnvironmentName,
        /// The flag.
        flag: FlagName,
        /// Its new state.
        enabled: bool,
        /// Who.
        toggled_by: Person,
    },
    /// An ad-hoc change freeze began.
    ChangeFreezeStarted {
        /// The service.
        service: ServiceName,
        /// The environment.
        environment: EnvironmentName,
        /// Why.
        reason: String,
        /// Who.
        started_by: Person,
    },
    /// The ad-hoc change freeze ended.
    ChangeFreezeEnded {
        /// Who.
        ended_by: Person,
    },
}

impl EnvironmentEvent {
    /// Every event type of this aggregate, as stored.
    pub const TYPES: &'static [&'static str] = &[
        "DeploymentStarted",
        "CanaryAdvanced",
        "HealthSampled",
        "TrafficSwitched",
        "DeploymentCompleted",
        "DeploymentFailed",
        "RollbackTriggered",
        "RollbackStarted",
        "RollbackCompleted",
        "FeatureFlagToggled",
        "ChangeFreezeStarted",
        "ChangeFreezeEnded",
    ];
}

impl DomainEvent for EnvironmentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::DeploymentStarted { .. } => "DeploymentStarted",
            Self::CanaryAdvanced { .. } => "CanaryAdvanced",
            Self::HealthSampled { .. } => "HealthSampled",
            Self::TrafficSwitched { .. } => "TrafficSwitched",
            Self::DeploymentCompleted { .. } => "DeploymentCompleted",
            Self::DeploymentFailed { .. } => "DeploymentFailed",
            Self::RollbackTriggered { .. } => "RollbackTriggered",
            Self::RollbackStarted { .. } => "RollbackStarted",
            Self::RollbackCompleted { .. } => "RollbackCompleted",
            Self::FeatureFlagToggled { .. } => "FeatureFlagToggled",
            Self::ChangeFreezeStarted { .. } => "ChangeFreezeStarted",
            Self::ChangeFreezeEnded { .. } => "ChangeFreezeEnded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Aggregate for Environment {
    const TYPE: &'static str = "environment";
    type Command = EnvironmentCommand;
    type Event = EnvironmentEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: EnvironmentCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        use EnvironmentCommand as C;
        let events = match command {
            C::StartDeployment(c) => c.decide(self)?,
            C::AdvanceCanary(c) => c.decide(self)?,
            C::RecordHealth(c) => c.decide(self)?,
            C::SwitchTraffic(c) => c.decide(self)?,
            C::CompleteDeployment(c) => c.decide(self)?,
            C::FailDeployment(c) => c.decide(self)?,
            C::StartRollback(c) => c.decide(self)?,
            C::CompleteRollback(c) => c.decide(self)?,
            C::ToggleFeatureFlag(c) => c.decide(self)?,
            C::StartFreeze(c) => c.decide(self)?,
            C::EndFreeze(c) => c.decide(self)?,
        };
        crate::emit(self, sink, events).await;
        Ok(())
    }

    fn apply(&mut self, event: EnvironmentEvent) {
        use EnvironmentEvent as E;
        match event {
            E::DeploymentStarted {
                deployment_id,
                service,
                environment,
                release_id,
                version,
                strategy,
                started_at,
                canary_stages,
                rollback_triggers,
                ..
            } => {
                self.service = Some(service);
                self.environment = Some(environment);
                self.deployments
                    .insert(deployment_id, DeploymentStatus::InProgress);
                self.active = Some(ActiveDeployment {
                    deployment_id,
                    release_id,
                    version,
                    strategy,
                    started_at,
                    canary_stages,
                    canary_stage: 0,
                    stage_started_at: started_at,
                    rollback_triggers,
                    samples: Vec::new(),
                    traffic_switched: false,
                });
            }
            E::CanaryAdvanced { at, .. } => {
                if let Some(active) = &mut self.active {
                    active.canary_stage += 1;
                    active.stage_started_at = at;
                }
            }
            E::HealthSampled { samples, .. } => {
                if let Some(active) = &mut self.active {
                    active.samples.extend(samples);
                }
            }
            E::TrafficSwitched { .. } => {
                if let Some(active) = &mut self.active {
                    active.traffic_switched = true;
                }
            }
            E::DeploymentCompleted {
                deployment_id,
                release_id,
                version,
                ..
            } => {
                self.deployments
                    .insert(deployment_id, DeploymentStatus::Completed);
                self.active = None;
                if let Some(previous) = self.live.take() {
                    self.previous_live.push(previous);
                }
                self.live = Some(RunningVersion {
                    deployment_id,
                    release_id,
                    version,
                });
            }
            E::DeploymentFailed { deployment_id, .. } => {
                self.deployments
                    .insert(deployment_id, DeploymentStatus::Failed);
                self.active = None;
            }
            E::RollbackTriggered {
                deployment_id,
                target,
                ..
            } => self.begin_rollback(deployment_id, target),
            E::RollbackStarted {
                deployment_id,
                target,
                ..
            } => self.begin_rollback(deployment_id, Some(target)),
            E::RollbackCompleted { deployment_id, .. } => {
                self.deployments
                    .insert(deployment_id, DeploymentStatus::RolledBack);
                if let Some(rollback) = self.rollback.take() {
                    if rollback.was_live {
                        self.live = self.previous_live.pop();
                    }
                }
            }
            E::FeatureFlagToggled {
                service,
                environment,
                flag,
                enabled,
                ..
            } => {
                self.service = Some(service);
                self.environment = Some(environment);
                self.flags.insert(flag, enabled);
            }
            E::ChangeFreezeStarted {
                service,
                environment,
                reason,
                ..
            } => {
                self.service = Some(service);
                self.environment = Some(environment);
                self.freeze = Some(reason);
            }
            E::ChangeFreezeEnded { .. } => self.freeze = None,
        }
    }
}

impl Environment {
    fn begin_rollback(&mut self, deployment_id: DeploymentId, target: Option<RunningVersion>) {
        let was_live = self
            .live
            .as_ref()
            .is_some_and(|live| live.deployment_id == deployment_id);
        self.deployments
            .insert(deployment_id, DeploymentStatus::RollingBack);
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.deployment_id == deployment_id)
        {
            self.active = None;
        }
        self.rollback = Some(RollbackInProgress {
            deployment_id,
            target,
            was_live,
        });
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Events the environment command tests share.

    use super::*;
    use crate::health::default_canary_stages;
    use crate::testsupport::{at, deployment_id, env, person, release_id, service};

    /// A deployment of release `n` (version 1.n.0) with `strategy`, started at minute `minute`.
    pub fn started(n: u128, strategy: Strategy, minute: i64) -> EnvironmentEvent {
        EnvironmentEvent::DeploymentStarted {
            deployment_id: deployment_id(n),
            service: service("api"),
            environment: env("production"),
            release_id: release_id(n),
            version: version(n),
            strategy,
            started_at: at(minute),
            started_by: person("ci-bot"),
            clearance: Clearance {
                policy_version: 1,
                approved_by: vec![person("ann@example.com"), person("bob@example.com")],
                bypassed_gates: vec![],
                hotfix_approved_by: None,
                retroactive_approval_due: None,
            },
            remediates_incident: None,
            canary_stages: if strategy == Strategy::Canary {
                default_canary_stages()
            } else {
                vec![]
            },
            rollback_triggers: RollbackTriggers::default(),
            previous: None,
        }
    }

    pub fn version(n: u128) -> Version {
        Version::new(1, u64::try_from(n).expect("small"), 0)
    }

    pub fn completed(n: u128, minute: i64) -> EnvironmentEvent {
        EnvironmentEvent::DeploymentCompleted {
            deployment_id: deployment_id(n),
            release_id: release_id(n),
            version: version(n),
            finished_at: at(minute),
        }
    }

    pub fn running(n: u128) -> RunningVersion {
        RunningVersion {
            deployment_id: deployment_id(n),
            release_id: release_id(n),
            version: version(n),
        }
    }

    /// Release 1 live (standard deployment at minute 0, completed at minute 5).
    pub fn one_live() -> Vec<EnvironmentEvent> {
        vec![started(1, Strategy::Standard, 0), completed(1, 5)]
    }

    pub fn state(events: Vec<EnvironmentEvent>) -> Environment {
        let mut environment = Environment::default();
        for event in events {
            environment.apply(event);
        }
        environment
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::testsupport::{at, deployment_id, person};

    #[test]
    fn completing_a_deployment_makes_it_live_and_keeps_the_previous_as_target() {
        let mut events = one_live();
        events.extend([started(2, Strategy::Standard, 10), completed(2, 15)]);
        let env = state(events);
        assert_eq!(env.live, Some(running(2)));
        assert_eq!(env.previous_live, [running(1)]);
        assert_eq!(env.active, None);
    }

    #[test]
    fn rolling_back_the_live_deployment_restores_the_one_before() {
        let mut events = one_live();
        events.extend([
            started(2, Strategy::Standard, 10),
            completed(2, 15),
            EnvironmentEvent::RollbackStarted {
                deployment_id: deployment_id(2),
                reason: "errors".into(),
                target: running(1),
                started_at: at(20),
                started_by: person("sre@example.com"),
            },
            EnvironmentEvent::RollbackCompleted {
                deployment_id: deployment_id(2),
                restored: Some(running(1)),
                finished_at: at(22),
            },
        ]);
        let env = state(events);
        assert_eq!(env.live, Some(running(1)));
        assert!(env.previous_live.is_empty());
        assert_eq!(
            env.deployments[&deployment_id(2)],
            DeploymentStatus::RolledBack
        );
        assert_eq!(env.rollback, None);
    }
}
