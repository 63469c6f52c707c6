//! Environment history from real domain events: versions become live by deployment or
//! rollback, in world time; a backfilled deployment slots into the past; the incremental
//! build equals a rebuild.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use release_pilot_domain::clearance::ReleaseFacts;
use release_pilot_domain::environment::{
    CompleteDeployment, CompleteRollback, Environment, EnvironmentCommand, StartDeployment,
    StartRollback, Strategy,
};
use release_pilot_domain::ids::{
    DeploymentId, EnvironmentName, EnvironmentTier, Person, ReleaseId, ServiceName,
};
use release_pilot_domain::policy::AppliedPolicy;
use release_pilot_ledger::metadata::EventMetadata;
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::store::EventStore;
use release_pilot_ledger::testkit::{seal_everything, TestDatabase};
use release_pilot_projector::environment_history::EnvironmentHistory;
use release_pilot_projector::Projector;
use sqlx::PgPool;
use uuid::Uuid;

fn day(d: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, hour, 0, 0)
        .single()
        .expect("valid")
}

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "ci-bot".into(),
        actor_roles: vec!["ci".into()],
        command: "Deploy".into(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        idempotency_key: None,
        traceparent: None,
    }
}

/// Deploys `minor` of `service` to dev, started and finished at `at` (world time).
async fn deploy(store: &EventStore, service: &str, minor: u64, at: DateTime<Utc>) -> DeploymentId {
    let service_name = ServiceName::parse(service).expect("valid");
    let environment = EnvironmentName::parse("dev").expect("valid");
    let id = DeploymentId::from_uuid(Uuid::now_v7());
    let stream = format!("{service}/dev");
    let start = EnvironmentCommand::StartDeployment(StartDeployment {
        deployment_id: id,
        service: service_name.clone(),
        environment,
        release: ReleaseFacts {
            release_id: ReleaseId::from_uuid(Uuid::now_v7()),
            service: service_name,
            version: semver::Version::new(1, minor, 0),
            withdrawn: false,
            gates: BTreeMap::new(),
            decisions: vec![],
            hotfix_approved_by: None,
            creator: Person::parse("ci-bot").expect("valid"),
            commit_authors: vec![],
        },
        strategy: Strategy::Standard,
        policy: AppliedPolicy::defaults_for(EnvironmentTier::Development),
        remediates_incident: None,
        started_at: at,
        actor: Person::parse("ci-bot").expect("valid"),
        requested_at: Utc::now(),
    });
    store
        .execute::<Environment>(&stream, start, &metadata())
        .await
        .expect("start");
    let complete = EnvironmentCommand::CompleteDeployment(CompleteDeployment {
        deployment_id: id,
        finished_at: at,
    });
    store
        .execute::<Environment>(&stream, complete, &metadata())
        .await
        .expect("complete");
    id
}

async fn roll_back(store: &EventStore, service: &str, id: DeploymentId, at: DateTime<Utc>) {
    let stream = format!("{service}/dev");
    let start = EnvironmentCommand::StartRollback(StartRollback {
        deployment_id: id,
        reason: "errors".into(),
        started_at: at,
        actor: Person::parse("sre").expect("valid"),
    });
    store
        .execute::<Environment>(&stream, start, &metadata())
        .await
        .expect("rollback");
    let complete = EnvironmentCommand::CompleteRollback(CompleteRollback {
        deployment_id: id,
        finished_at: at,
    });
    store
        .execute::<Environment>(&stream, complete, &metadata())
        .await
        .expect("complete rollback");
}

/// (service, version, valid_from, valid_to, cause) in world-time order.
async fn history(
    pool: &PgPool,
) -> Vec<(String, String, DateTime<Utc>, Option<DateTime<Utc>>, String)> {
    sqlx::query_as(
        "SELECT service, version, valid_from, valid_to, cause FROM rm_environment_history \
         ORDER BY service, valid_from, position",
    )
    .fetch_all(pool)
    .await
    .expect("history")
}

#[tokio::test]
async fn versions_live_over_world_time_including_rollbacks_and_backfills() {
    let db = TestDatabase::create().await;
    let store = EventStore::new(db.pool.clone(), 100);
    let key = LedgerKey::generate();
    let projector = Projector::new(db.pool.clone(), EnvironmentHistory, 5);

    deploy(&store, "api", 1, day(1, 9)).await;
    let second = deploy(&store, "api", 2, day(3, 9)).await;
    deploy(&store, "web", 1, day(2, 9)).await;
    seal_everything(&db.pool, &key, Duration::from_secs(30)).await;
    while projector.apply_next().await.expect("apply") > 0 {}
    roll_back(&store, "api", second, day(3, 12)).await;
    deploy(&store, "api", 3, day(5, 9)).await;
    // Reported late: a deployment that finished on day 4, recorded after day 5's.
    deploy(&store, "api", 4, day(4, 9)).await;
    seal_everything(&db.pool, &key, Duration::from_secs(30)).await;
    while projector.apply_next().await.expect("apply") > 0 {}

    let rows = history(&db.pool).await;
    let api: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "api")
        .map(|r| (r.1.as_str(), r.2, r.3, r.4.as_str()))
        .collect();
    assert_eq!(
        api,
        [
            ("1.1.0", day(1, 9), Some(day(3, 9)), "deployment"),
            ("1.2.0", day(3, 9), Some(day(3, 12)), "deployment"),
            ("1.1.0", day(3, 12), Some(day(4, 9)), "rollback"),
            ("1.4.0", day(4, 9), Some(day(5, 9)), "deployment"),
            ("1.3.0", day(5, 9), None, "deployment"),
        ]
    );
    let web: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "web")
        .map(|r| (r.1.as_str(), r.3))
        .collect();
    assert_eq!(web, [("1.1.0", None)]);

    // A rebuild from position 0, in one pass, gives the same history.
    common::rebuild_from_zero(&db.pool, EnvironmentHistory, "rm_environment_history", 1000).await;
    assert_eq!(history(&db.pool).await, rows);
}
