//! Rollback decisions reach NATS: a sealed `RollbackTriggered` entry is published on
//! `decisions.rollback.<service>.<environment>`, once, even when the relay restarts.

mod common;

use std::time::Duration;

use release_pilot_ledger::relay::Relay;
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::{TestDatabase, TestStream};

#[tokio::test]
async fn an_automatic_rollback_is_published_as_a_decision_once() {
    let db = TestDatabase::create().await;
    let test_stream = TestStream::new();
    let jetstream = test_stream.jetstream().await;
    common::write_events(&db.pool, "noise", 1, 3, Duration::ZERO, true)
        .await
        .expect("insert");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('environment', 'checkout/production', 7, 'RollbackTriggered', '1', $1, '{}')",
    )
    .bind(serde_json::json!({"RollbackTriggered": {
        "deployment_id": "0190c2a8-0000-7000-8000-000000000002",
        "evidence": {"trigger": "error_rate", "metric": "error_rate_pct", "limit": 2.0, "peak": 4.5,
                     "breach_started_at": "2026-03-02T09:00:00Z", "fired_at": "2026-03-02T09:02:00Z", "samples": 13},
        "target": {"deployment_id": "0190c2a8-0000-7000-8000-000000000001", "release_id": "0190c2a8-0000-7000-8000-0000000000aa", "version": "1.4.0"}
    }}))
    .execute(&db.pool)
    .await
    .expect("insert");
    let key = LedgerKey::generate();
    let total = common::seal_all(
        &common::sealer(&db.pool, &key),
        &db.pool,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(total, 4);

    let relay = Relay::new(
        db.pool.clone(),
        jetstream.clone(),
        test_stream.config.clone(),
    );
    let mut stream = relay.ensure_stream().await.expect("streams");
    assert_eq!(relay.relay_batch(&mut stream).await.expect("relay"), 4);
    // A second relay instance finds nothing left to publish.
    let again = Relay::new(
        db.pool.clone(),
        jetstream.clone(),
        test_stream.config.clone(),
    );
    let mut stream = again.ensure_stream().await.expect("streams");
    assert_eq!(again.relay_batch(&mut stream).await.expect("relay"), 0);

    let mut decisions = jetstream
        .get_stream(&test_stream.config.decisions_stream)
        .await
        .expect("decision stream");
    let info = decisions.info().await.expect("info").clone();
    assert_eq!(info.state.messages, 1, "one decision, once");
    let message = decisions.get_raw_message(1).await.expect("decision");
    assert_eq!(
        message.subject.as_str(),
        format!(
            "{}.rollback.checkout.production",
            test_stream.config.decisions_prefix
        )
    );
    let body: serde_json::Value = serde_json::from_slice(&message.payload).expect("json");
    assert_eq!(body["decision"], "rollback");
    assert_eq!(body["evidence"]["trigger"], "error_rate");
    assert_eq!(body["target"]["version"], "1.4.0");
    assert_eq!(body["ledger_position"], 4);
    common::assert_stream_holds(&jetstream, &test_stream.config.stream, 4).await;
}
