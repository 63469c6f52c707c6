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

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use release_pilot_client::history::{generate, HistoryConfig, Tokens, AUTHOR_APPROVER};
use release_pilot_client::Api;
use release_pilot_command_service::auth::TokenStore;
use release_pilot_command_service::{App, AppState, CommandConfig};
use release_pilot_domain::ids::Person;
use release_pilot_domain::roles::Role;
use release_pilot_ledger::db::entries_after;
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::{seal_everything, TestDatabase};
use release_pilot_projector::catalogue::AnyProjection;
use release_pilot_projector::replay::replay;
use release_pilot_projector::Projection;
use sqlx::PgPool;

mod support;
use support::row;

async fn token(pool: &PgPool, subject: &str, role: Role) -> String {
    TokenStore::new(pool.clone())
        .create(
            &Person::parse(subject).expect("valid"),
            &BTreeSet::from([role]),
        )
        .await
        .expect("token")
        .1
}

async fn seed(pool: &PgPool, histories: u64) -> i64 {
    let config = CommandConfig {
        rate_per_second: std::num::NonZeroU32::new(1_000_000).expect("non-zero"),
        rate_burst: std::num::NonZeroU32::new(1_000_000).expect("non-zero"),
        ..CommandConfig::default()
    };
    let app = App::build(
        "127.0.0.1:0".parse().expect("addr"),
        AppState::new(pool.clone(), config),
    )
    .await
    .expect("bind");
    let base = format!("http://{}", app.local_addr().expect("addr"));
    tokio::spawn(app.run(std::future::pending::<()>()));
    let tokens = Tokens {
        ci: token(pool, "ci-bot", Role::Ci).await,
        approvers: [
            token(pool, "ann@example.com", Role::Approver).await,
            token(pool, "bob@example.com", Role::Approver).await,
        ],
        author_approver: token(pool, AUTHOR_APPROVER, Role::Approver).await,
        incident_commander: token(pool, "ivy@example.com", Role::IncidentCommander).await,
        admin: token(pool, "root@example.com", Role::Admin).await,
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for h in 0..histories {
        let (api, tokens) = (Api::new(base.clone()), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let services: Vec<String> = [
                "checkout", "payments", "search", "catalog", "accounts", "billing",
            ]
            .iter()
            .map(|s| format!("{s}-{h}"))
            .collect();
            let config = HistoryConfig {
                services,
                days: 140,
                start: "2026-01-05T00:00:00Z".parse().expect("date"),
                seed: h,
            };
            generate(&api, &tokens, &config, |_| {})
                .await
                .expect("history")
        }));
    }
    for task in tasks {
        task.await.expect("history");
    }
    let head = seal_everything(pool, &LedgerKey::generate(), Duration::from_secs(600)).await;
    eprintln!(
        "seeded {head} events in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    head
}

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
        let head = seed(&db.pool, histories).await;
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
            let batch = entries_after(&db.pool, position, 5000).await.expect("read");
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
            replay(&db.pool, projection, 5000, |_, _| {}).await.expect("replay");
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
                tokio::spawn(async move { replay(&pool, projection, 5000, |_, _| {}).await.expect("replay") })
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
