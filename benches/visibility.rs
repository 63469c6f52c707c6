//! Command accepted → visible in the query API: releases are created over HTTP at a fixed
//! rate (`VISIBILITY_RATE`, default 1000 per second) for `BENCH_SECONDS` (default 5)
//! while the sealer and every projection run as `release-pilot serve` runs them; every
//! tenth release is then read from the query API (`GET /v1/releases/{id}`) every
//! millisecond until it is there. Latency = first found − command answered.
//!
//! Run: `cargo bench --bench visibility` (local PostgreSQL; its own database).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use release_pilot_command_service::{App, AppState, CommandConfig};
use release_pilot_domain::roles::Role;
use release_pilot_ledger::sealer::{Sealer, SealerConfig};
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::TestDatabase;
use release_pilot_projector::catalogue::AnyProjection;
use release_pilot_projector::Projector;
use release_pilot_query_api::{QueryConfig, QueryState};
use serde_json::{json, Value};
use tokio::sync::watch;

mod support;
use support::seconds;

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let rate: u64 = std::env::var("VISIBILITY_RATE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let db = TestDatabase::create_with(48).await;
        let unlimited = std::num::NonZeroU32::new(1_000_000).expect("non-zero");
        let state = AppState::new(
            db.pool.clone(),
            CommandConfig {
                rate_per_second: unlimited,
                rate_burst: unlimited,
                ..CommandConfig::default()
            },
        );
        let app = App::build("127.0.0.1:0".parse().expect("addr"), state)
            .await
            .expect("bind");
        let command = format!("http://{}", app.local_addr().expect("addr"));
        tokio::spawn(app.run(std::future::pending()));
        let query_app = release_pilot_query_api::App::build(
            "127.0.0.1:0".parse().expect("addr"),
            QueryState::new(
                db.pool.clone(),
                QueryConfig {
                    rate_per_second: unlimited,
                    rate_burst: unlimited,
                    ..QueryConfig::default()
                },
            ),
        )
        .await
        .expect("bind");
        let query = format!("http://{}", query_app.local_addr().expect("addr"));
        tokio::spawn(query_app.run(std::future::pending()));
        let (_stop, shutdown) = watch::channel(false);
        tokio::spawn(
            Sealer::new(db.pool.clone(), LedgerKey::generate(), SealerConfig::default())
                .run(shutdown.clone()),
        );
        for projection in AnyProjection::ALL {
            tokio::spawn(
                Projector::new(db.pool.clone(), projection, 1000)
                    .run(shutdown.clone(), Duration::from_millis(10)),
            );
        }
        let token = release_pilot_command_service::auth::TokenStore::new(db.pool.clone())
            .create(
                &release_pilot_domain::ids::Person::parse("ci-bot").expect("valid"),
                &std::collections::BTreeSet::from([Role::Ci]),
            )
            .await
            .expect("token")
            .1;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("client");

        let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let total = rate * seconds().as_secs();
        let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for n in 0..total {
            ticker.tick().await;
            let (client, token, latencies, failures) =
                (client.clone(), token.clone(), latencies.clone(), failures.clone());
            let url = format!("{command}/v1/releases");
            let query = query.clone();
            tasks.push(tokio::spawn(async move {
                let body = json!({"service": format!("svc-{}", n % 50), "version": format!("1.0.{n}"),
                                  "commits": [{"sha": format!("{:040x}", n + 1), "message": "fix: x", "author": "dev@example.com"}]});
                let response = client.post(&url).bearer_auth(&token).json(&body).send().await.expect("post");
                let answered = Instant::now();
                let created: Value = response.json().await.expect("json");
                let Some(id) = created["release_id"].as_str() else {
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return;
                };
                // Every tenth command is followed until the query API shows it.
                if n % 10 != 0 {
                    return;
                }
                let url = format!("{query}/v1/releases/{id}");
                loop {
                    let response = client.get(&url).bearer_auth(&token).send().await.expect("get");
                    if response.status().is_success() {
                        latencies.lock().expect("lock").push(answered.elapsed());
                        return;
                    }
                    if answered.elapsed() > Duration::from_secs(60) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }));
        }
        for task in tasks {
            task.await.expect("command");
        }
        let achieved = total as f64 / started.elapsed().as_secs_f64();
        let mut latencies = latencies.lock().expect("lock").clone();
        latencies.sort();
        let failed = failures.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "visibility benchmark — releases created at {rate}/s for {} s (achieved {achieved:.0}/s), {failed} refused, {} followed",
            seconds().as_secs(),
            latencies.len()
        );
        println!();
        println!("| measure | p50 | p99 | max |");
        println!("|---|---:|---:|---:|");
        println!(
            "| command answered → visible in `GET /v1/releases` | {:.1} ms | {:.1} ms | {:.1} ms |",
            quantile(&latencies, 0.5).as_secs_f64() * 1000.0,
            quantile(&latencies, 0.99).as_secs_f64() * 1000.0,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
        );
    });
}
