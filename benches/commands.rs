//! Command API benchmark: HTTP commands per second and p50/p99 latency at 32 connections,
//! against two baselines at the same concurrency measured in the same run — a
//! command-shaped SQL transaction (load an aggregate's events, append one) and a raw
//! single-row INSERT.
//!
//! Run: `cargo bench --bench commands` (local PostgreSQL; its own database, dropped
//! afterwards), or `BENCH_BACKEND=sqlite cargo bench --bench commands` for the embedded
//! backend (a fresh file; the baselines then run on SQLite too). `BENCH_SECONDS` sets
//! each measurement's length (default 5). The HTTP client, the server, the sealer and the
//! database share the machine's cores.

use std::collections::BTreeSet;
use std::sync::Arc;

use release_pilot_command_service::auth::TokenStore;
use release_pilot_command_service::{App, AppState, CommandConfig};
use release_pilot_domain::ids::Person;
use release_pilot_domain::roles::Role;
use release_pilot_ledger::db::Db;
use release_pilot_ledger::sealer::{Sealer, SealerConfig};
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::{Backend, TestDb};
use release_pilot_ledger::{on, on_tx};
use serde_json::json;
use tokio::sync::watch;

mod support;
use support::{measure, seconds, Measured};

const CONNECTIONS: usize = 32;
/// Events per aggregate before the measurement, as in DESIGN.md's command-shaped baseline.
const HISTORY: i64 = 10;

fn latency(m: &Measured) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms",
        m.quantile(0.5).as_secs_f64() * 1000.0,
        m.quantile(0.99).as_secs_f64() * 1000.0
    )
}

async fn raw_insert(db: &Db) -> Measured {
    on!(db, |pool, lite| sqlx::query(if lite {
        "CREATE TABLE bench_raw (id INTEGER PRIMARY KEY AUTOINCREMENT, aggregate_id TEXT NOT NULL, payload TEXT NOT NULL)"
    } else {
        "CREATE TABLE bench_raw (id bigserial PRIMARY KEY, aggregate_id text NOT NULL, payload json NOT NULL)"
    })
    .execute(pool)
    .await
    .map(drop))
    .expect("table");
    let db = db.clone();
    measure(CONNECTIONS, move |worker, n| {
        let db = db.clone();
        async move {
            on!(&db, |pool| sqlx::query(
                "INSERT INTO bench_raw (aggregate_id, payload) VALUES ($1, $2)"
            )
            .bind(format!("w{worker}"))
            .bind(json!({"GateEvaluated": {"gate": "testing", "n": n, "pad": "x".repeat(400)}}))
            .execute(pool)
            .await
            .map(drop))
            .expect("insert");
        }
    })
    .await
}

/// BEGIN; read the aggregate's events; append one; COMMIT — what a command costs in SQL
/// (on SQLite it takes the write lock first, as every read-then-write one does).
async fn command_shaped(db: &Db) -> Measured {
    on!(db, |pool, lite| sqlx::query(if lite {
        "CREATE TABLE bench_events (aggregate_id TEXT NOT NULL, sequence INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (aggregate_id, sequence))"
    } else {
        "CREATE TABLE bench_events (aggregate_id text NOT NULL, sequence bigint NOT NULL, payload json NOT NULL, PRIMARY KEY (aggregate_id, sequence))"
    })
    .execute(pool)
    .await
    .map(drop))
    .expect("table");
    for worker in 0..CONNECTIONS {
        for sequence in 1..=HISTORY {
            on!(db, |pool| sqlx::query(
                "INSERT INTO bench_events VALUES ($1, $2, $3)"
            )
            .bind(format!("w{worker}"))
            .bind(sequence)
            .bind(json!({"GateEvaluated": {"s": sequence, "pad": "x".repeat(400)}}))
            .execute(pool)
            .await
            .map(drop))
            .expect("history");
        }
    }
    let db = db.clone();
    measure(CONNECTIONS, move |worker, n| {
        let db = db.clone();
        async move {
            let id = format!("w{worker}");
            let mut tx = db.begin().await.expect("begin");
            let events: Vec<String> = on_tx!(&mut tx, |conn, lite| sqlx::query_scalar(if lite {
                "SELECT payload FROM bench_events WHERE aggregate_id = $1 ORDER BY sequence"
            } else {
                "SELECT payload::text FROM bench_events WHERE aggregate_id = $1 ORDER BY sequence"
            })
            .bind(&id)
            .fetch_all(&mut *conn)
            .await)
            .expect("load");
            on_tx!(&mut tx, |conn| sqlx::query(
                "INSERT INTO bench_events VALUES ($1, $2, $3)"
            )
            .bind(&id)
            .bind(events.len() as i64 + 1)
            .bind(json!({"GateEvaluated": {"n": n, "pad": "x".repeat(400)}}))
            .execute(&mut *conn)
            .await
            .map(drop))
            .expect("append");
            tx.commit().await.expect("commit");
        }
    })
    .await
}

async fn http_commands(db: &Db) -> Measured {
    let state = AppState::new(
        db.clone(),
        CommandConfig {
            rate_per_second: std::num::NonZeroU32::new(1_000_000).expect("non-zero"),
            rate_burst: std::num::NonZeroU32::new(1_000_000).expect("non-zero"),
            ..CommandConfig::default()
        },
    );
    let app = App::build("127.0.0.1:0".parse().expect("addr"), state)
        .await
        .expect("bind");
    let base = format!("http://{}", app.local_addr().expect("addr"));
    let (stop, shutdown) = watch::channel(false);
    let mut server_stop = shutdown.clone();
    tokio::spawn(app.run(async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    let sealing = tokio::spawn(
        Sealer::new(db.clone(), LedgerKey::generate(), SealerConfig::default()).run(shutdown),
    );
    let (_, token) = TokenStore::new(db.clone())
        .create(
            &Person::parse("bench-ci").expect("valid"),
            &BTreeSet::from([Role::Ci]),
        )
        .await
        .expect("token");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");
    // One release per connection, each with HISTORY gate results already recorded.
    let mut releases = Vec::new();
    for worker in 0..CONNECTIONS {
        let created: serde_json::Value = client
            .post(format!("{base}/v1/releases"))
            .bearer_auth(&token)
            .json(&json!({"service": format!("svc-{worker}"), "commits": [{"sha": format!("{:040x}", worker + 1), "message": "feat: bench", "author": "dev"}]}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        let id = created["release_id"].as_str().expect("id").to_owned();
        for _ in 0..HISTORY - 1 {
            gate(&client, &base, &token, &id).await;
        }
        releases.push(id);
    }
    let (client, base, token, releases) =
        (client, Arc::new(base), Arc::new(token), Arc::new(releases));
    let measured = measure(CONNECTIONS, move |worker, _| {
        let (client, base, token, releases) = (
            client.clone(),
            base.clone(),
            token.clone(),
            releases.clone(),
        );
        async move { gate(&client, &base, &token, &releases[worker]).await }
    })
    .await;
    stop.send(true).expect("stop");
    let _ = sealing.await;
    measured
}

async fn gate(client: &reqwest::Client, base: &str, token: &str, release: &str) {
    let response = client
        .post(format!("{base}/v1/releases/{release}/gates"))
        .bearer_auth(token)
        .json(&json!({"gate": "testing", "evidence": {"tests_passed": 120, "tests_failed": 0, "coverage_pct": 93.5}}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let backend = match std::env::var("BENCH_BACKEND").as_deref() {
            Ok("sqlite") => Backend::Sqlite,
            _ => Backend::Postgres,
        };
        let test = TestDb::create_with(backend, 48).await;
        println!(
            "command benchmark ({}) — {CONNECTIONS} connections, {} s per measurement",
            test.db.backend(),
            seconds().as_secs()
        );
        println!();
        let raw = raw_insert(&test.db).await;
        let shaped = command_shaped(&test.db).await;
        let http = http_commands(&test.db).await;
        println!("| measure | per second | ratio | latency |");
        println!("|---|---:|---|---|");
        println!("| raw single-row INSERT | {:.0} | baseline | {} |", raw.rate, latency(&raw));
        println!("| command-shaped SQL transaction (load {HISTORY} events, append one) | {:.0} | {:.2} × raw INSERT | {} |", shaped.rate, shaped.rate / raw.rate, latency(&shaped));
        println!("| HTTP command (record a gate; sealer on) | {:.0} | {:.2} × command-shaped, {:.2} × raw INSERT | {} |", http.rate, http.rate / shaped.rate, http.rate / raw.rate, latency(&http));
    });
}
