//! Helpers shared by the ledger's integration tests.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::time::Duration;

use release_pilot_ledger::sealer::{Sealer, SealerConfig};
use release_pilot_ledger::signing::LedgerKey;
use sqlx::PgPool;

/// Inserts `count` events for aggregate `id` (sequences from `first_sequence`) in one
/// transaction that sleeps `delay` before it commits, or rolls back when `commit` is false.
/// This is the shape of a postgres-es commit, with a delay inside the transaction so
/// commits land out of insertion order.
pub async fn write_events(
    pool: &PgPool,
    id: &str,
    first_sequence: i64,
    count: i64,
    delay: Duration,
    commit: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for sequence in first_sequence..first_sequence + count {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ('load', $1, $2, 'LoadEvent', '1', $3, $4)",
        )
        .bind(id)
        .bind(sequence)
        .bind(serde_json::json!({"LoadEvent": {"n": sequence, "note": "é ✓ \"quoted\""}}))
        .bind(serde_json::json!({"actor": "loadgen", "command": "Load"}))
        .execute(&mut *tx)
        .await?;
    }
    if !delay.is_zero() {
        sqlx::query("SELECT pg_sleep($1)")
            .bind(delay.as_secs_f64())
            .execute(&mut *tx)
            .await?;
    }
    if commit {
        tx.commit().await
    } else {
        tx.rollback().await
    }
}

/// Counts committed events.
pub async fn committed(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .expect("count events")
}

/// A sealer with small batches so tests cross many batch boundaries.
pub fn sealer(pool: &PgPool, key: &LedgerKey) -> Sealer {
    Sealer::new(
        pool.clone(),
        key.clone(),
        SealerConfig {
            batch_size: 500,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(3600),
            poll_interval: Duration::from_millis(5),
        },
    )
}

/// Seals until the ledger holds every committed event, or panics after `timeout`.
pub async fn seal_all(sealer: &Sealer, pool: &PgPool, timeout: Duration) -> i64 {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let outcome = sealer.seal_batch().await.expect("seal");
        let total = committed(pool).await;
        if outcome.sealed == 0 && outcome.head == total {
            return total;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sealing did not catch up"
        );
        if outcome.sealed == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Asserts the ledger holds every committed event exactly once at positions 1..=N (on
/// either backend).
pub async fn assert_sealed_exactly_once(db: impl Into<release_pilot_ledger::db::Db>) -> i64 {
    let db = db.into();
    let (events, ledger, distinct, min, max): (i64, i64, i64, Option<i64>, Option<i64>) =
        release_pilot_ledger::on!(&db, |pool| sqlx::query_as(
            "SELECT (SELECT count(*) FROM events), count(*), count(DISTINCT global_position), \
                    min(position), max(position) FROM ledger",
        )
        .fetch_one(pool)
        .await
        .expect("ledger stats"));
    assert_eq!(ledger, events, "every committed event has a ledger entry");
    assert_eq!(distinct, events, "no event is sealed twice");
    if events > 0 {
        assert_eq!((min, max), (Some(1), Some(events)), "positions are 1..=N");
    }
    events
}

/// Runs `writers` concurrent writers until together they have committed at least
/// `target` events. Each transaction writes 1-5 events, sleeps 0-`max_delay_ms` inside
/// the transaction and rolls back one time in ten. Aggregate ids start with `prefix`.
/// Returns the events committed.
pub async fn load(
    pool: &PgPool,
    prefix: &str,
    writers: usize,
    target: i64,
    max_delay_ms: u64,
) -> i64 {
    use rand::Rng;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;
    let committed = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let pool = pool.clone();
        let committed = committed.clone();
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut aggregate = 0;
            let mut sequence = 1;
            while committed.load(Ordering::SeqCst) < target {
                let (count, delay, commit, next_aggregate) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(1..=5),
                        Duration::from_millis(rng.random_range(0..=max_delay_ms)),
                        rng.random_range(0..10) != 0,
                        rng.random_range(0..4) == 0,
                    )
                };
                let id = format!("{prefix}w{writer}-{aggregate}");
                write_events(&pool, &id, sequence, count, delay, commit)
                    .await
                    .expect("write");
                if commit {
                    committed.fetch_add(count, Ordering::SeqCst);
                    sequence += count;
                }
                if next_aggregate {
                    aggregate += 1;
                    sequence = 1;
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    committed.load(Ordering::SeqCst)
}

/// Reads the whole JetStream stream and asserts it holds positions 1..=n, each once, in
/// order, each message's id being its position.
pub async fn assert_stream_holds(jetstream: &async_nats::jetstream::Context, stream: &str, n: i64) {
    let mut stream = jetstream.get_stream(stream).await.expect("stream exists");
    let info = stream.info().await.expect("info").clone();
    assert_eq!(info.state.messages, n as u64, "one message per entry");
    assert_eq!(info.state.last_sequence, n as u64);
    for sequence in 1..=n as u64 {
        let message = stream.get_raw_message(sequence).await.expect("message");
        let position = message
            .headers
            .get(release_pilot_ledger::relay::POSITION_HEADER)
            .map(|v| v.as_str().to_owned());
        assert_eq!(
            position,
            Some(sequence.to_string()),
            "stream sequence {sequence}"
        );
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned());
        assert_eq!(id, Some(sequence.to_string()));
    }
}

/// Waits until the relay's checkpoint reaches `n`.
pub async fn wait_relayed(relay: &release_pilot_ledger::relay::Relay, n: i64, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while relay.checkpoint().await.expect("checkpoint") < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay did not catch up to {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the ledger holds `n` entries (sealed by a running sealer).
pub async fn wait_sealed(pool: &PgPool, n: i64, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while release_pilot_ledger::db::head(&pool.into())
        .await
        .expect("head")
        .0
        < n
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sealer did not catch up to {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
