//! Snapshots are a cache: an aggregate loaded through its snapshot must equal the same
//! aggregate folded from every event. Environment streams are the test case because
//! their `apply` is not idempotent (the stack of rollback targets grows per deployment).

use std::collections::BTreeMap;

use chrono::Utc;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::EventStore as _;
use postgres_es::PostgresEventRepository;
use release_pilot_domain::clearance::ReleaseFacts;
use release_pilot_domain::environment::{
    CompleteDeployment, Environment, EnvironmentCommand, StartDeployment, Strategy,
};
use release_pilot_domain::ids::{
    DeploymentId, EnvironmentName, EnvironmentTier, Person, ReleaseId, ServiceName,
};
use release_pilot_domain::policy::AppliedPolicy;
use release_pilot_ledger::metadata::EventMetadata;
use release_pilot_ledger::store::EventStore;
use release_pilot_ledger::testkit::TestDatabase;
use uuid::Uuid;

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

#[tokio::test]
async fn an_aggregate_loaded_through_snapshots_equals_one_folded_from_all_events() {
    let db = TestDatabase::create().await;
    let store = EventStore::new(db.pool.clone(), 3);
    let service = ServiceName::parse("api").expect("valid");
    let environment = EnvironmentName::parse("dev").expect("valid");
    let id = "api/dev";
    for n in 1..=7u64 {
        let deployment_id = DeploymentId::from_uuid(Uuid::now_v7());
        let start = EnvironmentCommand::StartDeployment(StartDeployment {
            deployment_id,
            service: service.clone(),
            environment: environment.clone(),
            release: ReleaseFacts {
                release_id: ReleaseId::from_uuid(Uuid::now_v7()),
                service: service.clone(),
                version: semver::Version::new(1, n, 0),
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
            started_at: Utc::now(),
            actor: Person::parse("ci-bot").expect("valid"),
            requested_at: Utc::now(),
        });
        store
            .execute::<Environment>(id, start, &metadata())
            .await
            .expect("start");
        let complete = EnvironmentCommand::CompleteDeployment(CompleteDeployment {
            deployment_id,
            finished_at: Utc::now(),
        });
        let executed = store
            .execute::<Environment>(id, complete, &metadata())
            .await
            .expect("complete");
        assert_eq!(executed.version, usize::try_from(2 * n).expect("small"));
    }
    let snapshots: i64 = sqlx::query_scalar("SELECT count(*) FROM snapshots")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert!(snapshots > 0, "the test must exercise a snapshot");

    // Read through an uncached store, so the state comes from the snapshot rows.
    let uncached = EventStore::with_cache(db.pool.clone(), 3, 0);
    let (through_snapshot, version) = uncached.load::<Environment>(id).await.expect("load");
    let (cached, cached_version) = store.load::<Environment>(id).await.expect("load");
    assert_eq!(
        (&cached, cached_version),
        (&through_snapshot, version),
        "the cache agrees"
    );
    let folded = PersistedEventStore::<_, Environment>::new_event_store(
        PostgresEventRepository::new(db.pool.clone()),
    )
    .load_aggregate(id)
    .await
    .expect("fold")
    .aggregate;
    assert_eq!(version, 14);
    assert_eq!(through_snapshot.previous_live.len(), 6);
    assert_eq!(through_snapshot, folded);
}
