//! Ledger benchmark: appends through the framework with sealing on, against plain
//! cqrs-es + postgres-es and a raw single-row INSERT, at 1 and 32 writers, measured in the
//! same run on the same server; then sealer, relay and verify throughput.
//!
//! Run: `cargo bench --bench ledger` (needs the local PostgreSQL and NATS; creates and
//! drops its own databases and stream). `LEDGER_BENCH_SECONDS` sets each append
//! measurement's length (default 5), `LEDGER_BENCH_BACKLOG` the sealer/relay/verify
//! backlog (default 100000); `LEDGER_BENCH_ONLY=backlog` skips the append measurements.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::CqrsFramework;
use postgres_es::PostgresEventRepository;
use release_pilot_domain::ids::{Person, RequirementId};
use release_pilot_domain::requirement::{
    RegisterRequirement, Requirement, RequirementCommand, UpdateRequirement,
};
use release_pilot_ledger::metadata::EventMetadata;
use release_pilot_ledger::relay::Relay;
use release_pilot_ledger::sealer::{Sealer, SealerConfig};
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::store::EventStore;
use release_pilot_ledger::testkit::{TestDatabase, TestStream};
use release_pilot_ledger::verify::verify_database;
use sqlx::PgPool;
use tokio::sync::watch;

mod support;
use support::{row, seconds};

const AGGREGATES_PER_WRITER: usize = 10;

fn backlog() -> i64 {
    std::env::var("LEDGER_BENCH_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "bench@example.com".into(),
        actor_roles: vec!["admin".into()],
        command: "UpdateRequirement".into(),
        correlation_id: uuid::Uuid::now_v7(),
        causation_id: None,
        idempotency_key: None,
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
    }
}

fn person() -> Person {
    Person::parse("bench@example.com").expect("valid")
}

fn aggregate_id(writer: usize, n: usize) -> String {
    format!("REQ-{}", writer * 1000 + n + 1)
}

fn register(id: &str) -> RequirementCommand {
    RequirementCommand::Register(RegisterRequirement {
        id: RequirementId::parse(id).expect("valid"),
        title: "benchmark requirement".into(),
        category: "performance".into(),
        actor: person(),
        requested_at: Utc::now(),
    })
}

fn update(n: u64) -> RequirementCommand {
    RequirementCommand::Update(UpdateRequirement {
        title: format!("benchmark requirement, revision {n}"),
        category: "performance".into(),
        actor: person(),
        requested_at: Utc::now(),
    })
}

/// Runs `writers` loops of `op` for the configured time; returns ops/s.
async fn measure<F, Fut>(writers: usize, op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    support::measure(writers, op).await.rate
}

async fn raw_insert(pool: &PgPool, writers: usize) -> f64 {
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY, aggregate_id text NOT NULL, payload json NOT NULL)")
        .execute(pool)
        .await
        .expect("table");
    let payload = serde_json::json!({"RequirementUpdated": {"title": "x".repeat(520), "category": "performance"}});
    let pool = pool.clone();
    measure(writers, move |writer, _| {
        let (pool, payload) = (pool.clone(), payload.clone());
        async move {
            sqlx::query("INSERT INTO bench_raw (aggregate_id, payload) VALUES ($1, $2)")
                .bind(aggregate_id(writer, 0))
                .bind(payload)
                .execute(&pool)
                .await
                .expect("insert");
        }
    })
    .await
}

/// postgres-es's own schema, without the ledger's columns, index and triggers.
async fn plain_schema(pool: &PgPool) {
    for sql in [
        "DROP TABLE IF EXISTS plain_events, plain_snapshots",
        "CREATE TABLE plain_events (aggregate_type text NOT NULL, aggregate_id text NOT NULL, sequence bigint CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL, event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
        "CREATE TABLE plain_snapshots (aggregate_type text NOT NULL, aggregate_id text NOT NULL, last_sequence bigint CHECK (last_sequence >= 0) NOT NULL, current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL, payload json NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id, last_sequence))",
    ] {
        sqlx::query(sql).execute(pool).await.expect("plain schema");
    }
}

type PlainCqrs =
    CqrsFramework<Requirement, PersistedEventStore<PostgresEventRepository, Requirement>>;

async fn plain_cqrs(pool: &PgPool, writers: usize) -> f64 {
    plain_schema(pool).await;
    let repo =
        PostgresEventRepository::new(pool.clone()).with_tables("plain_events", "plain_snapshots");
    let cqrs: Arc<PlainCqrs> = Arc::new(CqrsFramework::new(
        PersistedEventStore::new_snapshot_store(repo, 100),
        vec![],
        (),
    ));
    for writer in 0..writers {
        for n in 0..AGGREGATES_PER_WRITER {
            let id = aggregate_id(writer, n);
            cqrs.execute_with_metadata(&id, register(&id), metadata().to_map())
                .await
                .expect("register");
        }
    }
    measure(writers, move |writer, n| {
        let cqrs = cqrs.clone();
        async move {
            let id = aggregate_id(writer, n as usize % AGGREGATES_PER_WRITER);
            cqrs.execute_with_metadata(&id, update(n), metadata().to_map())
                .await
                .expect("update");
        }
    })
    .await
}

async fn ledger_cqrs(pool: &PgPool, writers: usize, key: &LedgerKey) -> f64 {
    // The aggregate cache is off: this compares the ledger's append path with plain
    // postgres-es like for like (both load the aggregate for every command).
    let store = Arc::new(EventStore::with_cache(pool.clone(), 100, 0));
    for writer in 0..writers {
        for n in 0..AGGREGATES_PER_WRITER {
            let id = aggregate_id(writer, n);
            store
                .execute::<Requirement>(&id, register(&id), &metadata())
                .await
                .expect("register");
        }
    }
    let (stop, shutdown) = watch::channel(false);
    let sealer = Sealer::new(pool.clone(), key.clone(), SealerConfig::default());
    let sealing = tokio::spawn(sealer.run(shutdown));
    let rate = measure(writers, move |writer, n| {
        let store = store.clone();
        async move {
            let id = aggregate_id(writer, n as usize % AGGREGATES_PER_WRITER);
            store
                .execute::<Requirement>(&id, update(n), &metadata())
                .await
                .expect("update");
        }
    })
    .await;
    stop.send(true).expect("stop");
    sealing.await.expect("sealer");
    rate
}

async fn seeded_backlog(pool: &PgPool, n: i64) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'requirement', 'REQ-' || (i % 1000 + 1), i / 1000 + 1, 'RequirementUpdated', '1', \
                json_build_object('RequirementUpdated', json_build_object('title', 'revision ' || i || ' ' || repeat('x', 400), 'category', 'performance', 'updated_by', 'bench@example.com')), \
                json_build_object('actor', 'bench@example.com', 'actor_roles', 'admin', 'command', 'UpdateRequirement', 'correlation_id', gen_random_uuid()::text) \
         FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(n)
    .execute(pool)
    .await
    .expect("seed backlog");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let key = LedgerKey::generate();
        println!("ledger benchmark — {} s per append measurement, backlog {} events", seconds().as_secs(), backlog());
        let only = std::env::var("LEDGER_BENCH_ONLY").unwrap_or_default();
        println!();
        println!("| measure | per second | ratio |");
        println!("|---|---:|---|");
        for writers in [1usize, 32].into_iter().filter(|_| only != "backlog") {
            let db = TestDatabase::create_with(40).await;
            let raw = raw_insert(&db.pool, writers).await;
            let plain = plain_cqrs(&db.pool, writers).await;
            let ledger = ledger_cqrs(&db.pool, writers, &key).await;
            row(&format!("raw single-row INSERT, {writers} writer(s)"), raw, None);
            row(&format!("plain cqrs-es + postgres-es command, {writers} writer(s)"), plain, Some(("raw INSERT", raw)));
            row(&format!("ledger command with sealing on, {writers} writer(s)"), ledger, Some(("plain cqrs-es", plain)));
        }

        let db = TestDatabase::create_with(8).await;
        let n = backlog();
        seeded_backlog(&db.pool, n).await;
        let started = Instant::now();
        let sealer = Sealer::new(db.pool.clone(), key.clone(), SealerConfig::default());
        let mut sealed = 0;
        while sealed < n {
            sealed += sealer.seal_batch().await.expect("seal").sealed as i64;
        }
        let seal_rate = n as f64 / started.elapsed().as_secs_f64();

        let test_stream = TestStream::new();
        let relay = Relay::new(db.pool.clone(), test_stream.jetstream().await, test_stream.config.clone());
        let mut stream = relay.ensure_stream().await.expect("stream");
        let started = Instant::now();
        let mut relayed = 0;
        while relayed < n {
            relayed += relay.relay_batch(&mut stream).await.expect("relay") as i64;
        }
        let relay_rate = n as f64 / started.elapsed().as_secs_f64();

        // Baseline: the same rows streamed to this process, decoded, not checked.
        let scan_started = Instant::now();
        let mut rows = sqlx::query(
            "SELECT l.position, l.hash, e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, \
             e.event_version, e.payload::text AS payload, e.metadata::text AS metadata, e.recorded_at \
             FROM ledger l JOIN events e ON e.global_position = l.global_position ORDER BY l.position",
        )
        .fetch(&db.pool);
        let mut scanned = 0i64;
        let mut bytes = 0usize;
        while let Some(row) = futures::TryStreamExt::try_next(&mut rows).await.expect("scan") {
            let payload: String = sqlx::Row::try_get(&row, "payload").expect("payload");
            bytes += payload.len();
            scanned += 1;
        }
        drop(rows);
        assert_eq!(scanned, n);
        let scan_rate = scanned as f64 / scan_started.elapsed().as_secs_f64();

        // The CPU part of verification alone: canonical JSON + SHA-256 of entries in memory.
        let sample = release_pilot_ledger::db::entries_after(&db.db(), 0, 20_000).await.expect("entries");
        let hash_started = Instant::now();
        let mut previous = release_pilot_ledger::entry::GENESIS;
        for (entry, _) in &sample {
            previous = entry.chain_hash(&previous).expect("hash");
        }
        let hash_rate = sample.len() as f64 / hash_started.elapsed().as_secs_f64();
        let _ = bytes;
        let started = Instant::now();
        let report = verify_database(&db.db(), &key.verifying_key(), |_| {})
            .await
            .expect("runs")
            .expect("verifies");
        assert_eq!(report.entries, n);
        let verify_rate = n as f64 / started.elapsed().as_secs_f64();
        row("raw ordered scan of the ledger joined to events, streamed to the client", scan_rate, None);
        row("canonicalise + hash in memory (no database)", hash_rate, Some(("scan", scan_rate)));
        row("sealer (backlog, batches of 2000)", seal_rate, Some(("scan", scan_rate)));
        row("relay to JetStream (backlog, pipelined batches of 1000)", relay_rate, Some(("scan", scan_rate)));
        row("verify (chain + checkpoints)", verify_rate, Some(("scan", scan_rate)));
    });
}
