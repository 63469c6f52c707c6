//! Projection rebuild benchmark: how fast `replay` rebuilds the read models from the
//! ledger, against a raw sequential scan of the same ledger measured in the same run.
//!
//! The ledger holds generated histories (`PROJECTION_BENCH_HISTORIES`, default 8, each
//! about 5 700 events: six services over 140 days) sent through the command API
//! concurrently, then sealed. The baseline is a raw sequential scan: every joined ledger
//! row streamed to the client in position order; the projector's own batched, decoded
//! read of the same entries is shown beside it.
//!
//! Run: `cargo bench --bench projections` (local PostgreSQL; its own database, dropped
//! afterwards).

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use release_pilot_ledger::db::entries_after;
use release_pilot_ledger::testkit::TestDatabase;
use release_pilot_projector::catalogue::AnyProjection;
use release_pilot_projector::replay::replay;
use release_pilot_projector::Projection;

mod support;
use support::row;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let histories = std::env::var("PROJECTION_BENCH_HISTORIES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8);
        let db = TestDatabase::create_with(40).await;
        let key = release_pilot_ledger::signing::LedgerKey::generate();
        let head = support::seed_histories(&db.pool, histories, &key).await;
        println!("projection rebuild benchmark — {head} ledger entries from {histories} generated histories");
        println!();
        println!("| measure | entries per second | ratio |");
        println!("|---|---:|---|");

        // The raw scan: every joined ledger row streamed to the client in position order,
        // as text, nothing decoded.
        let started = Instant::now();
        let mut rows = sqlx::query(
            "SELECT l.position, l.hash, e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, \
             e.event_version, e.payload::text, e.metadata::text, e.recorded_at FROM ledger l \
             JOIN events e ON e.global_position = l.global_position ORDER BY l.position",
        )
        .fetch(&db.pool);
        let mut streamed = 0_i64;
        while rows.try_next().await.expect("scan").is_some() {
            streamed += 1;
        }
        drop(rows);
        let scan = streamed as f64 / started.elapsed().as_secs_f64();

        let started = Instant::now();
        let mut position = 0;
        loop {
            let batch = entries_after(&db.db(), position, 5000).await.expect("read");
            match batch.last() {
                Some((entry, _)) => position = entry.position,
                None => break,
            }
        }
        let decoded = head as f64 / started.elapsed().as_secs_f64();
        row("raw sequential scan: every joined ledger row streamed in order", scan, None);
        row("the projector's read: entries in batches of 5000, decoded", decoded, Some(("raw scan", scan)));

        let mut total = Duration::ZERO;
        for projection in AnyProjection::ALL {
            let started = Instant::now();
            replay(&db.db(), projection, 5000, |_, _| {}).await.expect("replay");
            let took = started.elapsed();
            total += took;
            row(
                &format!("replay {}", projection.name()),
                head as f64 / took.as_secs_f64(),
                Some(("raw scan", scan)),
            );
        }
        row(
            "replay all six, one after another",
            head as f64 / total.as_secs_f64(),
            Some(("raw scan", scan)),
        );
        let started = Instant::now();
        let tasks: Vec<_> = AnyProjection::ALL
            .into_iter()
            .map(|projection| {
                let pool = db.pool.clone();
                tokio::spawn(async move { replay(&pool.clone().into(), projection, 5000, |_, _| {}).await.expect("replay") })
            })
            .collect();
        for task in tasks {
            task.await.expect("replay");
        }
        row(
            "replay all six concurrently",
            head as f64 / started.elapsed().as_secs_f64(),
            Some(("raw scan", scan)),
        );
    });
}
