//! Observability end to end: one trace from an HTTP command through the relay into a
//! projector, received by a real OTLP/HTTP endpoint; every process's `/metrics` parsed
//! and checked to move with the actions it counts; and every metric the Grafana
//! dashboard and the Prometheus alert rules query is one the code exports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use release_pilot_command_service::auth::TokenStore;
use release_pilot_command_service::{App, AppState, CommandConfig};
use release_pilot_domain::ids::Person;
use release_pilot_domain::roles::Role;
use release_pilot_ledger::relay::Relay;
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::{seal_everything, TestDatabase, TestStream};
use release_pilot_projector::audit_index::AuditIndex;
use release_pilot_projector::catalogue::AnyProjection;
use release_pilot_projector::metrics::ProjectorMetrics;
use release_pilot_projector::Projector;
use serde_json::{json, Value};

async fn token(db: &TestDatabase, subject: &str, role: Role) -> String {
    TokenStore::new(db.pool.clone())
        .create(
            &Person::parse(subject).expect("valid"),
            &BTreeSet::from([role]),
        )
        .await
        .expect("token")
        .1
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    let response = client
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

/// Every span received: (span name, trace id as hex).
fn spans(bodies: &[Vec<u8>]) -> Vec<(String, String)> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    let mut out = Vec::new();
    for body in bodies {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        for resource in request.resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    out.push((span.name, hex::encode(span.trace_id)));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_follows_a_command_through_the_relay_into_a_projector() {
    // A real OTLP/HTTP endpoint, collecting what it is sent.
    let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let sink = received.clone();
    let receiver = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("lock").push(body.to_vec());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let provider = release_pilot_ledger::telemetry::provider("release-pilot-test", &endpoint)
        .expect("exporter");
    let telemetry = release_pilot_ledger::telemetry::install("release-pilot-test", Some(provider));
    assert!(telemetry.exporting());

    let db = TestDatabase::create().await;
    let stream = TestStream::new();
    let app = App::build(
        "127.0.0.1:0".parse().expect("addr"),
        AppState::new(db.pool.clone(), CommandConfig::default()),
    )
    .await
    .expect("bind");
    let base = format!("http://{}", app.local_addr().expect("addr"));
    tokio::spawn(app.run(std::future::pending()));
    let ci = token(&db, "ci-bot", Role::Ci).await;
    let client = reqwest::Client::new();
    post(
        &client,
        format!("{base}/v1/releases"),
        &ci,
        json!({"service": "api", "commits": [{"sha": "abcdef12", "message": "feat: traced", "author": "dev@example.com"}]}),
    )
    .await;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT metadata ->> 'traceparent' FROM events LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .expect("metadata");
    let stored = stored.expect("the event records the request's traceparent");
    let command_trace = stored
        .split('-')
        .nth(1)
        .expect("a W3C traceparent")
        .to_owned();

    seal_everything(&db.pool, &LedgerKey::generate(), Duration::from_secs(30)).await;
    let relay = Relay::new(
        db.pool.clone(),
        stream.jetstream().await,
        stream.config.clone(),
    );
    let mut jetstream = relay.ensure_stream().await.expect("stream");
    assert_eq!(relay.relay_batch(&mut jetstream).await.expect("relay"), 1);
    let projector = Projector::new(db.pool.clone(), AuditIndex, 100);
    assert_eq!(projector.apply_next().await.expect("project"), 1);

    // The JetStream message carries the trace on.
    let message = jetstream
        .get_raw_message(1)
        .await
        .expect("the relayed message");
    let header = message
        .headers
        .get("traceparent")
        .map(|v| v.to_string())
        .expect("a traceparent header");
    assert_eq!(header.split('-').nth(1), Some(command_trace.as_str()));

    let flushed = tokio::task::spawn_blocking(move || {
        telemetry.flush();
        telemetry
    })
    .await
    .expect("flush");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let by_name = loop {
        let all = spans(&received.lock().expect("lock"));
        let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, trace) in all {
            by_name.entry(name).or_default().insert(trace);
        }
        let complete = ["request", "relay.publish", "projection.apply"]
            .iter()
            .all(|n| by_name.get(*n).is_some_and(|t| t.contains(&command_trace)));
        if complete || std::time::Instant::now() > deadline {
            break by_name;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(flushed);
    for name in ["request", "relay.publish", "projection.apply"] {
        assert!(
            by_name
                .get(name)
                .is_some_and(|t| t.contains(&command_trace)),
            "no {name} span in trace {command_trace}: {by_name:?}"
        );
    }
}

/// Metric samples of a Prometheus text exposition, by name and labels.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("a Prometheus text exposition");
    let mut out = BTreeMap::new();
    for sample in scrape.samples {
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        };
        out.insert(format!("{}{{{}}}", sample.metric, labels.join(",")), value);
    }
    out
}

/// Metric names in a text exposition (raw, including `_bucket`, `_count`, `_sum`).
fn names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

async fn scrape(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_process_exports_its_metrics_and_they_move_with_the_work() {
    let db = TestDatabase::create().await;
    let key = LedgerKey::generate();
    let state = AppState::new(db.pool.clone(), CommandConfig::default());
    let command_metrics = state.metrics.clone();
    let app = App::build("127.0.0.1:0".parse().expect("addr"), state)
        .await
        .expect("bind");
    let command = format!("http://{}", app.local_addr().expect("addr"));
    tokio::spawn(app.run(std::future::pending()));
    let query_state = release_pilot_query_api::QueryState::new(
        db.pool.clone(),
        release_pilot_query_api::QueryConfig {
            public_key: Some(key.verifying_key()),
            ..Default::default()
        },
    );
    let query_app = release_pilot_query_api::App::build(
        "127.0.0.1:0".parse().expect("addr"),
        query_state.clone(),
    )
    .await
    .expect("bind");
    let query = format!("http://{}", query_app.local_addr().expect("addr"));
    tokio::spawn(query_app.run(std::future::pending()));
    let mut registry = prometheus_client::registry::Registry::default();
    let projector_metrics = ProjectorMetrics::register(&mut registry);
    let projector_pool = release_pilot_http::metrics::PoolGauges::register(&mut registry);

    let ci = token(&db, "ci-bot", Role::Ci).await;
    let approvers = [
        token(&db, "ann@example.com", Role::Approver).await,
        token(&db, "bob@example.com", Role::Approver).await,
    ];
    let client = reqwest::Client::new();
    let before = samples(&scrape(&client, &format!("{command}/metrics")).await);

    // Release A reaches production; release B is rolled back by hand.
    let now = chrono::Utc::now();
    let at = |minutes: i64| (now - chrono::Duration::minutes(minutes)).to_rfc3339();
    let mut deployments = Vec::new();
    for (sha, message, started) in [("aaaa1111", "feat: one", 120), ("bbbb2222", "fix: two", 60)] {
        let release = post(&client, format!("{command}/v1/releases"), &ci,
            json!({"service": "shop", "commits": [{"sha": sha, "message": message, "author": "dev@example.com", "committed_at": at(300)}]})).await;
        let id = release["release_id"].as_str().expect("id").to_owned();
        for gate in [
            json!({"gate": "testing", "evidence": {"tests_passed": 5, "tests_failed": 0, "coverage_pct": 95.0}}),
            json!({"gate": "security", "evidence": {"vulnerabilities": {"critical": 0, "high": 0}}}),
        ] {
            post(
                &client,
                format!("{command}/v1/releases/{id}/gates"),
                &ci,
                gate,
            )
            .await;
        }
        for approver in &approvers {
            post(
                &client,
                format!("{command}/v1/releases/{id}/approvals"),
                approver,
                json!({"environment": "production", "decision": "approve"}),
            )
            .await;
        }
        let deployment = post(&client, format!("{command}/v1/deployments"), &ci,
            json!({"release_id": id, "environment": "production", "strategy": "standard", "started_at": at(started)})).await;
        let deployment = deployment["deployment_id"].as_str().expect("id").to_owned();
        if deployments.is_empty() {
            post(
                &client,
                format!("{command}/v1/deployments/{deployment}/complete"),
                &ci,
                json!({"finished_at": at(110)}),
            )
            .await;
        } else {
            post(
                &client,
                format!("{command}/v1/deployments/{deployment}/rollback"),
                &ci,
                json!({"reason": "errors", "started_at": at(50)}),
            )
            .await;
            post(
                &client,
                format!("{command}/v1/deployments/{deployment}/rollback/complete"),
                &ci,
                json!({"finished_at": at(45)}),
            )
            .await;
        }
        deployments.push(deployment);
    }

    // Command service: commands, events, deployments, rollbacks, requests.
    let head = seal_everything(&db.pool, &key, Duration::from_secs(30)).await;
    let test_stream = TestStream::new();
    let relay = Relay::new(
        db.pool.clone(),
        test_stream.jetstream().await,
        release_pilot_ledger::relay::RelayConfig {
            batch_size: 5,
            ..test_stream.config.clone()
        },
    );
    let mut jetstream = relay.ensure_stream().await.expect("stream");
    relay.relay_batch(&mut jetstream).await.expect("relay");
    command_metrics.measure(&db.db()).await.expect("measure");
    let command_text = scrape(&client, &format!("{command}/metrics")).await;
    let after = samples(&command_text);
    let delta = |key: &str| value(&after, key) - value(&before, key);
    assert_eq!(
        delta("commands_total{command=CreateRelease,outcome=accepted}"),
        2.0
    );
    assert_eq!(
        delta("commands_total{command=StartDeployment,outcome=accepted}"),
        2.0
    );
    assert!(delta("events_appended_total{aggregate_type=release}") >= 10.0);
    assert_eq!(
        delta("events_appended_total{aggregate_type=environment}"),
        5.0
    );
    assert_eq!(
        delta("releases_deployed_total{environment=production,service=shop}"),
        1.0
    );
    assert_eq!(
        delta("rollbacks_executed_total{environment=production,service=shop,trigger=manual}"),
        1.0
    );
    assert_eq!(
        delta("http_requests_total{method=POST,route=/v1/releases,status=201}"),
        2.0
    );
    assert_eq!(value(&after, "ledger_head_position{}"), head as f64);
    assert_eq!(value(&after, "ledger_unsealed_events{}"), 0.0);
    assert_eq!(value(&after, "relay_lag_positions{}"), (head - 5) as f64);
    assert!(value(&after, "db_pool_max_connections{}") > 0.0);
    while relay.relay_batch(&mut jetstream).await.expect("relay") > 0 {}
    command_metrics.measure(&db.db()).await.expect("measure");
    let relayed = samples(&scrape(&client, &format!("{command}/metrics")).await);
    assert_eq!(value(&relayed, "relay_lag_positions{}"), 0.0);

    // Projector: entries applied, lag, stops.
    for projection in AnyProjection::ALL {
        let projector = Projector::new(db.pool.clone(), projection, 1000)
            .with_metrics(projector_metrics.clone());
        while projector.apply_next().await.expect("apply") > 0 {}
        assert_eq!(projector.measure_lag().await.expect("lag"), 0);
    }
    projector_pool.observe(&db.db());
    let projector_text = release_pilot_http::metrics::encode(&registry);
    let projected = samples(&projector_text);
    assert_eq!(
        value(
            &projected,
            "projection_events_applied_total{projection=audit_index}"
        ),
        head as f64
    );
    assert_eq!(
        value(
            &projected,
            "projection_lag_positions{projection=dora_facts}"
        ),
        0.0
    );
    assert_eq!(
        value(&projected, "projection_stopped{projection=traceability}"),
        0.0
    );

    // Query API: DORA gauges per service, the verified chain, requests.
    release_pilot_query_api::gauges::refresh(&query_state)
        .await
        .expect("DORA gauges");
    assert!(release_pilot_query_api::gauges::verify_chain(&query_state)
        .await
        .expect("verify"));
    query_state.metrics.pool.observe(&db.db());
    let response = client
        .get(format!("{query}/v1/dora?service=shop"))
        .bearer_auth(&ci)
        .send()
        .await
        .expect("dora");
    assert!(response.status().is_success());
    let query_text = scrape(&client, &format!("{query}/metrics")).await;
    let read = samples(&query_text);
    assert_eq!(value(&read, "dora_change_fail_rate{service=shop}"), 0.5);
    assert_eq!(
        value(&read, "dora_deployment_rework_rate{service=shop}"),
        0.0
    );
    assert_eq!(
        value(&read, "dora_change_lead_time_median_seconds{service=shop}"),
        190.0 * 60.0
    );
    assert_eq!(
        value(
            &read,
            "dora_failed_deployment_recovery_median_seconds{service=shop}"
        ),
        5.0 * 60.0
    );
    assert!(value(&read, "dora_deployments_per_day{service=shop}") > 0.0);
    assert_eq!(value(&read, "ledger_chain_valid{}"), 1.0);
    assert_eq!(value(&read, "ledger_verified_position{}"), head as f64);
    assert_eq!(
        value(
            &read,
            "http_requests_total{method=GET,route=/v1/dora,status=200}"
        ),
        1.0
    );

    // Everything the dashboard and the alert rules query is exported by some process.
    let exported: BTreeSet<String> = [&command_text, &projector_text, &query_text]
        .iter()
        .flat_map(|t| names(t))
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/dashboards/release-pilot.json",
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect(file);
        let used = referenced_metrics(&text);
        assert!(used.len() >= 10, "{file}: only {used:?}");
        let missing: Vec<&String> = used.iter().filter(|m| !exported.contains(*m)).collect();
        assert!(
            missing.is_empty(),
            "{file} queries metrics no process exports: {missing:?}"
        );
    }
}

/// Metric names a PromQL-bearing file refers to: identifiers with the product's metric
/// prefixes.
fn referenced_metrics(text: &str) -> BTreeSet<String> {
    const PREFIXES: &[&str] = &[
        "http_",
        "commands_",
        "events_",
        "releases_",
        "rollbacks_",
        "ledger_",
        "relay_",
        "db_pool_",
        "projection_",
        "dora_",
    ];
    let mut out = BTreeSet::new();
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if PREFIXES.iter().any(|p| word.starts_with(p)) {
            out.insert(std::mem::take(&mut word));
        }
        word.clear();
    }
    out
}
