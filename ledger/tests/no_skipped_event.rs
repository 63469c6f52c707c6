//! Invariant 2: every committed event receives exactly one ledger position 1, 2, 3, …
//! even when concurrent transactions commit out of order — and a reader tailing the
//! ledger never skips one. Invariant 6 (relay side): JetStream ends up holding each entry
//! once, in order.

mod common;

use std::time::Duration;

use release_pilot_ledger::db::entries_after;
use release_pilot_ledger::relay::Relay;
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::{TestDatabase, TestStream};
use release_pilot_ledger::verify::verify_database;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_writers_committing_out_of_order_lose_and_double_nothing() {
    let db = TestDatabase::create_with(48).await;
    let test_stream = TestStream::new();
    let jetstream = test_stream.jetstream().await;
    let key = LedgerKey::generate();
    let (stop, shutdown) = watch::channel(false);

    let sealer = tokio::spawn(common::sealer(&db.pool, &key).run(shutdown.clone()));
    let relay = Relay::new(
        db.pool.clone(),
        jetstream.clone(),
        test_stream.config.clone(),
    );
    relay.ensure_stream().await.expect("stream");
    let relay_task = tokio::spawn(relay.clone().run(shutdown.clone()));

    // A reader tailing the ledger while it is written must see 1, 2, 3, … with no hole.
    let tail_pool = db.pool.clone();
    let mut tail_shutdown = shutdown.clone();
    let tail = tokio::spawn(async move {
        let mut seen = 0i64;
        loop {
            let batch = entries_after(&tail_pool.clone().into(), seen, 1000)
                .await
                .expect("tail");
            for (entry, _) in &batch {
                assert_eq!(entry.position, seen + 1, "the tail skipped or repeated");
                seen = entry.position;
            }
            if batch.is_empty() {
                if *tail_shutdown.borrow() {
                    return seen;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                    _ = tail_shutdown.changed() => {}
                }
            }
        }
    });

    let committed = common::load(&db.pool, "", 32, 10_000, 15).await;
    assert!(committed >= 10_000);
    assert_eq!(
        common::committed(&db.pool).await,
        committed,
        "rolled-back events are gone"
    );

    common::wait_sealed(&db.pool, committed, Duration::from_secs(60)).await;
    common::wait_relayed(&relay, committed, Duration::from_secs(60)).await;
    stop.send(true).expect("stop");
    sealer.await.expect("sealer stops");
    relay_task.await.expect("relay stops");
    assert_eq!(
        tail.await.expect("tail"),
        committed,
        "the tail saw every entry"
    );

    assert_eq!(
        common::assert_sealed_exactly_once(&db.pool).await,
        committed
    );
    let report = verify_database(&db.db(), &key.verifying_key(), |_| {})
        .await
        .expect("verification runs")
        .expect("the chain verifies");
    assert_eq!(report.entries, committed);
    assert!(report.checkpoints >= 1);
    common::assert_stream_holds(&jetstream, &test_stream.config.stream, committed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_active_sealers_never_fork_the_chain() {
    let db = TestDatabase::create().await;
    let key = LedgerKey::generate();
    let (stop, shutdown) = watch::channel(false);
    let first = tokio::spawn(common::sealer(&db.pool, &key).run(shutdown.clone()));
    let second = tokio::spawn(common::sealer(&db.pool, &key).run(shutdown.clone()));
    let committed = common::load(&db.pool, "", 8, 2_000, 5).await;
    let sealer = common::sealer(&db.pool, &key);
    common::wait_sealed(&db.pool, committed, Duration::from_secs(60)).await;
    stop.send(true).expect("stop");
    first.await.expect("first stops");
    second.await.expect("second stops");
    assert_eq!(sealer.seal_batch().await.expect("nothing left").sealed, 0);
    assert_eq!(
        common::assert_sealed_exactly_once(&db.pool).await,
        committed
    );
    verify_database(&db.db(), &key.verifying_key(), |_| {})
        .await
        .expect("runs")
        .expect("verifies");
}

#[tokio::test]
async fn a_sealer_that_shuts_down_signs_a_final_checkpoint() {
    let db = TestDatabase::create().await;
    let key = LedgerKey::generate();
    common::write_events(&db.pool, "a", 1, 3, Duration::ZERO, true)
        .await
        .expect("insert");
    // Checkpoints are otherwise due only every 1000 entries or hour.
    let sealer = common::sealer(&db.pool, &key);
    sealer.seal_batch().await.expect("seal");
    common::write_events(&db.pool, "a", 4, 2, Duration::ZERO, true)
        .await
        .expect("insert");
    let (stop, shutdown) = watch::channel(false);
    let running = tokio::spawn(common::sealer(&db.pool, &key).run(shutdown));
    while release_pilot_ledger::db::head(&db.db())
        .await
        .expect("head")
        .0
        < 5
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(true).expect("stop");
    running.await.expect("stops");
    let last: i64 = sqlx::query_scalar("SELECT max(position) FROM ledger_checkpoints")
        .fetch_one(&db.pool)
        .await
        .expect("checkpoint");
    assert_eq!(last, 5);
}
