//! Two commands on one aggregate at once: one wins, the other gets a typed conflict, and
//! nothing of the loser is written — on PostgreSQL and on the embedded SQLite backend.

mod common;

use std::collections::HashMap;

use chrono::Utc;
use cqrs_es::EventStore as _;
use release_pilot_domain::ids::{Person, RequirementId};
use release_pilot_domain::requirement::{
    RegisterRequirement, Requirement, RequirementCommand, RequirementEvent, UpdateRequirement,
};
use release_pilot_ledger::both_backends;
use release_pilot_ledger::metadata::EventMetadata;
use release_pilot_ledger::store::{map_error, EventStore};
use release_pilot_ledger::LedgerError;
use uuid::Uuid;

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "pm@example.com".into(),
        actor_roles: vec!["admin".into()],
        command: "UpdateRequirement".into(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        idempotency_key: None,
        traceparent: None,
    }
}

fn person() -> Person {
    Person::parse("pm@example.com").expect("valid")
}

async fn registered(store: &EventStore) {
    let command = RequirementCommand::Register(RegisterRequirement {
        id: RequirementId::parse("REQ-1").expect("valid"),
        title: "Users can log in".into(),
        category: "functional".into(),
        actor: person(),
        requested_at: Utc::now(),
    });
    store
        .execute::<Requirement>("REQ-1", command, &metadata())
        .await
        .expect("registered");
}

async fn events_of(store: &EventStore, id: &str) -> i64 {
    release_pilot_ledger::on!(store.db(), |pool| {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .expect("count")
    })
}

fn updated(title: &str) -> RequirementEvent {
    RequirementEvent::RequirementUpdated {
        title: title.into(),
        category: "functional".into(),
        updated_by: person(),
    }
}

both_backends!(
    the_second_commit_on_a_stale_version_is_a_conflict_and_writes_nothing,
    |db| async move {
        let store = EventStore::new(db.db.clone(), 100);
        registered(&store).await;
        let raw = store.store::<Requirement>();
        let first = raw.load_aggregate("REQ-1").await.expect("load");
        let second = raw.load_aggregate("REQ-1").await.expect("load");
        raw.commit(vec![updated("A")], first, HashMap::new())
            .await
            .expect("the first writer wins");
        let loser = raw
            .commit(
                vec![updated("B"), updated("C")],
                second,
                metadata().to_map(),
            )
            .await
            .expect_err("the second writer loses");
        assert!(matches!(map_error(loser), LedgerError::Conflict));
        assert_eq!(
            events_of(&store, "REQ-1").await,
            2,
            "nothing of the loser is written"
        );
        let (state, version) = store.load::<Requirement>("REQ-1").await.expect("load");
        assert_eq!((state.title.as_str(), version), ("A", 2));
    }
);

both_backends!(
    concurrent_commands_either_succeed_or_get_a_typed_conflict,
    |db| async move {
        let store = std::sync::Arc::new(EventStore::new(db.db.clone(), 100));
        registered(&store).await;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let command = RequirementCommand::Update(UpdateRequirement {
                    title: format!("title {i}"),
                    category: "functional".into(),
                    actor: person(),
                    requested_at: Utc::now(),
                });
                store
                    .execute::<Requirement>("REQ-1", command, &metadata())
                    .await
                    .map(|_| ())
            }));
        }
        let mut succeeded = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(()) => succeeded += 1,
                Err(LedgerError::Conflict) => {}
                Err(other) => panic!("only conflicts may fail these commands: {other}"),
            }
        }
        assert!(succeeded >= 1);
        assert_eq!(events_of(&store, "REQ-1").await, 1 + succeeded);
    }
);

both_backends!(domain_refusals_stay_domain_errors, |db| async move {
    let store = EventStore::new(db.db.clone(), 100);
    let command = RequirementCommand::Update(UpdateRequirement {
        title: "x".into(),
        category: "functional".into(),
        actor: person(),
        requested_at: Utc::now(),
    });
    let error = store
        .execute::<Requirement>("REQ-404", command, &metadata())
        .await
        .expect_err("unknown requirement");
    assert!(matches!(
        error,
        LedgerError::Domain(release_pilot_domain::DomainError::RequirementNotFound)
    ));
    assert_eq!(events_of(&store, "REQ-404").await, 0);
});

both_backends!(
    metadata_is_stored_with_every_event_and_reads_back_typed,
    |db| async move {
        let store = EventStore::new(db.db.clone(), 100);
        registered(&store).await;
        let stored: String = release_pilot_ledger::on!(store.db(), |pool| {
            sqlx::query_scalar(
                "SELECT CAST(metadata AS TEXT) FROM events WHERE aggregate_id = 'REQ-1'",
            )
            .fetch_one(pool)
            .await
            .expect("metadata")
        });
        let stored: serde_json::Value = serde_json::from_str(&stored).expect("JSON");
        let map: HashMap<String, String> = serde_json::from_value(stored).expect("a string map");
        let typed = EventMetadata::from_map(&map).expect("typed");
        assert_eq!(typed.actor, "pm@example.com");
        assert_eq!(typed.actor_roles, ["admin"]);
    }
);

both_backends!(
    a_cached_aggregate_made_stale_by_another_process_is_decided_again_not_committed_stale,
    |db| async move {
        // Two stores over one database stand for two command-service processes.
        let first = EventStore::new(db.db.clone(), 100);
        let second = EventStore::new(db.db.clone(), 100);
        registered(&first).await;
        let update = |title: &str| {
            RequirementCommand::Update(UpdateRequirement {
                title: title.into(),
                category: "functional".into(),
                actor: person(),
                requested_at: Utc::now(),
            })
        };
        // The second process appends behind the first one's cache.
        let behind = second
            .execute::<Requirement>("REQ-1", update("B"), &metadata())
            .await
            .expect("second writes");
        assert_eq!(behind.version, 2);
        // A read through the first store sees it (the cached version is checked)...
        let (state, version) = first.load::<Requirement>("REQ-1").await.expect("load");
        assert_eq!((state.title.as_str(), version), ("B", 2));
        // ...and a command decided on a stale cache is decided again on what is stored.
        let third = second
            .execute::<Requirement>("REQ-1", update("C"), &metadata())
            .await
            .expect("second writes again");
        assert_eq!(third.version, 3);
        let executed = first
            .execute::<Requirement>("REQ-1", update("Users can log in"), &metadata())
            .await
            .expect("first writes after reloading");
        assert_eq!(executed.version, 4);
        assert_eq!(events_of(&first, "REQ-1").await, 4);
        // Deciding again means the domain sees the real state: an unchanged title is refused.
        let refused = second
            .execute::<Requirement>("REQ-1", update("Users can log in"), &metadata())
            .await
            .expect_err("no change is refused on the fresh state");
        assert!(matches!(refused, LedgerError::Domain(_)));
    }
);
