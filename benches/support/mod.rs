//! What the benchmarks share: a fixed-duration load loop with per-operation latencies,
//! and a table row with a ratio against a baseline measured in the same run.

#![allow(dead_code)] // Each bench uses part of it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The result of one measurement.
pub struct Measured {
    /// Operations per second.
    pub rate: f64,
    /// Latencies of every operation, sorted.
    pub latencies: Vec<Duration>,
}

impl Measured {
    /// The latency at quantile `q` (0-1).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[index]
    }
}

/// Seconds each measurement runs (`BENCH_SECONDS`, default 5).
pub fn seconds() -> Duration {
    let s = std::env::var("BENCH_SECONDS")
        .or_else(|_| std::env::var("LEDGER_BENCH_SECONDS"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    Duration::from_secs(s)
}

/// Runs `workers` loops of `op(worker, n)` for [`seconds`]; returns the rate and latencies.
pub async fn measure<F, Fut>(workers: usize, op: F) -> Measured
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (done, op) = (done.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                let began = Instant::now();
                op(worker, n).await;
                latencies.push(began.elapsed());
                n += 1;
            }
            latencies
        }));
    }
    tokio::time::sleep(seconds()).await;
    done.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("worker"));
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    Measured { rate, latencies }
}

/// Prints a table row: the rate and its ratio to a baseline.
pub fn row(name: &str, rate: f64, baseline: Option<(&str, f64)>) {
    match baseline {
        Some((label, base)) => println!("| {name} | {rate:.0} | {:.2} × {label} |", rate / base),
        None => println!("| {name} | {rate:.0} | baseline |"),
    }
}

async fn token(
    pool: &sqlx::PgPool,
    subject: &str,
    role: release_pilot_domain::roles::Role,
) -> String {
    release_pilot_command_service::auth::TokenStore::new(pool.clone())
        .create(
            &release_pilot_domain::ids::Person::parse(subject).expect("valid"),
            &std::collections::BTreeSet::from([role]),
        )
        .await
        .expect("token")
        .1
}

/// Sends `histories` generated histories (six services over 140 days each, about 5 900
/// events) through an in-process command API concurrently, then seals the ledger;
/// returns the ledger's head.
pub async fn seed_histories(
    pool: &sqlx::PgPool,
    histories: u64,
    key: &release_pilot_ledger::signing::LedgerKey,
) -> i64 {
    use release_pilot_client::history::{generate, HistoryConfig, Tokens, AUTHOR_APPROVER};
    use release_pilot_command_service::{App, AppState, CommandConfig};
    use release_pilot_domain::roles::Role;
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
        let (api, tokens) = (release_pilot_client::Api::new(base.clone()), tokens.clone());
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
    let head =
        release_pilot_ledger::testkit::seal_everything(pool, key, Duration::from_secs(600)).await;
    eprintln!(
        "seeded {head} events in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    head
}
