//! The JetStream feed: consuming the relayed ledger builds the same read model as tailing
//! the ledger table, and redelivering every message changes nothing.

mod common;

use std::time::Duration;

use release_pilot_ledger::relay::Relay;
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::{seal_everything, TestDatabase, TestStream};
use release_pilot_projector::audit_index::AuditIndex;
use release_pilot_projector::feed::JetStreamFeed;
use release_pilot_projector::Projector;
use sqlx::PgPool;

async fn audit_rows(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT row(a.*)::text FROM rm_audit_index a ORDER BY position")
        .fetch_all(pool)
        .await
        .expect("rows")
}

#[tokio::test]
async fn the_feed_builds_what_the_ledger_tail_builds_and_redelivery_changes_nothing() {
    let db = TestDatabase::create().await;
    let test_stream = TestStream::new();
    let jetstream = test_stream.jetstream().await;
    for n in 0..300i64 {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ('release', $1, $2, 'GateEvaluated', '1', $3, $4)",
        )
        .bind(format!("r{}", n % 7))
        .bind(n / 7 + 1)
        .bind(serde_json::json!({"GateEvaluated": {"n": n}}))
        .bind(serde_json::json!({"actor": format!("ci-{}", n % 3), "command": "RecordGateResult"}))
        .execute(&db.pool)
        .await
        .expect("append");
    }
    assert_eq!(
        seal_everything(&db.pool, &LedgerKey::generate(), Duration::from_secs(30)).await,
        300
    );
    let relay = Relay::new(
        db.pool.clone(),
        jetstream.clone(),
        test_stream.config.clone(),
    );
    let mut stream = relay.ensure_stream().await.expect("streams");
    while relay.relay_batch(&mut stream).await.expect("relay") > 0 {}

    let projector = Projector::new(db.pool.clone(), AuditIndex, 1000);
    let feed = JetStreamFeed::durable(&jetstream, &test_stream.config.stream, "audit-index")
        .await
        .expect("consumer");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while projector.checkpoint().await.expect("checkpoint") < 300 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed did not deliver everything"
        );
        feed.apply_next(&projector, 64, Duration::from_millis(200))
            .await
            .expect("apply");
    }
    let from_feed = audit_rows(&db.pool).await;
    assert_eq!(from_feed.len(), 300);

    // Every message again, through a second consumer: nothing changes.
    let again =
        JetStreamFeed::durable(&jetstream, &test_stream.config.stream, "audit-index-replay")
            .await
            .expect("consumer");
    let mut redelivered = 0;
    for _ in 0..10 {
        redelivered += again
            .apply_next(&projector, 100, Duration::from_millis(200))
            .await
            .expect("apply");
    }
    assert_eq!(redelivered, 0);
    assert_eq!(audit_rows(&db.pool).await, from_feed);

    // The same read model from the ledger table.
    common::rebuild_from_zero(&db.pool, AuditIndex, "rm_audit_index", 1000).await;
    assert_eq!(audit_rows(&db.pool).await, from_feed);
}
