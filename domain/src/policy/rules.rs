//! The rules a policy sets for one environment, their defaults per tier, and their
//! validation.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::gate::{GateKind, GateThresholds};
use crate::health::{default_canary_stages, CanaryStage, RollbackTriggers};
use crate::ids::EnvironmentTier;
use crate::roles::Role;

/// Who must approve before a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRules {
    /// Distinct people who must approve.
    pub min_approvals: u32,
    /// Roles that must each be held by at least one approver.
    #[serde(default)]
    pub required_roles: BTreeSet<Role>,
    /// Whether the release creator and commit authors are barred from approving.
    pub forbid_self_approval: bool,
}

/// The emergency lane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotfixRules {
    /// Whether hotfix deployments may use the lane at all.
    pub allowed: bool,
    /// The role whose single approval opens the lane.
    pub approver_role: Role,
    /// Hours after the deployment started by which the regular approvals must be complete.
    pub retroactive_window_hours: u32,
    /// Whether a hotfix may deploy during a change freeze.
    pub allowed_during_freeze: bool,
}

/// A period in which deployments are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeWindow {
    /// Start (inclusive).
    pub starts_at: DateTime<Utc>,
    /// End (exclusive).
    pub ends_at: DateTime<Utc>,
    /// Why, shown to whoever is refused.
    pub reason: String,
}

/// Everything a policy decides for one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRules {
    /// The environment's tier (DORA counts production-tier environments).
    pub tier: EnvironmentTier,
    /// Gates that must pass (or be bypassed) before a deployment.
    #[serde(default)]
    pub required_gates: BTreeSet<GateKind>,
    /// Limits applied to gate evidence.
    #[serde(default)]
    pub gate_thresholds: GateThresholds,
    /// Roles that may bypass a gate (with a reason).
    #[serde(default)]
    pub gate_bypass_roles: BTreeSet<Role>,
    /// Approval requirements.
    pub approvals: ApprovalRules,
    /// The hotfix lane.
    pub hotfix: HotfixRules,
    /// Canary stages before 100 %, in increasing weight.
    #[serde(default = "default_canary_stages")]
    pub canary_stages: Vec<CanaryStage>,
    /// Automatic rollback triggers.
    #[serde(default)]
    pub rollback_triggers: RollbackTriggers,
    /// Scheduled change freezes.
    #[serde(default)]
    pub freeze_windows: Vec<FreezeWindow>,
}

impl PolicyRules {
    /// The rules in force when an environment has no policy of its own: production
    /// requires `testing` and `security` gates and two approvals with the approver role;
    /// staging requires `testing`; development requires nothing. Every tier uses the
    /// default thresholds, canary stages and rollback triggers, and lets admins bypass a
    /// gate with a reason.
    pub fn defaults_for(tier: EnvironmentTier) -> Self {
        let (gates, min_approvals, required_roles): (&[GateKind], u32, &[Role]) = match tier {
            EnvironmentTier::Production => (
                &[GateKind::Testing, GateKind::Security],
                2,
                &[Role::Approver],
            ),
            EnvironmentTier::Staging => (&[GateKind::Testing], 0, &[]),
            EnvironmentTier::Development => (&[], 0, &[]),
        };
        Self {
            tier,
            required_gates: gates.iter().cloned().collect(),
            gate_thresholds: GateThresholds::default(),
            gate_bypass_roles: BTreeSet::from([Role::Admin]),
            approvals: ApprovalRules {
                min_approvals,
                required_roles: required_roles.iter().copied().collect(),
                forbid_self_approval: true,
            },
            hotfix: HotfixRules {
                allowed: true,
                approver_role: Role::IncidentCommander,
                retroactive_window_hours: 24,
                allowed_during_freeze: true,
            },
            canary_stages: default_canary_stages(),
            rollback_triggers: RollbackTriggers::default(),
            freeze_windows: Vec::new(),
        }
    }

    /// Checks that the rules make sense: finite limits in range, canary weights strictly
    /// increasing below 100, freeze windows that end after they start.
    pub fn validate(&self) -> Result<(), DomainError> {
        let t = &self.gate_thresholds;
        if !t.min_coverage_pct.is_finite() || !(0.0..=100.0).contains(&t.min_coverage_pct) {
            return Err(DomainError::invalid(
                "gate_thresholds.min_coverage_pct",
                "must be from 0 to 100",
            ));
        }
        if !t.max_p95_regression_pct.is_finite() {
            return Err(DomainError::invalid(
                "gate_thresholds.max_p95_regression_pct",
                "must be a finite percentage",
            ));
        }
        if self.approvals.min_approvals > 20 {
            return Err(DomainError::invalid(
                "approvals.min_approvals",
                "must be at most 20",
            ));
        }
        if !(1..=720).contains(&self.hotfix.retroactive_window_hours) {
            return Err(DomainError::invalid(
                "hotfix.retroactive_window_hours",
                "must be from 1 to 720 hours",
            ));
        }
        let mut previous_weight = 0u8;
        for stage in &self.canary_stages {
            if stage.weight_percent <= previous_weight || stage.weight_percent >= 100 {
                return Err(DomainError::invalid(
                    "canary_stages",
                    "weights must increase strictly and stay below 100 (100 % is the final step)",
                ));
            }
            previous_weight = stage.weight_percent;
            let limits_ok = stage.max_error_rate_pct.is_finite()
                && stage.max_error_rate_pct > 0.0
                && stage.max_error_rate_pct <= 100.0
                && stage.max_p95_ms.is_finite()
                && stage.max_p95_ms > 0.0;
            if !limits_ok {
                return Err(DomainError::invalid(
                    "canary_stages",
                    "limits must be positive: error rate up to 100 %, p95 in milliseconds",
                ));
            }
        }
        let r = &self.rollback_triggers;
        let percents_ok = [r.error_rate_pct, r.memory_pct, r.db_pool_pct]
            .iter()
            .all(|p| p.is_finite() && (0.0..=100.0).contains(p));
        if !percents_ok || !r.p95_ms.is_finite() || r.p95_ms <= 0.0 {
            return Err(DomainError::invalid(
                "rollback_triggers",
                "percentages must be from 0 to 100 and p95_ms positive",
            ));
        }
        for window in &self.freeze_windows {
            if window.ends_at <= window.starts_at {
                return Err(DomainError::invalid(
                    "freeze_windows",
                    "each window must end after it starts",
                ));
            }
            if window.reason.trim().is_empty() {
                return Err(DomainError::invalid(
                    "freeze_windows",
                    "each window needs a reason",
                ));
            }
        }
        Ok(())
    }

    /// The freeze window in force at `at`, if any.
    pub fn freeze_at(&self, at: DateTime<Utc>) -> Option<&FreezeWindow> {
        self.freeze_windows
            .iter()
            .find(|w| w.starts_at <= at && at < w.ends_at)
    }
}

/// A policy as a command carries it: the rules and the version they were defined at
/// (version 0 means the built-in defaults for the tier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedPolicy {
    /// The policy's version (0 for built-in defaults).
    pub version: u64,
    /// The rules.
    pub rules: PolicyRules,
}

impl AppliedPolicy {
    /// The built-in defaults for a tier, at version 0.
    pub fn defaults_for(tier: EnvironmentTier) -> Self {
        Self {
            version: 0,
            rules: PolicyRules::defaults_for(tier),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn production_defaults_follow_the_brief() {
        let rules = PolicyRules::defaults_for(EnvironmentTier::Production);
        assert_eq!(
            rules.required_gates,
            BTreeSet::from([GateKind::Testing, GateKind::Security])
        );
        assert_eq!(rules.approvals.min_approvals, 2);
        assert!(rules.approvals.forbid_self_approval);
        assert_eq!(rules.canary_stages.len(), 3);
        assert!(rules.validate().is_ok());
        let staging = PolicyRules::defaults_for(EnvironmentTier::Staging);
        assert_eq!(staging.required_gates, BTreeSet::from([GateKind::Testing]));
        assert!(PolicyRules::defaults_for(EnvironmentTier::Development)
            .required_gates
            .is_empty());
    }

    #[test]
    fn canary_weights_must_increase_below_100() {
        let mut rules = PolicyRules::defaults_for(EnvironmentTier::Production);
        rules.canary_stages.swap(0, 1);
        assert!(matches!(
            rules.validate(),
            Err(DomainError::InvalidValue {
                field: "canary_stages",
                ..
            })
        ));
        let mut rules = PolicyRules::defaults_for(EnvironmentTier::Production);
        rules.canary_stages[2].weight_percent = 100;
        assert!(rules.validate().is_err());
    }

    #[test]
    fn freeze_windows_must_end_after_they_start_and_are_half_open() {
        let start = Utc
            .with_ymd_and_hms(2026, 12, 20, 0, 0, 0)
            .single()
            .expect("valid");
        let end = Utc
            .with_ymd_and_hms(2027, 1, 2, 0, 0, 0)
            .single()
            .expect("valid");
        let mut rules = PolicyRules::defaults_for(EnvironmentTier::Production);
        rules.freeze_windows.push(FreezeWindow {
            starts_at: end,
            ends_at: start,
            reason: "holidays".into(),
        });
        assert!(rules.validate().is_err());
        rules.freeze_windows[0] = FreezeWindow {
            starts_at: start,
            ends_at: end,
            reason: "holidays".into(),
        };
        assert!(rules.validate().is_ok());
        assert!(rules.freeze_at(start).is_some());
        assert!(rules.freeze_at(end).is_none());
    }

    #[test]
    fn a_policy_document_with_unknown_fields_is_refused() {
        let mut json = serde_json::to_value(PolicyRules::defaults_for(EnvironmentTier::Staging))
            .expect("serialises");
        json["min_aprovals"] = serde_json::json!(3);
        assert!(serde_json::from_value::<PolicyRules>(json).is_err());
    }
}
