//! The command API over real HTTP: the app on port 0, a fresh database per test, tokens
//! per role. The tests whose answers go through backend-specific SQL (tokens, idempotency,
//! lookups in the event store, unique versions) run on PostgreSQL and on SQLite.

use std::collections::BTreeSet;

use release_pilot_command_service::auth::TokenStore;
use release_pilot_command_service::{App, AppState, CommandConfig};
use release_pilot_domain::ids::Person;
use release_pilot_domain::roles::Role;
use release_pilot_ledger::both_backends;
use release_pilot_ledger::on;
use release_pilot_ledger::testkit::{Backend, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct TestApp {
    state: AppState,
    base: String,
    client: reqwest::Client,
    db: TestDb,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    ci: String,
    admin: String,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn spawn() -> TestApp {
    spawn_with(CommandConfig::default()).await
}

async fn spawn_with(config: CommandConfig) -> TestApp {
    spawn_on(TestDb::create(Backend::Postgres).await, config).await
}

async fn spawn_on(db: TestDb, config: CommandConfig) -> TestApp {
    let state = AppState::new(db.db.clone(), config);
    let app = App::build("127.0.0.1:0".parse().expect("addr"), state.clone())
        .await
        .expect("bind");
    let base = format!("http://{}", app.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let mut app = TestApp {
        state,
        base,
        client: reqwest::Client::new(),
        db,
        stop: Some(stop),
        ci: String::new(),
        admin: String::new(),
    };
    app.ci = app.token("ci-bot", &[Role::Ci]).await;
    app.admin = app.token("root@example.com", &[Role::Admin]).await;
    app
}

impl TestApp {
    async fn token(&self, subject: &str, roles: &[Role]) -> String {
        TokenStore::new(self.db.db.clone())
            .create(
                &Person::parse(subject).expect("valid"),
                &roles.iter().copied().collect::<BTreeSet<_>>(),
            )
            .await
            .expect("token")
            .1
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (StatusCode, Value, String) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            content_type,
        )
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let (status, body, _) = self
            .send(reqwest::Method::POST, path, Some(token), Some(body), None)
            .await;
        (status, body)
    }

    async fn raw(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            content_type,
        )
    }

    async fn events(&self) -> i64 {
        on!(&self.db.db, |pool| sqlx::query_scalar(
            "SELECT count(*) FROM events"
        )
        .fetch_one(pool)
        .await
        .expect("count"))
    }

    /// Creates a release of `service` from one commit by `author`; returns (id, version).
    async fn release(&self, service: &str, message: &str, author: &str) -> (String, String) {
        let (status, body) = self
            .post(
                "/v1/releases",
                &self.ci,
                json!({
                    "service": service,
                    "commits": [{"sha": format!("{:040x}", rand_sha()), "message": message, "author": author}],
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["release_id"].as_str().expect("id").to_owned(),
            body["version"].as_str().expect("version").to_owned(),
        )
    }

    /// Passing testing and security gates and two approvals for production.
    async fn clear_for_production(&self, release: &str) {
        for gate in ["testing", "security"] {
            let (status, body) = self
                .post(
                    &format!("/v1/releases/{release}/gates"),
                    &self.ci,
                    json!({"gate": gate, "evidence": {"tests_passed": 10, "tests_failed": 0, "coverage_pct": 95.0, "vulnerabilities": {"critical": 0, "high": 0}}}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            assert_eq!(body["status"], "passed");
        }
        for approver in ["ann@example.com", "bob@example.com"] {
            let token = self.token(approver, &[Role::Approver]).await;
            let (status, body) = self
                .post(
                    &format!("/v1/releases/{release}/approvals"),
                    &token,
                    json!({"environment": "production", "decision": "approve"}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }
}

fn rand_sha() -> u128 {
    uuid::Uuid::new_v4().as_u128()
}

both_backends!(
    identity_comes_from_a_valid_token_and_roles_are_enforced,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        let body = json!({"service": "api", "commits": [{"sha": "abcdef1", "message": "feat: x", "author": "dev"}]});
        let (status, problem, content_type) = app
            .send(
                reqwest::Method::POST,
                "/v1/releases",
                None,
                Some(body.clone()),
                None,
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
        );
        assert_eq!(content_type, "application/problem+json");
        let (status, _, _) = app
            .send(
                reqwest::Method::POST,
                "/v1/releases",
                Some("rp_nope"),
                Some(body.clone()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let auditor = app.token("audit@example.com", &[Role::Auditor]).await;
        let approver = app.token("ann@example.com", &[Role::Approver]).await;
        for token in [&auditor, &approver] {
            let (status, problem) = app.post("/v1/releases", token, body.clone()).await;
            assert_eq!(
                (status, problem["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("forbidden"))
            );
        }
        let (status, problem) = app
            .post(
                "/v1/requirements",
                &app.ci,
                json!({"id": "REQ-1", "title": "t", "category": "c"}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden"))
        );

        // A revoked token stops working at once on the instance that revoked it (others
        // trust a cached authentication for at most TOKEN_CACHE_TTL).
        let store = app.state.tokens.clone();
        let (id, token) = store
            .create(
                &Person::parse("temp").expect("valid"),
                &BTreeSet::from([Role::Ci]),
            )
            .await
            .expect("token");
        assert_eq!(
            app.post("/v1/releases", &token, body.clone()).await.0,
            StatusCode::CREATED
        );
        assert!(store.revoke(id).await.expect("revoke"));
        assert_eq!(
            app.post("/v1/releases", &token, body).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(app.events().await, 1);
    }
);

both_backends!(
    releases_get_versions_from_commits_and_refusals_have_codes,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        let (_, first) = app.release("api", "feat: search", "dev@example.com").await;
        assert_eq!(first, "0.1.0");
        let (_, second) = app
            .release("api", "fix: crash\n\nRefs: REQ-4", "dev@example.com")
            .await;
        assert_eq!(second, "0.1.1");
        let commit = json!([{"sha": "abcdef12", "message": "docs: x", "author": "dev"}]);
        let (status, problem) = app
            .post(
                "/v1/releases",
                &app.ci,
                json!({"service": "api", "commits": commit}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("no_releasable_changes")
            )
        );
        let (status, problem) = app
            .post(
                "/v1/releases",
                &app.ci,
                json!({"service": "api", "version": "0.1.1", "commits": commit}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("release_exists"))
        );
        let (status, problem) = app
            .post(
                "/v1/releases",
                &app.ci,
                json!({"service": "api", "version": "0.0.9", "commits": commit}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("version_not_greater")
            )
        );
        let (status, problem) = app
            .post(
                "/v1/releases",
                &app.ci,
                json!({"service": "api", "version": "banana", "commits": commit}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_version"))
        );
        let (status, problem) = app
            .post(
                "/v1/releases",
                &app.ci,
                json!({"service": "api", "commits": []}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("no_commits"))
        );
        assert_eq!(app.events().await, 2);
    }
);

#[tokio::test]
async fn bad_input_gets_a_problem_never_a_500() {
    let app = spawn_with(CommandConfig {
        body_limit_bytes: 4096,
        ..CommandConfig::default()
    })
    .await;
    let cases: Vec<(&str, Vec<u8>, &str, StatusCode, &str)> = vec![
        ("/v1/releases", b"{\"service\": ".to_vec(), "application/json", StatusCode::BAD_REQUEST, "malformed_json"),
        ("/v1/releases", br#"{"service": "api", "commits": [], "colour": "red"}"#.to_vec(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("/v1/releases", br#"{"service": 42, "commits": []}"#.to_vec(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("/v1/releases", br#"{"service": "bad name!", "commits": []}"#.to_vec(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("/v1/releases", br#"{"service": "api", "commits": [{"sha": "zz", "message": "x", "author": "a"}]}"#.to_vec(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("/v1/releases", vec![b' '; 5000], "application/json", StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        ("/v1/releases", b"service=api".to_vec(), "application/x-www-form-urlencoded", StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("/v1/releases/not-a-uuid/gates", br#"{"gate": "testing", "status": "passed"}"#.to_vec(), "application/json", StatusCode::NOT_FOUND, "release_not_found"),
        ("/v1/releases/0190c2a8-0000-7000-8000-000000000001/gates", br#"{"gate": "testing", "status": "passed"}"#.to_vec(), "application/json", StatusCode::NOT_FOUND, "release_not_found"),
        ("/v1/deployments/0190c2a8-0000-7000-8000-000000000001/complete", b"{}".to_vec(), "application/json", StatusCode::NOT_FOUND, "deployment_not_found"),
        ("/v1/nothing-here", b"{}".to_vec(), "application/json", StatusCode::NOT_FOUND, "route_not_found"),
        ("/v1/deployments", br#"{"release_id": "0190c2a8-0000-7000-8000-000000000001", "environment": "production", "strategy": "yolo"}"#.to_vec(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("/v1/incidents", br#"{"service": "api", "environment": "production", "severity": "meh", "title": "x"}"#.to_vec(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        // Found by fuzzing: PostgreSQL cannot hold NUL in text.
        ("/v1/incidents", br#"{"service": "api", "environment": "production", "severity": "low", "title": "a\u0000b"}"#.to_vec(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_character"),
    ];
    for (path, body, content_type, expected, code) in cases {
        let (status, problem, returned_type) = app.raw(path, &app.admin, content_type, body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (expected, Some(code)),
            "{path}: {problem}"
        );
        assert_eq!(returned_type, "application/problem+json", "{path}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{path}"
        );
    }
    assert_eq!(app.events().await, 0, "nothing is half-written");
}

both_backends!(
    a_retry_with_the_same_key_returns_the_first_answer_and_appends_nothing,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        let body = json!({"service": "api", "commits": [{"sha": "abcdef1234", "message": "feat: x", "author": "dev"}]});
        let first = app
            .send(
                reqwest::Method::POST,
                "/v1/releases",
                Some(&app.ci),
                Some(body.clone()),
                Some("key-1"),
            )
            .await;
        assert_eq!(first.0, StatusCode::CREATED);
        let events = app.events().await;
        let retry = app
            .send(
                reqwest::Method::POST,
                "/v1/releases",
                Some(&app.ci),
                Some(body),
                Some("key-1"),
            )
            .await;
        assert_eq!((retry.0, &retry.1), (first.0, &first.1));
        assert_eq!(app.events().await, events);

        let other = json!({"service": "web", "commits": [{"sha": "abcdef1234", "message": "feat: y", "author": "dev"}]});
        let reused = app
            .send(
                reqwest::Method::POST,
                "/v1/releases",
                Some(&app.ci),
                Some(other.clone()),
                Some("key-1"),
            )
            .await;
        assert_eq!(
            (reused.0, reused.1["code"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("idempotency_key_reused")
            )
        );
        // A refused command does not consume its key.
        let refused = json!({"service": "web", "commits": []});
        let once = app
            .send(
                reqwest::Method::POST,
                "/v1/releases",
                Some(&app.ci),
                Some(refused),
                Some("key-2"),
            )
            .await;
        assert_eq!(once.0, StatusCode::UNPROCESSABLE_ENTITY);
        let fixed = app
            .send(
                reqwest::Method::POST,
                "/v1/releases",
                Some(&app.ci),
                Some(other),
                Some("key-2"),
            )
            .await;
        assert_eq!(fixed.0, StatusCode::CREATED, "{}", fixed.1);
    }
);

both_backends!(
    a_commit_author_cannot_approve_and_the_attempt_is_recorded,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        let (release, _) = app.release("api", "feat: x", "Dev <dev@example.com>").await;
        let author = app.token("dev@example.com", &[Role::Approver]).await;
        let (status, problem) = app
            .post(
                &format!("/v1/releases/{release}/approvals"),
                &author,
                json!({"environment": "production", "decision": "approve"}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("self_approval"))
        );
        let refused: i64 = on!(&app.db.db, |pool| sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE event_type = 'ApprovalRefused'"
        )
        .fetch_one(pool)
        .await
        .expect("count"));
        assert_eq!(refused, 1);
        // Identity is the token's: a body cannot claim to be someone else.
        let (status, problem) = app
        .post(&format!("/v1/releases/{release}/approvals"), &author, json!({"environment": "production", "decision": "approve", "approver": "ann@example.com"}))
        .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body"))
        );
    }
);

both_backends!(
    an_unapproved_production_deployment_is_refused_with_every_reason,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        let (release, _) = app.release("api", "feat: x", "dev@example.com").await;
        let (status, problem) = app
            .post(
                "/v1/deployments",
                &app.ci,
                json!({"release_id": release, "environment": "production", "strategy": "standard"}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("deployment_refused"))
        );
        let codes: Vec<&str> = problem["refusals"]
            .as_array()
            .expect("refusals")
            .iter()
            .map(|r| r["code"].as_str().expect("code"))
            .collect();
        assert_eq!(
            codes,
            [
                "gates_not_passed",
                "approvals_incomplete",
                "approver_roles_missing"
            ]
        );
        // Development environments need nothing.
        let (status, body) = app
            .post(
                "/v1/deployments",
                &app.ci,
                json!({"release_id": release, "environment": "dev", "strategy": "standard"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["clearance"]["policy_version"], 0);
        // A second deployment while one is in progress is refused.
        let (status, problem) = app
            .post(
                "/v1/deployments",
                &app.ci,
                json!({"release_id": release, "environment": "dev", "strategy": "standard"}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("deployment_in_progress"))
        );
    }
);

both_backends!(
    a_canary_whose_health_breaches_rolls_back_to_the_last_good_version,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        // Version 0.1.0 goes live in production.
        let (v1, _) = app
            .release("checkout", "feat: first", "dev@example.com")
            .await;
        app.clear_for_production(&v1).await;
        let (status, started) = app
            .post(
                "/v1/deployments",
                &app.ci,
                json!({"release_id": v1, "environment": "production", "strategy": "standard"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{started}");
        let first = started["deployment_id"].as_str().expect("id").to_owned();
        let (status, done) = app
            .post(
                &format!("/v1/deployments/{first}/complete"),
                &app.ci,
                json!({}),
            )
            .await;
        assert_eq!(
            (status, done["status"].as_str()),
            (StatusCode::OK, Some("completed"))
        );

        // Version 0.2.0 starts as a canary at 5 %.
        let (v2, version) = app
            .release("checkout", "feat: second", "dev@example.com")
            .await;
        assert_eq!(version, "0.2.0");
        app.clear_for_production(&v2).await;
        let started_at = chrono::Utc::now();
        let (status, canary) = app
        .post(
            "/v1/deployments",
            &app.ci,
            json!({"release_id": v2, "environment": "production", "strategy": "canary", "started_at": started_at}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{canary}");
        let second = canary["deployment_id"].as_str().expect("id").to_owned();
        assert_eq!(
            canary["clearance"]["approved_by"].as_array().map(Vec::len),
            Some(2)
        );

        // Advancing without evidence is refused.
        let (status, problem) = app
            .post(
                &format!("/v1/deployments/{second}/canary"),
                &app.ci,
                json!({"weight_percent": 25}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("canary_criteria_unmet"))
        );

        // Healthy, then an error rate above 2 % for two minutes: the rollback trigger fires.
        let at = |s: i64| started_at + chrono::Duration::seconds(s);
        let (status, verdict) = app
            .post(
                &format!("/v1/deployments/{second}/health"),
                &app.ci,
                json!({"samples": [{"at": at(10), "error_rate_pct": 0.1, "p95_ms": 200.0}]}),
            )
            .await;
        assert_eq!(
            (status, verdict["verdict"].as_str()),
            (StatusCode::OK, Some("healthy")),
            "{verdict}"
        );
        let samples: Vec<Value> = (0..=12)
            .map(|i| json!({"at": at(60 + i * 10), "error_rate_pct": 4.5, "p95_ms": 300.0}))
            .collect();
        let (status, verdict) = app
            .post(
                &format!("/v1/deployments/{second}/health"),
                &app.ci,
                json!({"samples": samples}),
            )
            .await;
        assert_eq!(
            (status, verdict["verdict"].as_str()),
            (StatusCode::OK, Some("rollback")),
            "{verdict}"
        );
        assert_eq!(verdict["rollback"]["evidence"]["trigger"], "error_rate");
        assert_eq!(
            verdict["rollback"]["target"]["deployment_id"],
            first.as_str()
        );

        // No more samples after the trigger; the rollback completes and 0.1.0 is live again.
        let (status, problem) = app
            .post(
                &format!("/v1/deployments/{second}/health"),
                &app.ci,
                json!({"samples": [{"at": at(300), "error_rate_pct": 0.1}]}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("deployment_not_in_progress"))
        );
        let (status, restored) = app
            .post(
                &format!("/v1/deployments/{second}/rollback/complete"),
                &app.ci,
                json!({}),
            )
            .await;
        assert_eq!(
            (status, restored["status"].as_str()),
            (StatusCode::OK, Some("rolled_back")),
            "{restored}"
        );
        assert_eq!(restored["live"]["deployment_id"], first.as_str());
        assert_eq!(restored["live"]["version"], "0.1.0");
    }
);

both_backends!(
    incidents_policies_and_requirements_round_trip,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        let (status, opened) = app
        .post("/v1/incidents", &app.ci, json!({"service": "api", "environment": "production", "severity": "sev2", "title": "errors"}))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{opened}");
        let incident = opened["incident_id"].as_str().expect("id");
        let (status, _) = app
            .post(
                &format!("/v1/incidents/{incident}/resolve"),
                &app.ci,
                json!({"resolution": "rolled back"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, problem) = app
            .post(
                &format!("/v1/incidents/{incident}/resolve"),
                &app.ci,
                json!({}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("incident_already_resolved"))
        );

        let mut rules =
            serde_json::to_value(release_pilot_domain::policy::PolicyRules::defaults_for(
                release_pilot_domain::ids::EnvironmentTier::Production,
            ))
            .expect("rules");
        rules["approvals"]["min_approvals"] = json!(3);
        let (status, defined, _) = app
            .send(
                reqwest::Method::PUT,
                "/v1/policies/production",
                Some(&app.admin),
                Some(rules.clone()),
                None,
            )
            .await;
        assert_eq!(
            (status, defined["version"].as_u64()),
            (StatusCode::OK, Some(1)),
            "{defined}"
        );
        let (status, problem, _) = app
            .send(
                reqwest::Method::PUT,
                "/v1/policies/production",
                Some(&app.admin),
                Some(rules),
                None,
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("policy_unchanged"))
        );

        let (status, _) = app
            .post(
                "/v1/requirements",
                &app.admin,
                json!({"id": "req-1", "title": "Login", "category": "functional"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, problem) = app
            .post(
                "/v1/requirements",
                &app.admin,
                json!({"id": "REQ-1", "title": "Login", "category": "functional"}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("already_exists"))
        );
    }
);

both_backends!(readiness_reports_the_database, |db| async move {
    let app = spawn_on(db, CommandConfig::default()).await;
    for path in ["/live", "/ready", "/health", "/health/detailed"] {
        let (status, body, _) = app.send(reqwest::Method::GET, path, None, None, None).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("ok")),
            "{path}"
        );
    }
});

#[tokio::test]
async fn the_openapi_document_describes_every_command_route() {
    let app = spawn().await;
    let (status, document, _) = app
        .send(reqwest::Method::GET, "/openapi.json", None, None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/v1/releases",
        "/v1/releases/{id}/gates",
        "/v1/releases/{id}/approvals",
        "/v1/deployments",
        "/v1/deployments/{id}/canary",
        "/v1/deployments/{id}/health",
        "/v1/deployments/{id}/rollback",
        "/v1/incidents",
        "/v1/policies/{environment}",
        "/v1/requirements",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    let responses = &document["paths"]["/v1/deployments"]["post"]["responses"];
    for status in ["201", "401", "403", "409", "422", "503"] {
        assert!(
            responses[status].is_object(),
            "POST /v1/deployments documents {status}"
        );
    }
}

/// The role matrix of docs/api.md: every command route, the roles it admits.
const MATRIX: &[(&str, &str, &[Role])] = &[
    ("POST", "/v1/releases", &[Role::Ci, Role::Admin]),
    ("POST", "/v1/releases/{id}/gates", &[Role::Ci, Role::Admin]),
    (
        "POST",
        "/v1/releases/{id}/approval-requests",
        &[Role::Ci, Role::Admin],
    ),
    (
        "POST",
        "/v1/releases/{id}/withdraw",
        &[Role::Ci, Role::Admin],
    ),
    (
        "POST",
        "/v1/releases/{id}/approvals",
        &[Role::Approver, Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/releases/{id}/gates/testing/bypass",
        &[Role::Approver, Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/releases/{id}/hotfix-approvals",
        &[Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/deployments",
        &[Role::Ci, Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/deployments/{id}/canary",
        &[Role::Ci, Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/deployments/{id}/health",
        &[Role::Ci, Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/deployments/{id}/traffic-switch",
        &[Role::Ci, Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/deployments/{id}/complete",
        &[Role::Ci, Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/deployments/{id}/fail",
        &[Role::Ci, Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/deployments/{id}/rollback",
        &[Role::Ci, Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/deployments/{id}/rollback/complete",
        &[Role::Ci, Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/incidents",
        &[Role::Ci, Role::IncidentCommander, Role::Admin],
    ),
    (
        "POST",
        "/v1/incidents/{id}/resolve",
        &[Role::Ci, Role::IncidentCommander, Role::Admin],
    ),
    ("PUT", "/v1/policies/production", &[Role::Admin]),
    ("POST", "/v1/requirements", &[Role::Admin]),
    ("PUT", "/v1/requirements/REQ-1", &[Role::Admin]),
    (
        "POST",
        "/v1/environments/api/production/flags/new-checkout",
        &[Role::Ci, Role::Admin],
    ),
    (
        "POST",
        "/v1/environments/api/production/freeze",
        &[Role::IncidentCommander, Role::Admin],
    ),
    (
        "DELETE",
        "/v1/environments/api/production/freeze",
        &[Role::IncidentCommander, Role::Admin],
    ),
];

#[tokio::test]
async fn every_route_refuses_every_role_its_matrix_forbids_before_reading_the_body() {
    let app = spawn().await;
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, app.token(&format!("{role}-user"), &[role]).await));
    }
    let id = "0190c2a8-0000-7000-8000-000000000001";
    for (method, template, allowed) in MATRIX {
        let path = template.replace("{id}", id);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        for (role, token) in &tokens {
            // A body no route accepts: a 403 here proves the role check came first.
            let (status, problem, _) = app
                .send(
                    method.clone(),
                    &path,
                    Some(token),
                    Some(json!({"unexpected": true})),
                    None,
                )
                .await;
            if allowed.contains(role) {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{role} on {method} {path}: {status} {problem}"
                );
                assert!(
                    status.is_client_error(),
                    "{role} on {method} {path}: {status}"
                );
            } else {
                assert_eq!(
                    (status, problem["code"].as_str()),
                    (StatusCode::FORBIDDEN, Some("forbidden")),
                    "{role} on {method} {path}"
                );
            }
        }
        let (status, _, _) = app
            .send(method.clone(), &path, None, Some(json!({})), None)
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
    }
    assert_eq!(app.events().await, 0);
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    let app = spawn_with(CommandConfig {
        rate_per_second: std::num::NonZeroU32::new(1).expect("non-zero"),
        rate_burst: std::num::NonZeroU32::new(2).expect("non-zero"),
        ..CommandConfig::default()
    })
    .await;
    let body =
        json!({"service": "api", "environment": "production", "severity": "low", "title": "x"});
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let response = app
            .client
            .post(format!("{}/v1/incidents", app.base))
            .bearer_auth(&app.ci)
            .json(&body)
            .send()
            .await
            .expect("request");
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().expect("ascii").to_owned());
            let problem: Value = response.json().await.expect("json");
            assert_eq!(problem["code"], "rate_limited");
        }
    }
    assert_eq!(&statuses[..2], [StatusCode::CREATED, StatusCode::CREATED]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)));
    // Another token has its own budget.
    assert_eq!(
        app.post("/v1/incidents", &app.admin, body).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn browsers_may_call_only_from_configured_origins() {
    let app = spawn_with(CommandConfig {
        cors_origins: vec!["https://dash.example.com".into()],
        ..CommandConfig::default()
    })
    .await;
    for (origin, allowed) in [
        ("https://dash.example.com", true),
        ("https://evil.example.com", false),
    ] {
        let response = app
            .client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v1/releases", app.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .expect("preflight");
        let header = response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().expect("ascii").to_owned());
        assert_eq!(header.as_deref() == Some(origin), allowed, "{origin}");
    }
    let response = app
        .client
        .get(format!("{}/live", app.base))
        .send()
        .await
        .expect("live");
    assert_eq!(
        response
            .headers()
            .get("x-content-type-options")
            .map(|v| v.as_bytes()),
        Some(b"nosniff".as_slice())
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_commands_by_outcome() {
    let app = spawn().await;
    let (release, _) = app.release("api", "feat: x", "dev@example.com").await;
    let (status, _) = app
        .post(
            "/v1/deployments",
            &app.ci,
            json!({"release_id": release, "environment": "production", "strategy": "standard"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.starts_with(needle) && !l.starts_with('#'))
            .map(str::to_owned)
    };
    let created = line("commands_total{command=\"CreateRelease\",outcome=\"accepted\"}")
        .expect("CreateRelease counted");
    assert!(created.ends_with(" 1"), "{created}");
    assert!(
        line("commands_total{command=\"StartDeployment\",outcome=\"deployment_refused\"}")
            .is_some(),
        "{text}"
    );
    assert!(
        line("http_requests_total{method=\"POST\",route=\"/v1/releases\",status=\"201\"}")
            .is_some(),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

both_backends!(
    the_remaining_routes_succeed_on_their_happy_paths,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        let commander = app
            .token("ic@example.com", &[Role::IncidentCommander])
            .await;

        // Approval request, gate bypass by an admin, withdrawal.
        let (release, _) = app.release("api", "feat: x", "dev@example.com").await;
        let (status, body) = app
            .post(
                &format!("/v1/releases/{release}/approval-requests"),
                &app.ci,
                json!({"environment": "production"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = app
            .post(
                &format!("/v1/releases/{release}/gates/security/bypass"),
                &app.admin,
                json!({"reason": "scanner outage"}),
            )
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::CREATED, Some("bypassed")),
            "{body}"
        );
        let (status, body) = app
            .post(
                &format!("/v1/releases/{release}/withdraw"),
                &app.ci,
                json!({"reason": "superseded"}),
            )
            .await;
        assert_eq!(
            (status, body["withdrawn"].as_bool()),
            (StatusCode::OK, Some(true)),
            "{body}"
        );

        // The hotfix lane: an incident commander's approval clears a hotfix deployment.
        let (hotfix, _) = app.release("api", "fix: urgent", "dev@example.com").await;
        for gate in ["testing", "security"] {
            let (status, _) = app
                .post(
                    &format!("/v1/releases/{hotfix}/gates"),
                    &app.ci,
                    json!({"gate": gate, "status": "passed"}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let (status, body) = app
            .post(
                &format!("/v1/releases/{hotfix}/hotfix-approvals"),
                &commander,
                json!({"environment": "production", "reason": "INC-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, deployed) = app
            .post(
                "/v1/deployments",
                &commander,
                json!({"release_id": hotfix, "environment": "production", "strategy": "hotfix"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{deployed}");
        assert!(
            deployed["clearance"]["retroactive_approval_due"].is_string(),
            "{deployed}"
        );
        let id = deployed["deployment_id"].as_str().expect("id").to_owned();
        let (status, failed) = app
            .post(
                &format!("/v1/deployments/{id}/fail"),
                &commander,
                json!({"reason": "pods crashlooping"}),
            )
            .await;
        assert_eq!(
            (status, failed["status"].as_str()),
            (StatusCode::OK, Some("failed")),
            "{failed}"
        );

        // Blue-green in dev: switch, complete; then a manual rollback of the live version.
        let (first, _) = app.release("web", "feat: one", "dev@example.com").await;
        let (second, _) = app.release("web", "feat: two", "dev@example.com").await;
        let mut deployments = Vec::new();
        for release in [&first, &second] {
            let (status, started) = app
                .post(
                    "/v1/deployments",
                    &app.ci,
                    json!({"release_id": release, "environment": "dev", "strategy": "blue_green"}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{started}");
            let id = started["deployment_id"].as_str().expect("id").to_owned();
            let (status, switched) = app
                .post(
                    &format!("/v1/deployments/{id}/traffic-switch"),
                    &app.ci,
                    json!({}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{switched}");
            let (status, done) = app
                .post(
                    &format!("/v1/deployments/{id}/complete"),
                    &app.ci,
                    json!({}),
                )
                .await;
            assert_eq!(
                (status, done["status"].as_str()),
                (StatusCode::OK, Some("completed")),
                "{done}"
            );
            deployments.push(id);
        }
        let (status, rollback) = app
            .post(
                &format!("/v1/deployments/{}/rollback", deployments[1]),
                &app.ci,
                json!({"reason": "regression"}),
            )
            .await;
        assert_eq!(
            (status, rollback["status"].as_str()),
            (StatusCode::OK, Some("rolling_back")),
            "{rollback}"
        );
        assert_eq!(rollback["target"]["deployment_id"], deployments[0].as_str());
        let (status, restored) = app
            .post(
                &format!("/v1/deployments/{}/rollback/complete", deployments[1]),
                &app.ci,
                json!({}),
            )
            .await;
        assert_eq!(
            (status, restored["live"]["deployment_id"].as_str()),
            (StatusCode::OK, Some(deployments[0].as_str())),
            "{restored}"
        );
    }
);

both_backends!(
    flags_freezes_and_requirement_updates_work_and_a_freeze_refuses_deployments,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        let path = "/v1/environments/api/dev";
        let (status, body) = app
            .post(
                &format!("{path}/flags/new-checkout"),
                &app.ci,
                json!({"enabled": true}),
            )
            .await;
        assert_eq!(
            (status, body["enabled"].as_bool()),
            (StatusCode::OK, Some(true)),
            "{body}"
        );
        let (status, problem) = app
            .post(
                &format!("{path}/flags/new-checkout"),
                &app.ci,
                json!({"enabled": true}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("flag_unchanged"))
        );

        let (status, _) = app
            .post(
                &format!("{path}/freeze"),
                &app.admin,
                json!({"reason": "launch day"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (release, _) = app.release("api", "feat: x", "dev@example.com").await;
        let (status, problem) = app
            .post(
                "/v1/deployments",
                &app.ci,
                json!({"release_id": release, "environment": "dev", "strategy": "standard"}),
            )
            .await;
        assert_eq!(
            (status, problem["refusals"][0]["code"].as_str()),
            (StatusCode::CONFLICT, Some("change_frozen")),
            "{problem}"
        );
        let (status, _, _) = app
            .send(
                reqwest::Method::DELETE,
                &format!("{path}/freeze"),
                Some(&app.admin),
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .post(
                "/v1/deployments",
                &app.ci,
                json!({"release_id": release, "environment": "dev", "strategy": "standard"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, problem, _) = app
            .send(
                reqwest::Method::DELETE,
                &format!("{path}/freeze"),
                Some(&app.admin),
                None,
                None,
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("not_frozen"))
        );

        let (status, _) = app
            .post(
                "/v1/requirements",
                &app.admin,
                json!({"id": "REQ-1", "title": "Login", "category": "functional"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _, _) = app
            .send(
                reqwest::Method::PUT,
                "/v1/requirements/REQ-1",
                Some(&app.admin),
                Some(json!({"title": "Login with SSO", "category": "security"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, problem, _) = app
            .send(
                reqwest::Method::PUT,
                "/v1/requirements/REQ-404",
                Some(&app.admin),
                Some(json!({"title": "x", "category": "y"})),
                None,
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("requirement_not_found"))
        );
    }
);

#[tokio::test]
async fn when_postgresql_is_gone_commands_get_503_and_readiness_fails() {
    let app = spawn().await;
    // Take the database away underneath the running service.
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(
        &release_pilot_ledger::testkit::admin_url(),
    )
    .await
    .expect("admin connection");
    let name = app.db.postgres_name().expect("a PostgreSQL test database");
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop");
    let (status, problem, content_type) = app
        .send(
            reqwest::Method::POST,
            "/v1/incidents",
            Some(&app.ci),
            Some(json!({"service": "api", "environment": "dev", "severity": "low", "title": "x"})),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("database_unavailable")
        ),
        "{problem}"
    );
    assert_eq!(content_type, "application/problem+json");
    let (status, body, _) = app
        .send(reqwest::Method::GET, "/ready", None, None, None)
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
    );
    let (status, _, _) = app
        .send(reqwest::Method::GET, "/live", None, None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "the process itself is alive");
}

both_backends!(
    a_healthy_canary_advances_stage_by_stage_to_completion,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        let (release, _) = app.release("api", "feat: x", "dev@example.com").await;
        let started_at = chrono::Utc::now();
        let (status, started) = app
        .post("/v1/deployments", &app.ci, json!({"release_id": release, "environment": "dev", "strategy": "canary", "started_at": started_at}))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{started}");
        let id = started["deployment_id"].as_str().expect("id").to_owned();
        // Default stages: 5 % for 10 min, 25 % for 30 min, 75 % for 60 min, then 100 %.
        let mut stage_start = started_at;
        for (weight, minutes) in [(25, 10), (75, 30), (100, 60)] {
            let samples: Vec<Value> = (0..=minutes)
            .map(|m| json!({"at": stage_start + chrono::Duration::minutes(m), "error_rate_pct": 0.1, "p95_ms": 180.0}))
            .collect();
            let (status, verdict) = app
                .post(
                    &format!("/v1/deployments/{id}/health"),
                    &app.ci,
                    json!({"samples": samples}),
                )
                .await;
            assert_eq!(
                (status, verdict["verdict"].as_str()),
                (StatusCode::OK, Some("healthy")),
                "{verdict}"
            );
            let at = stage_start + chrono::Duration::minutes(minutes);
            let (status, advanced) = app
                .post(
                    &format!("/v1/deployments/{id}/canary"),
                    &app.ci,
                    json!({"weight_percent": weight, "at": at}),
                )
                .await;
            assert_eq!(
                (status, advanced["weight_percent"].as_u64()),
                (StatusCode::OK, Some(weight)),
                "{advanced}"
            );
            stage_start = at;
        }
        let (status, done) = app
            .post(
                &format!("/v1/deployments/{id}/complete"),
                &app.ci,
                json!({"finished_at": stage_start}),
            )
            .await;
        assert_eq!(
            (status, done["status"].as_str()),
            (StatusCode::OK, Some("completed")),
            "{done}"
        );
    }
);

both_backends!(
    the_callers_traceparent_and_idempotency_key_are_recorded_with_the_event,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let response = app
        .client
        .post(format!("{}/v1/incidents", app.base))
        .bearer_auth(&app.ci)
        .header("traceparent", traceparent)
        .header("idempotency-key", "incident-42")
        .json(&json!({"service": "api", "environment": "production", "severity": "high", "title": "errors"}))
        .send()
        .await
        .expect("request");
        assert_eq!(response.status(), StatusCode::CREATED);
        let metadata: String = on!(&app.db.db, |pool| sqlx::query_scalar(
            "SELECT CAST(metadata AS TEXT) FROM events WHERE event_type = 'IncidentOpened'",
        )
        .fetch_one(pool)
        .await
        .expect("event"));
        let metadata: Value = serde_json::from_str(&metadata).expect("JSON");
        assert_eq!(metadata["traceparent"], traceparent);
        assert_eq!(metadata["idempotency_key"], "incident-42");
        assert_eq!(metadata["actor"], "ci-bot");
        assert_eq!(metadata["actor_roles"], "ci");
        assert_eq!(metadata["command"], "OpenIncident");
        assert!(metadata["correlation_id"]
            .as_str()
            .is_some_and(|c| uuid::Uuid::parse_str(c).is_ok()));
    }
);

both_backends!(
    detailed_health_shows_the_ledger_and_every_projection,
    |db| async move {
        let app = spawn_on(db, CommandConfig::default()).await;
        app.release("api", "feat: x", "dev@example.com").await;
        on!(&app.db.db, |pool| {
            sqlx::query(
        "INSERT INTO projection_checkpoints (projection, position, failed_at_position, failure) \
         VALUES ('audit_index', 0, NULL, NULL), ('picky', 0, 1, 'entry 1 is poison')",
    )
    .execute(pool)
    .await
    .map(drop)
        })
        .expect("checkpoints");
        let (status, body, _) = app
            .send(reqwest::Method::GET, "/health/detailed", None, None, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["ledger"]["unsealed_events"], 1, "{body}");
        let projections = body["projections"].as_array().expect("projections");
        assert_eq!(projections.len(), 2);
        assert_eq!(projections[1]["projection"], "picky");
        assert_eq!(projections[1]["stopped_at"], 1);
        assert_eq!(projections[1]["failure"], "entry 1 is poison");
    }
);
