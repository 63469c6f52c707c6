//! The ledger invariants on both backends, through the same code the services run:
//! commands appended by concurrent writers through the event store, a sealer aborted at
//! random points, the database refusing to rewrite history, and verification naming a
//! tampered position. Each test runs once on PostgreSQL and once on SQLite.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use release_pilot_domain::ids::{Person, RequirementId};
use release_pilot_domain::requirement::{RegisterRequirement, Requirement, RequirementCommand};
use release_pilot_ledger::both_backends;
use release_pilot_ledger::db::Db;
use release_pilot_ledger::metadata::EventMetadata;
use release_pilot_ledger::on;
use release_pilot_ledger::sealer::{Sealer, SealerConfig};
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::store::EventStore;
use release_pilot_ledger::testkit::seal_everything;
use release_pilot_ledger::verify::{verify_database, VerifyFailure};
use tokio::sync::watch;
use uuid::Uuid;

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "pm@example.com".into(),
        actor_roles: vec!["admin".into()],
        command: "RegisterRequirement".into(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        idempotency_key: None,
        traceparent: None,
    }
}

/// Registers requirement `REQ-{n}` through the event store.
async fn register(store: &EventStore, n: usize) {
    let id = format!("REQ-{n}");
    let command = RequirementCommand::Register(RegisterRequirement {
        id: RequirementId::parse(&id).expect("valid"),
        title: format!("Requirement {n} — «quoted» \"text\""),
        category: "functional".into(),
        actor: Person::parse("pm@example.com").expect("valid"),
        requested_at: Utc::now(),
    });
    store
        .execute::<Requirement>(&id, command, &metadata())
        .await
        .expect("registered");
}

/// `writers` tasks registering `each` requirements apiece, all at once.
async fn write_concurrently(db: &Db, writers: usize, each: usize) {
    let store = Arc::new(EventStore::new(db.clone(), 100));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    register(&store, w * 10_000 + i + 1).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
}

async fn verify(db: &Db, key: &LedgerKey) -> Result<i64, VerifyFailure> {
    verify_database(db, &key.verifying_key(), |_| {})
        .await
        .expect("verification runs")
        .map(|report| report.entries)
}

both_backends!(
    concurrent_writers_with_a_running_sealer_get_gap_free_positions,
    |test| async move {
        let key = LedgerKey::generate();
        let (stop, shutdown) = watch::channel(false);
        let sealer = tokio::spawn(
            Sealer::new(test.db.clone(), key.clone(), SealerConfig::default()).run(shutdown),
        );
        write_concurrently(&test.db, 8, 40).await;
        let _ = stop.send(true);
        sealer.await.expect("sealer");
        let head = seal_everything(&test.db, &key, Duration::from_secs(30)).await;
        assert_eq!(head, 8 * 40);
        assert_eq!(common::assert_sealed_exactly_once(&test.db).await, head);
        assert_eq!(verify(&test.db, &key).await, Ok(head));
    }
);

both_backends!(
    a_sealer_aborted_at_random_points_loses_and_doubles_nothing,
    |test| async move {
        let key = LedgerKey::generate();
        let writer = {
            let db = test.db.clone();
            tokio::spawn(async move { write_concurrently(&db, 4, 60).await })
        };
        let (_never, shutdown) = watch::channel(false);
        let mut crashes = 0;
        while !writer.is_finished() || crashes < 10 {
            // Each run is a process of its own: its own connections, closed after the abort.
            let process = Db::connect(&test.url, 2)
                .await
                .expect("the run's connections");
            let config = SealerConfig {
                batch_size: rand::rng().random_range(1..50),
                checkpoint_every: rand::rng().random_range(1..100),
                ..SealerConfig::default()
            };
            let run = tokio::spawn(
                Sealer::new(process.clone(), key.clone(), config).run(shutdown.clone()),
            );
            tokio::time::sleep(Duration::from_millis(rand::rng().random_range(1..60))).await;
            run.abort();
            let _ = run.await;
            process.close().await;
            crashes += 1;
        }
        writer.await.expect("writer");
        let head = seal_everything(&test.db, &key, Duration::from_secs(30)).await;
        assert_eq!(head, 4 * 60);
        assert_eq!(common::assert_sealed_exactly_once(&test.db).await, head);
        assert_eq!(verify(&test.db, &key).await, Ok(head));
    }
);

both_backends!(the_database_refuses_to_rewrite_history, |test| async move {
    let key = LedgerKey::generate();
    write_concurrently(&test.db, 1, 3).await;
    seal_everything(&test.db, &key, Duration::from_secs(10)).await;
    Sealer::new(test.db.clone(), key.clone(), SealerConfig::default())
        .checkpoint_now()
        .await
        .expect("checkpoint");
    let attempts = [
        "UPDATE events SET payload = '{}' WHERE sequence = 1",
        "DELETE FROM events WHERE global_position = (SELECT min(global_position) FROM events)",
        "UPDATE ledger SET sealed_at = sealed_at WHERE position = 1",
        "DELETE FROM ledger WHERE position = 3",
        "UPDATE ledger_checkpoints SET key_id = 'x'",
        "DELETE FROM ledger_checkpoints",
    ];
    for sql in attempts {
        let error = on!(&test.db, |pool| sqlx::query(sql)
            .execute(pool)
            .await
            .map(drop)
            .expect_err(sql));
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(common::assert_sealed_exactly_once(&test.db).await, 3);
    assert_eq!(verify(&test.db, &key).await, Ok(3));
});

both_backends!(
    an_altered_event_is_named_by_verification,
    |test| async move {
        let key = LedgerKey::generate();
        write_concurrently(&test.db, 2, 10).await;
        let head = seal_everything(&test.db, &key, Duration::from_secs(10)).await;
        assert_eq!(verify(&test.db, &key).await, Ok(head));
        // An attacker with database access first switches the append-only guard off.
        let target: i64 = match &test.db {
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query("SET LOCAL session_replication_role = replica")
                    .execute(&mut *tx)
                    .await
                    .expect("disable triggers");
                sqlx::query("UPDATE events SET payload = replace(payload::text, 'Requirement 7 ', 'Requirement 8 ')::json WHERE aggregate_id = 'REQ-7'")
                .execute(&mut *tx)
                .await
                .expect("tamper");
                tx.commit().await.expect("commit");
                sqlx::query_scalar("SELECT l.position FROM ledger l JOIN events e USING (global_position) WHERE e.aggregate_id = 'REQ-7'")
                .fetch_one(pool)
                .await
                .expect("position")
            }
            Db::Sqlite(pool) => {
                sqlx::query("DROP TRIGGER events_no_update")
                    .execute(pool)
                    .await
                    .expect("drop the guard");
                sqlx::query("UPDATE events SET payload = replace(payload, 'Requirement 7 ', 'Requirement 8 ') WHERE aggregate_id = 'REQ-7'")
                .execute(pool)
                .await
                .expect("tamper");
                sqlx::query_scalar("SELECT l.position FROM ledger l JOIN events e USING (global_position) WHERE e.aggregate_id = 'REQ-7'")
                .fetch_one(pool)
                .await
                .expect("position")
            }
        };
        assert_eq!(
            verify(&test.db, &key).await,
            Err(VerifyFailure::HashMismatch { position: target })
        );
    }
);
