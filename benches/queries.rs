//! Query API benchmark over a ledger of at least 1 000 000 events: requests per second and
//! p99 of `/v1/dora` and the environment board against a hello-world axum route measured
//! in the same run at the same concurrency; export and offline verification throughput.
//!
//! Seeding: one generated history (six services over 140 days, ≈ 5 900 events) goes
//! through the command API and the projector; it is then copied in SQL until the ledger
//! holds `QUERY_BENCH_EVENTS` (default 1 000 000) events — each copy under new aggregate
//! ids and service names (`checkout-0-c17`), its read-model rows copied alongside — and
//! the whole ledger is sealed. Payloads of the copies keep the original ids (only a
//! release's service is renamed, as the ledger requires versions unique per service); the
//! read models are copied alongside, not re-projected.
//!
//! Run: `cargo bench --bench queries` (local PostgreSQL; its own database, dropped
//! afterwards). `BENCH_SECONDS` sets each measurement's length (default 5).

use std::time::{Duration, Instant};

use release_pilot_domain::roles::Role;
use release_pilot_ledger::sealer::{Sealer, SealerConfig};
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::{seal_everything, TestDatabase};
use release_pilot_projector::catalogue::AnyProjection;
use release_pilot_projector::Projector;
use release_pilot_query_api::{App, QueryConfig, QueryState};

mod support;
use support::{measure, row, seconds, Measured};

const CONNECTIONS: usize = 32;

fn latency(m: &Measured) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms",
        m.quantile(0.5).as_secs_f64() * 1000.0,
        m.quantile(0.99).as_secs_f64() * 1000.0
    )
}

/// Copies the seeded history `copies` times in SQL: events under new ids, and the read
/// models the queries read.
async fn replicate(pool: &sqlx::PgPool, copies: i64) {
    let id = |column: &str| format!("md5({column}::text || '/' || c)::uuid");
    let statements = [
        // Events: UUID aggregates get new ids; service/environment streams and
        // requirement ids get a copy suffix.
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at) \
         SELECT e.aggregate_type, \
                CASE WHEN e.aggregate_type = 'environment' THEN split_part(e.aggregate_id, '/', 1) || '-c' || c || '/' || split_part(e.aggregate_id, '/', 2) \
                     WHEN e.aggregate_type IN ('release', 'incident') THEN md5(e.aggregate_id || '/' || c)::uuid::text \
                     ELSE e.aggregate_id || '-c' || c END, \
                e.sequence, e.event_type, e.event_version, \
                CASE WHEN e.event_type = 'ReleaseCreated' THEN jsonb_set(e.payload::jsonb, '{ReleaseCreated,service}', \
                       to_jsonb((e.payload -> 'ReleaseCreated' ->> 'service') || '-c' || c))::json \
                     ELSE e.payload END, \
                e.metadata, e.recorded_at \
         FROM events e CROSS JOIN generate_series(1, $1) c WHERE e.aggregate_type <> 'policy'".to_owned(),
        format!(
            "INSERT INTO rm_dora_deployments SELECT {}, service || '-c' || c, environment, production, {}, version, strategy, \
             started_at, completed_at, finished_at, status, failed_at, restored_at, \
             CASE WHEN remediates_incident IS NULL THEN NULL ELSE {} END, planned, recorded_at, last_position \
             FROM rm_dora_deployments CROSS JOIN generate_series(1, $1) c",
            id("deployment_id"), id("release_id"), id("remediates_incident")
        ),
        format!(
            "INSERT INTO rm_dora_release_commits SELECT {}, sha, service || '-c' || c, committed_at \
             FROM rm_dora_release_commits CROSS JOIN generate_series(1, $1) c",
            id("release_id")
        ),
        format!(
            "INSERT INTO rm_dora_incidents SELECT {}, service || '-c' || c, environment, production, severity, opened_at, resolved_at, \
             CASE WHEN deployment_id IS NULL THEN NULL ELSE {} END, last_position \
             FROM rm_dora_incidents CROSS JOIN generate_series(1, $1) c",
            id("incident_id"), id("deployment_id")
        ),
        format!(
            "INSERT INTO rm_environment_history SELECT service || '-c' || c, environment, position, {}, {}, version, valid_from, valid_to, \
             recorded_at, cause, actor FROM rm_environment_history CROSS JOIN generate_series(1, $1) c",
            id("deployment_id"), id("release_id")
        ),
        format!(
            "INSERT INTO rm_releases SELECT {}, service || '-c' || c, version, created_at, created_by, gates, approvals, withdrawn, last_position \
             FROM rm_releases CROSS JOIN generate_series(1, $1) c",
            id("release_id")
        ),
    ];
    for sql in statements {
        sqlx::query(&sql)
            .bind(copies)
            .execute(pool)
            .await
            .expect(&sql);
    }
    sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
}

async fn get_loop(client: reqwest::Client, url: String, token: String) -> Measured {
    get_loop_with(CONNECTIONS, client, url, token).await
}

async fn get_loop_with(
    connections: usize,
    client: reqwest::Client,
    url: String,
    token: String,
) -> Measured {
    measure(connections, move |_, _| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let response = client
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("request");
            assert!(
                response.status().is_success(),
                "{url}: {}",
                response.status()
            );
            response.bytes().await.expect("body");
        }
    })
    .await
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let target: i64 = std::env::var("QUERY_BENCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let db = TestDatabase::create_with(48).await;
        let key = LedgerKey::generate();
        let base = support::seed_histories(&db.pool, 1, &key).await;
        for projection in AnyProjection::ALL {
            let projector = Projector::new(db.pool.clone(), projection, 5000);
            while projector.apply_next().await.expect("project") > 0 {}
        }
        let started = Instant::now();
        let copies = (target - base + base - 1) / base;
        replicate(&db.pool, copies).await;
        let head = seal_everything(&db.pool, &key, Duration::from_secs(1800)).await;
        Sealer::new(db.pool.clone(), key.clone(), SealerConfig::default())
            .checkpoint_now()
            .await
            .expect("checkpoint");
        eprintln!("replicated and sealed to {head} events in {:.1}s", started.elapsed().as_secs_f64());
        let deployments: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_dora_deployments")
            .fetch_one(&db.pool)
            .await
            .expect("count");

        let config = QueryConfig {
            public_key: Some(key.verifying_key()),
            rate_per_second: std::num::NonZeroU32::new(1_000_000).expect("non-zero"),
            rate_burst: std::num::NonZeroU32::new(1_000_000).expect("non-zero"),
            ..QueryConfig::default()
        };
        let app = App::build("127.0.0.1:0".parse().expect("addr"), QueryState::new(db.pool.clone(), config))
            .await
            .expect("bind");
        let query = format!("http://{}", app.local_addr().expect("addr"));
        tokio::spawn(app.run(std::future::pending::<()>()));
        let hello = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hello_url = format!("http://{}/hello", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, hello).await });
        let token = release_pilot_command_service::auth::TokenStore::new(db.pool.clone())
            .create(
                &release_pilot_domain::ids::Person::parse("aud@example.com").expect("valid"),
                &std::collections::BTreeSet::from([Role::Auditor]),
            )
            .await
            .expect("token")
            .1;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CONNECTIONS)
            .build()
            .expect("client");

        println!(
            "query benchmark — {head} ledger events ({deployments} deployments), {CONNECTIONS} connections, {} s per measurement",
            seconds().as_secs()
        );
        println!();
        println!("| measure | requests per second | ratio | latency |");
        println!("|---|---:|---|---|");
        let hello_m = get_loop(client.clone(), hello_url, token.clone()).await;
        println!("| hello-world axum route | {:.0} | baseline | {} |", hello_m.rate, latency(&hello_m));
        let window = "from=2026-04-01&to=2026-05-01";
        // Services of a copy in the middle of the table.
        let mid = (copies + 1) / 2;
        let (checkout, payments) = (format!("checkout-0-c{mid}"), format!("payments-0-c{mid}"));
        for (name, path) in [
            ("`/v1/dora`, one service, 30 days", format!("/v1/dora?service={checkout}&{window}")),
            ("`/v1/dora`, one service, 30 days, weekly series", format!("/v1/dora?service={checkout}&{window}&bucket=week")),
            ("`/v1/dora`, one service, whole history", format!("/v1/dora?service={checkout}&from=2026-01-01&to=2026-06-01")),
            ("environment board, one service", format!("/v1/environments?service={payments}")),
            ("environment board, one service, as of a past time", format!("/v1/environments?service={payments}&as_of=2026-03-01")),
            ("one environment's state", format!("/v1/environments/{payments}/production")),
        ] {
            let m = get_loop(client.clone(), format!("{query}{path}"), token.clone()).await;
            println!(
                "| {name} | {:.0} | {:.2} × hello-world | {} |",
                m.rate,
                m.rate / hello_m.rate,
                latency(&m)
            );
        }
        // One client at a time: the latency of a request on an otherwise idle server.
        for (name, path) in [
            ("`/v1/dora`, one service, 30 days, 1 connection", format!("/v1/dora?service={checkout}&{window}")),
            ("environment board, one service, 1 connection", format!("/v1/environments?service={payments}")),
        ] {
            let m = get_loop_with(1, client.clone(), format!("{query}{path}"), token.clone()).await;
            println!("| {name} | {:.0} | — | {} |", m.rate, latency(&m));
        }
        // The all-services answers are single requests: they read every copy.
        for (name, path) in [
            ("`/v1/dora`, all services, 30 days (one request)", format!("/v1/dora?{window}")),
            ("environment board, all services (one request)", "/v1/environments".to_owned()),
        ] {
            let mut times = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                let response = client
                    .get(format!("{query}{path}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("request");
                assert!(response.status().is_success());
                response.bytes().await.expect("body");
                times.push(started.elapsed());
            }
            times.sort();
            println!(
                "| {name} | — | — | median {:.0} ms over 5 |",
                times[2].as_secs_f64() * 1000.0
            );
        }

        println!();
        println!("| measure | entries per second |");
        println!("|---|---:|");
        let started = Instant::now();
        let export = client
            .get(format!("{query}/v1/audit/export"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("export")
            .bytes()
            .await
            .expect("body");
        let export_rate = head as f64 / started.elapsed().as_secs_f64();
        row("export (`/v1/audit/export`, JSON Lines, streamed)", export_rate, None);
        let started = Instant::now();
        let report = release_pilot_ledger::export::verify_export(&export[..], &key.verifying_key())
            .expect("the export verifies");
        let verify_rate = report.entries as f64 / started.elapsed().as_secs_f64();
        row("offline verification of that export", verify_rate, None);
        eprintln!("export: {} MB, {} entries", export.len() / 1_000_000, report.entries);
    });
}
