//! The event contract: every stored event type equals its serde tag, every aggregate's
//! `TYPES` list names each variant once, and each event's JSON matches its golden fixture
//! in `domain/tests/golden/<aggregate>/<EventType>.v<version>.json`.
//!
//! A failing golden test means an event's stored shape changed. That is never done
//! casually: add a new event version and an upcaster instead. To write fixtures for a
//! *new* event, run `UPDATE_GOLDEN=1 cargo test -p release-pilot-domain event_contract`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::Duration;
use cqrs_es::{Aggregate, DomainEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clearance::Clearance;
use crate::conventional::{ChangeKind, Changelog, ChangelogEntry, ChangelogSection};
use crate::environment::fixtures as env_fx;
use crate::environment::{Environment, EnvironmentEvent, Strategy};
use crate::gate::{
    Evidence, GateKind, GateStatus, GateThresholds, GateVerdict, TestCase, TestStatus,
    Vulnerabilities,
};
use crate::health::{HealthSample, Metric, TriggerEvidence, TriggerKind};
use crate::ids::{EnvironmentTier, FlagName};
use crate::incident::{Incident, IncidentEvent};
use crate::policy::{Policy, PolicyEvent, PolicyRules};
use crate::release::fixtures as rel_fx;
use crate::release::{Release, ReleaseEvent};
use crate::requirement::{Requirement, RequirementEvent};
use crate::roles::Role;
use crate::testsupport::{at, deployment_id, env, person, req, service, sha};

fn release_examples() -> Vec<ReleaseEvent> {
    let mut created = rel_fx::created();
    if let ReleaseEvent::ReleaseCreated { changelog, .. } = &mut created {
        *changelog = Changelog {
            sections: vec![ChangelogSection {
                kind: ChangeKind::Feature,
                entries: vec![ChangelogEntry {
                    sha: sha(1),
                    scope: None,
                    description: "search".into(),
                }],
            }],
        };
    }
    let evidence = Evidence {
        tests_passed: Some(412),
        tests_failed: Some(0),
        coverage_pct: Some(91.5),
        vulnerabilities: Some(Vulnerabilities {
            critical: 0,
            high: 0,
            medium: 2,
            low: 5,
        }),
        p95_regression_pct: Some(-1.25),
        test_cases: vec![TestCase {
            name: "login::accepts_valid_password".into(),
            status: TestStatus::Passed,
            requirements: vec![req("REQ-1")],
        }],
        url: Some("https://ci.example.com/runs/88".into()),
    };
    vec![
        created,
        ReleaseEvent::GateEvaluated {
            gate: GateKind::Testing,
            evidence,
            reported_status: Some(GateStatus::Passed),
            thresholds: GateThresholds::default(),
            verdict: GateVerdict {
                status: GateStatus::Passed,
                failures: vec![],
            },
            recorded_by: person("ci-bot"),
        },
        ReleaseEvent::GateBypassed {
            gate: GateKind::Security,
            reason: "scanner outage; reviewed by hand".into(),
            bypassed_by: person("root@example.com"),
            roles: BTreeSet::from([Role::Admin]),
        },
        ReleaseEvent::ApprovalRequested {
            environment: env("production"),
            requested_by: person("ci-bot"),
        },
        rel_fx::granted("production", "ann@example.com"),
        rel_fx::rejected("production", "bob@example.com"),
        ReleaseEvent::HotfixApproved {
            environment: env("production"),
            approver: person("ic@example.com"),
            reason: "INC-7".into(),
        },
        ReleaseEvent::ApprovalRefused {
            environment: env("production"),
            approver: person("dev@example.com"),
            code: "self_approval".into(),
        },
        rel_fx::withdrawn(),
    ]
}

fn environment_examples() -> Vec<EnvironmentEvent> {
    let mut started = env_fx::started(2, Strategy::Canary, 10);
    if let EnvironmentEvent::DeploymentStarted {
        previous,
        clearance,
        ..
    } = &mut started
    {
        *previous = Some(env_fx::running(1));
        *clearance = Clearance {
            policy_version: 4,
            approved_by: vec![person("ann@example.com"), person("bob@example.com")],
            bypassed_gates: vec![GateKind::Security],
            hotfix_approved_by: None,
            retroactive_approval_due: None,
        };
    }
    let sample = HealthSample {
        at: at(11),
        error_rate_pct: Some(0.2),
        p95_ms: Some(310.0),
        health_ok: Some(true),
        memory_pct: Some(61.0),
        db_pool_pct: Some(35.5),
    };
    vec![
        started,
        EnvironmentEvent::CanaryAdvanced {
            deployment_id: deployment_id(2),
            from_weight_percent: 5,
            to_weight_percent: 25,
            at: at(20),
        },
        EnvironmentEvent::HealthSampled {
            deployment_id: deployment_id(2),
            samples: vec![sample],
        },
        EnvironmentEvent::TrafficSwitched {
            deployment_id: deployment_id(2),
            at: at(21),
        },
        env_fx::completed(2, 120),
        EnvironmentEvent::DeploymentFailed {
            deployment_id: deployment_id(2),
            reason: "image pull failed".into(),
            finished_at: at(12),
        },
        EnvironmentEvent::RollbackTriggered {
            deployment_id: deployment_id(2),
            evidence: TriggerEvidence {
                trigger: TriggerKind::ErrorRate,
                metric: Metric::ErrorRatePct,
                limit: 2.0,
                peak: 4.5,
                breach_started_at: at(12),
                fired_at: at(12) + Duration::seconds(120),
                samples: 13,
            },
            target: Some(env_fx::running(1)),
        },
        EnvironmentEvent::RollbackStarted {
            deployment_id: deployment_id(2),
            reason: "errors up".into(),
            target: env_fx::running(1),
            started_at: at(30),
            started_by: person("sre@example.com"),
        },
        EnvironmentEvent::RollbackCompleted {
            deployment_id: deployment_id(2),
            restored: Some(env_fx::running(1)),
            finished_at: at(33),
        },
        EnvironmentEvent::FeatureFlagToggled {
            service: service("api"),
            environment: env("production"),
            flag: FlagName::parse("new-checkout").expect("valid"),
            enabled: true,
            toggled_by: person("pm@example.com"),
        },
        EnvironmentEvent::ChangeFreezeStarted {
            service: service("api"),
            environment: env("production"),
            reason: "quarter close".into(),
            started_by: person("root@example.com"),
        },
        EnvironmentEvent::ChangeFreezeEnded {
            ended_by: person("root@example.com"),
        },
    ]
}

fn incident_examples() -> Vec<IncidentEvent> {
    vec![
        crate::incident::fixtures::opened(),
        IncidentEvent::IncidentResolved {
            resolved_at: at(45),
            resolved_by: person("ic@example.com"),
            resolution: Some("rolled back".into()),
        },
    ]
}

fn policy_examples() -> Vec<PolicyEvent> {
    vec![PolicyEvent::PolicyDefined {
        environment: env("production"),
        version: 1,
        rules: PolicyRules::defaults_for(EnvironmentTier::Production),
        defined_by: person("root@example.com"),
    }]
}

fn requirement_examples() -> Vec<RequirementEvent> {
    vec![
        RequirementEvent::RequirementRegistered {
            id: req("REQ-1"),
            title: "Users can log in".into(),
            category: "functional".into(),
            registered_by: person("pm@example.com"),
        },
        RequirementEvent::RequirementUpdated {
            title: "Users can log in with SSO".into(),
            category: "security".into(),
            updated_by: person("pm@example.com"),
        },
    ]
}

fn golden_dir<A: Aggregate>() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(A::TYPE)
}

/// Checks one aggregate's events against the contract.
#[allow(clippy::disallowed_methods)] // Tests read and write their fixture files.
fn check_contract<A>(examples: Vec<A::Event>, types: &[&str])
where
    A: Aggregate,
    A::Event: Serialize + DeserializeOwned,
{
    let listed: Vec<String> = examples.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        listed,
        types,
        "{}: examples must cover TYPES, in order",
        A::TYPE
    );
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    for event in examples {
        let json = serde_json::to_value(&event).expect("events serialise");
        let object = json.as_object().expect("externally tagged enum");
        let tags: Vec<&String> = object.keys().collect();
        assert_eq!(
            tags,
            [&event.event_type()],
            "serde tag must equal event_type()"
        );
        let back: A::Event = serde_json::from_value(json.clone()).expect("events deserialise");
        assert_eq!(back, event, "round trip");
        let path = golden_dir::<A>().join(format!(
            "{}.v{}.json",
            event.event_type(),
            event.event_version()
        ));
        if update && !path.exists() {
            std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
            let pretty = serde_json::to_string_pretty(&json).expect("pretty");
            std::fs::write(&path, pretty + "\n").expect("write fixture");
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "missing golden fixture {} ({e}); see the module docs",
                path.display()
            )
        });
        let golden: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
        assert_eq!(json, golden, "{} changed shape", path.display());
        let from_golden: A::Event = serde_json::from_value(golden).expect("fixture deserialises");
        assert_eq!(from_golden, event);
    }
}

#[test]
fn release_events_keep_their_contract() {
    check_contract::<Release>(release_examples(), ReleaseEvent::TYPES);
}

#[test]
fn environment_events_keep_their_contract() {
    check_contract::<Environment>(environment_examples(), EnvironmentEvent::TYPES);
}

#[test]
fn incident_events_keep_their_contract() {
    check_contract::<Incident>(incident_examples(), IncidentEvent::TYPES);
}

#[test]
fn policy_events_keep_their_contract() {
    check_contract::<Policy>(policy_examples(), PolicyEvent::TYPES);
}

#[test]
fn requirement_events_keep_their_contract() {
    check_contract::<Requirement>(requirement_examples(), RequirementEvent::TYPES);
}

#[test]
fn aggregate_types_are_distinct() {
    let types = [
        Release::TYPE,
        Environment::TYPE,
        Incident::TYPE,
        Policy::TYPE,
        Requirement::TYPE,
    ];
    let distinct: BTreeSet<_> = types.iter().collect();
    assert_eq!(distinct.len(), types.len());
    let all_events: BTreeMap<&str, usize> = [
        ReleaseEvent::TYPES,
        EnvironmentEvent::TYPES,
        IncidentEvent::TYPES,
        PolicyEvent::TYPES,
        RequirementEvent::TYPES,
    ]
    .iter()
    .flat_map(|types| types.iter())
    .fold(BTreeMap::new(), |mut counts, t| {
        *counts.entry(*t).or_default() += 1;
        counts
    });
    assert!(
        all_events.values().all(|n| *n == 1),
        "event type names are unique: {all_events:?}"
    );
}

/// `docs/events.md` lists every event type with its version, under its aggregate.
#[test]
#[allow(clippy::disallowed_methods)] // Reads the catalogue it checks.
fn the_event_catalogue_lists_every_event_with_its_version() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/events.md");
    let catalogue = std::fs::read_to_string(&path).expect("docs/events.md exists");
    let sections: [(&str, &[&str]); 5] = [
        (Release::TYPE, ReleaseEvent::TYPES),
        (Environment::TYPE, EnvironmentEvent::TYPES),
        (Incident::TYPE, IncidentEvent::TYPES),
        (Policy::TYPE, PolicyEvent::TYPES),
        (Requirement::TYPE, RequirementEvent::TYPES),
    ];
    for (aggregate, types) in sections {
        assert!(
            catalogue.contains(&format!("(`{aggregate}`")),
            "{aggregate} section"
        );
        for event_type in types {
            let heading = format!("### `{event_type}` (v1)");
            assert!(
                catalogue.contains(&heading),
                "docs/events.md lacks {heading}"
            );
        }
    }
}
