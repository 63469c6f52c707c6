//! Invariant 6 for projections: checkpoint in the same transaction, positions at or below
//! it ignored — so crashes lose nothing, redeliveries double nothing, and an incremental
//! build equals a rebuild from position 0.

mod common;

use std::time::Duration;

use rand::Rng;
use release_pilot_ledger::db::entries_after;
use release_pilot_ledger::entry::Entry;
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::{seal_everything, TestDatabase};
use release_pilot_projector::audit_index::AuditIndex;
use release_pilot_projector::metrics::ProjectorMetrics;
use release_pilot_projector::{Projection, ProjectionError, Projector, RunError};
use sqlx::PgPool;
use tokio::sync::watch;

/// Appends `count` events by several actors over a few aggregates.
async fn append(pool: &PgPool, from: i64, count: i64) {
    for n in from..from + count {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ($1, $2, $3, $4, '1', $5, $6)",
        )
        .bind(if n % 3 == 0 { "release" } else { "environment" })
        .bind(format!("agg-{}", n % 11))
        .bind(n / 11 + 1)
        .bind(if n % 2 == 0 { "GateEvaluated" } else { "HealthSampled" })
        .bind(serde_json::json!({"E": {"n": n, "poison": n == 77}}))
        .bind(serde_json::json!({"actor": format!("user-{}", n % 5), "command": "Bench"}))
        .execute(pool)
        .await
        .expect("append");
    }
}

/// The audit index as text rows, in position order.
async fn audit_rows(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT row(a.*)::text FROM rm_audit_index a ORDER BY position")
        .fetch_all(pool)
        .await
        .expect("rows")
}

/// Rebuilds the audit index from position 0 and returns it; the incremental rows are
/// restored first, so the two can be compared.
async fn rebuilt(pool: &PgPool) -> Vec<String> {
    common::rebuild_from_zero(pool, AuditIndex, "rm_audit_index", 500).await;
    audit_rows(pool).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_build_equals_a_rebuild_from_position_zero() {
    let db = TestDatabase::create().await;
    let key = LedgerKey::generate();
    let projector = Projector::new(db.pool.clone(), AuditIndex, 37);
    let mut written = 0;
    for round in 0..10 {
        let count = 100 + round * 17;
        append(&db.pool, written, count).await;
        written += count;
        seal_everything(&db.pool, &key, Duration::from_secs(30)).await;
        // Apply part of the backlog: the build interleaves with the writes.
        for _ in 0..rand::rng().random_range(1..5) {
            projector.apply_next().await.expect("apply");
        }
    }
    while projector.apply_next().await.expect("apply") > 0 {}
    let incremental = audit_rows(&db.pool).await;
    assert_eq!(incremental.len() as i64, written);
    assert_eq!(projector.checkpoint().await.expect("checkpoint"), written);
    assert_eq!(rebuilt(&db.pool).await, incremental);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_at_random_points_ends_equal_to_a_rebuild() {
    let db = TestDatabase::create().await;
    let key = LedgerKey::generate();
    // The writer is another process with its own connections: a task aborted in the
    // middle of a transaction can leave its pooled connection inside that transaction,
    // so the killed projectors must not share a pool with a writer expecting autocommit.
    let writer_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&db.url)
        .await
        .expect("writer pool");
    let writer_key = key.clone();
    let writer = tokio::spawn(async move {
        for round in 0..20 {
            append(&writer_pool, round * 150, 150).await;
            seal_everything(&writer_pool, &writer_key, Duration::from_secs(30)).await;
        }
    });
    let (_keep, shutdown) = watch::channel(false);
    let mut kills = 0;
    while !writer.is_finished() || kills < 20 {
        // Each run is a process: its own connections, closed when it is killed (a task
        // aborted inside a transaction would otherwise hand its connection back still
        // inside that transaction).
        let process = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&db.url)
            .await
            .expect("the run's connections");
        let task = tokio::spawn(
            Projector::new(process.clone(), AuditIndex, 53)
                .run(shutdown.clone(), Duration::from_millis(2)),
        );
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(3..40))).await;
        task.abort();
        let _ = task.await;
        process.close().await;
        kills += 1;
    }
    writer.await.expect("writer");
    let projector = Projector::new(db.pool.clone(), AuditIndex, 500);
    // A killed run may still hold the lease until its connection is reused: wait it out.
    loop {
        match projector.apply_next().await {
            Ok(0) => break,
            Ok(_) => {}
            Err(RunError::Busy) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(error) => panic!("catch up: {error}"),
        }
    }
    let incremental = audit_rows(&db.pool).await;
    let head = release_pilot_ledger::db::head(&db.db())
        .await
        .expect("head")
        .0;
    let missing: Vec<i64> = sqlx::query_scalar(
        "SELECT position FROM ledger WHERE position NOT IN (SELECT position FROM rm_audit_index) ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("missing");
    assert_eq!(
        (incremental.len(), head, &missing),
        (3000, 3000, &vec![]),
        "checkpoint {}",
        projector.checkpoint().await.expect("checkpoint")
    );
    assert_eq!(rebuilt(&db.pool).await, incremental);
}

#[tokio::test]
async fn redelivered_entries_change_nothing() {
    let db = TestDatabase::create().await;
    append(&db.pool, 0, 40).await;
    seal_everything(&db.pool, &LedgerKey::generate(), Duration::from_secs(30)).await;
    let entries: Vec<Entry> = entries_after(&db.db(), 0, 100)
        .await
        .expect("entries")
        .into_iter()
        .map(|(entry, _)| entry)
        .collect();
    let projector = Projector::new(db.pool.clone(), AuditIndex, 100);
    assert_eq!(projector.apply(&entries[..25]).await.expect("first"), 25);
    let before = audit_rows(&db.pool).await;
    // The same messages again, then an overlapping batch.
    assert_eq!(projector.apply(&entries[..25]).await.expect("again"), 0);
    assert_eq!(audit_rows(&db.pool).await, before);
    assert_eq!(projector.apply(&entries[10..]).await.expect("overlap"), 15);
    assert_eq!(audit_rows(&db.pool).await.len(), 40);
    assert_eq!(projector.checkpoint().await.expect("checkpoint"), 40);
}

/// A projection that cannot apply entries marked `poison`.
struct Picky;

impl Projection for Picky {
    fn name(&self) -> &'static str {
        "picky"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    async fn apply(
        &self,
        _tx: &mut release_pilot_ledger::db::Tx,
        entry: &Entry,
    ) -> Result<(), ProjectionError> {
        if entry.payload["E"]["poison"] == true {
            return Err(ProjectionError::Poison(format!(
                "entry {} is poison",
                entry.position
            )));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_poison_entry_stops_its_projection_and_the_others_go_on() {
    let db = TestDatabase::create().await;
    append(&db.pool, 0, 120).await;
    let total = seal_everything(&db.pool, &LedgerKey::generate(), Duration::from_secs(30)).await;
    let poison: i64 = sqlx::query_scalar(
        "SELECT l.position FROM ledger l JOIN events e USING (global_position) \
         WHERE (e.payload -> 'E' ->> 'poison')::boolean",
    )
    .fetch_one(&db.pool)
    .await
    .expect("the poison entry");

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = ProjectorMetrics::register(&mut registry);
    let picky = Projector::new(db.pool.clone(), Picky, 1000).with_metrics(metrics.clone());
    let stopped = picky.apply_next().await.expect_err("stops");
    assert!(
        matches!(stopped, RunError::Stopped { position, .. } if position == poison),
        "{stopped}"
    );
    // Nothing of the failed batch is kept, and it stays stopped with its reason.
    assert_eq!(picky.checkpoint().await.expect("checkpoint"), 0);
    assert!(matches!(
        picky.apply_next().await,
        Err(RunError::Stopped { .. })
    ));
    let (failed_at, failure): (Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT failed_at_position, failure FROM projection_checkpoints WHERE projection = 'picky'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("status");
    assert_eq!(failed_at, Some(poison));
    assert!(failure.is_some_and(|f| f.contains("poison")));

    let audit = Projector::new(db.pool.clone(), AuditIndex, 1000).with_metrics(metrics);
    while audit.apply_next().await.expect("audit goes on") > 0 {}
    assert_eq!(audit.checkpoint().await.expect("checkpoint"), total);
    assert_eq!(audit.measure_lag().await.expect("lag"), 0);
    assert_eq!(picky.measure_lag().await.expect("lag"), total);

    // The stop is visible to Prometheus, with what was applied and how far behind each is.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for line in [
        "projection_stopped{projection=\"picky\"} 1".to_owned(),
        "projection_stopped{projection=\"audit_index\"} 0".to_owned(),
        format!("projection_events_applied_total{{projection=\"audit_index\"}} {total}"),
        format!("projection_lag_positions{{projection=\"picky\"}} {total}"),
        "projection_lag_positions{projection=\"audit_index\"} 0".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    assert!(text.contains("projection_apply_duration_seconds_count{projection=\"audit_index\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_swaps_in_rebuilt_tables_while_the_live_projector_keeps_running() {
    let db = TestDatabase::create().await;
    let key = LedgerKey::generate();
    append(&db.pool, 0, 400).await;
    seal_everything(&db.pool, &key, Duration::from_secs(30)).await;
    // The live projector runs throughout, as `release-pilot projector` would.
    let (stop, shutdown) = watch::channel(false);
    let live = tokio::spawn(
        Projector::new(db.pool.clone(), AuditIndex, 25).run(shutdown, Duration::from_millis(2)),
    );
    // Let it build part of the read model, then damage the live table: a replay must
    // bring back what is missing.
    while Projector::new(db.pool.clone(), AuditIndex, 1)
        .checkpoint()
        .await
        .expect("checkpoint")
        < 100
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sqlx::query("DELETE FROM rm_audit_index WHERE position BETWEEN 10 AND 19")
        .execute(&db.pool)
        .await
        .expect("damage");
    // Writes go on during the replay.
    let writer_pool = db.pool.clone();
    let writer_key = key.clone();
    let writer = tokio::spawn(async move {
        for round in 1..5 {
            append(&writer_pool, 400 + (round - 1) * 100, 100).await;
            seal_everything(&writer_pool, &writer_key, Duration::from_secs(30)).await;
        }
    });
    let mut reports = Vec::new();
    let done =
        release_pilot_projector::replay::replay(&db.db(), AuditIndex, 50, |applied, head| {
            reports.push((applied, head));
        })
        .await
        .expect("replay");
    assert!(
        reports.len() >= 8,
        "progress is reported per batch: {reports:?}"
    );
    let (applied, head) = reports.last().copied().unwrap_or_default();
    assert!(applied >= head && head >= 400, "{reports:?}");
    assert_eq!(done.applied, applied);
    writer.await.expect("writer");
    // The live projector carries on from the swapped-in checkpoint.
    loop {
        let checkpoint = Projector::new(db.pool.clone(), AuditIndex, 1)
            .checkpoint()
            .await
            .expect("checkpoint");
        if checkpoint == 800 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(true);
    live.await.expect("live projector");
    let rows = audit_rows(&db.pool).await;
    assert_eq!(rows.len(), 800, "nothing missing, nothing twice");
    let schemas: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'rp_replay_%'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("schemas");
    assert_eq!(schemas, 0, "the replay cleans up after itself");
    assert_eq!(rebuilt(&db.pool).await, rows);
}

#[tokio::test]
async fn a_replay_that_cannot_reach_the_head_swaps_nothing_in() {
    let db = TestDatabase::create().await;
    append(&db.pool, 0, 30).await;
    seal_everything(&db.pool, &LedgerKey::generate(), Duration::from_secs(30)).await;
    let projector = Projector::new(db.pool.clone(), AuditIndex, 100);
    while projector.apply_next().await.expect("build") > 0 {}
    let before = audit_rows(&db.pool).await;
    // Batches of no entries never get anywhere: the live tables must survive it.
    let failure = release_pilot_projector::replay::replay(&db.db(), AuditIndex, 0, |_, _| {})
        .await
        .expect_err("a replay that rebuilt nothing");
    assert!(
        matches!(
            failure,
            RunError::Incomplete {
                rebuilt: 0,
                head: 30
            }
        ),
        "{failure}"
    );
    assert_eq!(audit_rows(&db.pool).await, before);
    assert_eq!(projector.checkpoint().await.expect("checkpoint"), 30);
}
