//! Invariants 2 and 6 under crashes: the sealer and the relay are stopped abruptly at
//! random points, many times, while writers keep committing. Afterwards there are no
//! gaps, no duplicates, the chain verifies and the stream holds each entry once.

mod common;

use std::time::Duration;

use rand::Rng;
use release_pilot_ledger::relay::Relay;
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::{TestDatabase, TestStream};
use release_pilot_ledger::verify::verify_database;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aborting_the_sealer_and_relay_at_random_points_loses_and_doubles_nothing() {
    let db = TestDatabase::create_with(48).await;
    let test_stream = TestStream::new();
    let jetstream = test_stream.jetstream().await;
    let key = LedgerKey::generate();
    let relay = Relay::new(
        db.pool.clone(),
        jetstream.clone(),
        test_stream.config.clone(),
    );
    relay.ensure_stream().await.expect("stream");

    // The writers are other processes with their own connections: a task aborted in the
    // middle of a transaction can leave its pooled connection inside that transaction,
    // so aborted tasks must not share a pool with writers that expect autocommit.
    let load_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&db.url)
        .await
        .expect("writer pool");
    let load = tokio::spawn(async move { common::load(&load_pool, "", 16, 6_000, 10).await });

    let (_never, shutdown) = watch::channel(false);
    let mut crashes = 0;
    while !load.is_finished() || crashes < 25 {
        // Each round is a process: its own connections, closed when it is killed (a task
        // aborted inside a transaction would otherwise hand its connection back still
        // inside that transaction).
        let kill_pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&db.url)
            .await
            .expect("the round's connections");
        let doomed_relay = Relay::new(
            kill_pool.clone(),
            jetstream.clone(),
            test_stream.config.clone(),
        );
        let sealer = tokio::spawn(common::sealer(&kill_pool, &key).run(shutdown.clone()));
        // Sometimes a standby sealer runs beside the active one.
        let standby = rand::rng()
            .random_bool(0.3)
            .then(|| tokio::spawn(common::sealer(&kill_pool, &key).run(shutdown.clone())));
        let relay_task = tokio::spawn(doomed_relay.clone().run(shutdown.clone()));
        let life = Duration::from_millis(rand::rng().random_range(5..80));
        tokio::time::sleep(life).await;
        sealer.abort();
        relay_task.abort();
        let _ = sealer.await;
        let _ = relay_task.await;
        if let Some(standby) = standby {
            standby.abort();
            let _ = standby.await;
        }
        kill_pool.close().await;
        crashes += 1;
    }
    let committed = load.await.expect("load");
    assert!(crashes >= 25);

    let (stop, shutdown) = watch::channel(false);
    let sealer = tokio::spawn(common::sealer(&db.pool, &key).run(shutdown.clone()));
    let relay_task = tokio::spawn(relay.clone().run(shutdown.clone()));
    common::wait_sealed(&db.pool, committed, Duration::from_secs(60)).await;
    common::wait_relayed(&relay, committed, Duration::from_secs(60)).await;
    stop.send(true).expect("stop");
    sealer.await.expect("sealer stops");
    relay_task.await.expect("relay stops");

    assert_eq!(
        common::assert_sealed_exactly_once(&db.pool).await,
        committed
    );
    verify_database(&db.db(), &key.verifying_key(), |_| {})
        .await
        .expect("runs")
        .expect("the chain verifies after the crashes");
    common::assert_stream_holds(&jetstream, &test_stream.config.stream, committed).await;
}
