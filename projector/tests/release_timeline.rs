//! The release view and timeline from real Release commands: gate standings and approvals
//! as the ledger decided them, every event in order, and a rebuild that matches.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use release_pilot_domain::gate::{Evidence, GateKind, GateStatus, GateThresholds};
use release_pilot_domain::ids::{
    CommitSha, EnvironmentName, EnvironmentTier, Person, ReleaseId, ServiceName,
};
use release_pilot_domain::links::LinkRules;
use release_pilot_domain::policy::PolicyRules;
use release_pilot_domain::release::{
    ApproveRelease, BypassGate, CommitInput, CreateRelease, RecordGateResult, Release,
    ReleaseCommand, WithdrawRelease,
};
use release_pilot_domain::roles::Role;
use release_pilot_ledger::metadata::EventMetadata;
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::store::EventStore;
use release_pilot_ledger::testkit::{seal_everything, TestDatabase};
use release_pilot_projector::release_timeline::ReleaseTimeline;
use release_pilot_projector::Projector;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

fn person(name: &str) -> Person {
    Person::parse(name).expect("valid")
}

fn metadata(actor: &str) -> EventMetadata {
    EventMetadata {
        actor: actor.into(),
        actor_roles: vec![],
        command: "Test".into(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        idempotency_key: None,
        traceparent: None,
    }
}

async fn run(store: &EventStore, id: &str, actor: &str, command: ReleaseCommand) {
    store
        .execute::<Release>(id, command, &metadata(actor))
        .await
        .expect("command");
}

async fn state(pool: &PgPool) -> Vec<(String, Value, Value, bool)> {
    sqlx::query_as(
        "SELECT version, gates::json, approvals::json, withdrawn FROM rm_releases ORDER BY version",
    )
    .fetch_all(pool)
    .await
    .expect("releases")
}

async fn timeline(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT row(t.*)::text FROM rm_release_timeline t ORDER BY position")
        .fetch_all(pool)
        .await
        .expect("timeline")
}

#[tokio::test]
async fn the_release_view_holds_what_the_ledger_decided() {
    let db = TestDatabase::create().await;
    let store = EventStore::new(db.pool.clone(), 100);
    let production = EnvironmentName::parse("production").expect("valid");
    let rules = PolicyRules::defaults_for(EnvironmentTier::Production);
    let mut ids = Vec::new();
    for (minor, previous) in [(1u64, None), (2, Some(semver::Version::new(1, 1, 0)))] {
        let id = ReleaseId::from_uuid(Uuid::now_v7());
        run(
            &store,
            &id.to_string(),
            "ci-bot",
            ReleaseCommand::Create(CreateRelease {
                release_id: id,
                service: ServiceName::parse("api").expect("valid"),
                version: Some(semver::Version::new(1, minor, 0)),
                previous_version: previous,
                commits: vec![CommitInput {
                    sha: CommitSha::parse(&format!("{minor:040x}")).expect("sha"),
                    message: "feat: x\\n\\nRefs: REQ-1".into(),
                    author: person("dev@example.com"),
                    committed_at: Utc::now(),
                }],
                requirements: vec![],
                artifact: None,
                link_rules: LinkRules::default(),
                actor: person("ci-bot"),
                requested_at: Utc::now(),
            }),
        )
        .await;
        ids.push(id.to_string());
    }
    let first = &ids[0];
    let gate = |gate: GateKind, failed: u32| {
        ReleaseCommand::RecordGate(RecordGateResult {
            gate,
            evidence: Evidence {
                tests_failed: Some(failed),
                ..Evidence::default()
            },
            reported_status: Some(GateStatus::Passed),
            thresholds: GateThresholds::default(),
            actor: person("ci-bot"),
            requested_at: Utc::now(),
        })
    };
    run(&store, first, "ci-bot", gate(GateKind::Testing, 0)).await;
    run(&store, first, "ci-bot", gate(GateKind::Security, 2)).await;
    run(
        &store,
        first,
        "root",
        ReleaseCommand::BypassGate(BypassGate {
            gate: GateKind::Security,
            reason: "scanner outage".into(),
            actor: person("root"),
            actor_roles: BTreeSet::from([Role::Admin]),
            permitted_roles: BTreeSet::from([Role::Admin]),
            requested_at: Utc::now(),
        }),
    )
    .await;
    for approver in ["ann@example.com", "bob@example.com"] {
        run(
            &store,
            first,
            approver,
            ReleaseCommand::Approve(ApproveRelease {
                environment: production.clone(),
                approver: person(approver),
                approver_roles: BTreeSet::from([Role::Approver]),
                comment: None,
                rules: rules.approvals.clone(),
                requested_at: Utc::now(),
            }),
        )
        .await;
    }
    run(
        &store,
        &ids[1],
        "ci-bot",
        ReleaseCommand::Withdraw(WithdrawRelease {
            reason: "superseded".into(),
            actor: person("ci-bot"),
            requested_at: Utc::now(),
        }),
    )
    .await;
    seal_everything(&db.pool, &LedgerKey::generate(), Duration::from_secs(30)).await;

    let projector = Projector::new(db.pool.clone(), ReleaseTimeline, 3);
    while projector.apply_next().await.expect("apply") > 0 {}
    let releases = state(&db.pool).await;
    assert_eq!(
        releases,
        [
            (
                "1.1.0".to_owned(),
                json!({"testing": "passed", "security": "bypassed"}),
                json!({"production": {"ann@example.com": "approve", "bob@example.com": "approve"}}),
                false
            ),
            ("1.2.0".to_owned(), json!({}), json!({}), true),
        ]
    );
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM rm_release_timeline WHERE release_id = $1::uuid ORDER BY position",
    )
    .bind(first)
    .fetch_all(&db.pool)
    .await
    .expect("timeline");
    assert_eq!(
        events,
        [
            "ReleaseCreated",
            "GateEvaluated",
            "GateEvaluated",
            "GateBypassed",
            "ApprovalGranted",
            "ApprovalGranted"
        ]
    );

    let built = timeline(&db.pool).await;
    common::rebuild_from_zero(
        &db.pool,
        ReleaseTimeline,
        "rm_release_timeline, rm_releases",
        1000,
    )
    .await;
    assert_eq!(timeline(&db.pool).await, built);
    assert_eq!(state(&db.pool).await, releases);
}
