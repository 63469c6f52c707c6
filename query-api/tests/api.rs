//! The query API over real HTTP, on histories written through the command API, sealed
//! and projected: DORA with hand-computed values, as-of and known-at answers, traceability,
//! exceptions, signed exports verified offline, and bad input — every test once on
//! PostgreSQL and once on the embedded SQLite backend.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use release_pilot_command_service::auth::TokenStore;
use release_pilot_command_service::{App as CommandApp, AppState, CommandConfig};
use release_pilot_domain::ids::Person;
use release_pilot_domain::roles::Role;
use release_pilot_ledger::both_backends;
use release_pilot_ledger::export::{verify_export, ExportFailure};
use release_pilot_ledger::sealer::{Sealer, SealerConfig};
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::{seal_everything, TestDb};
use release_pilot_ledger::verify::VerifyFailure;
use release_pilot_projector::catalogue::AnyProjection;
use release_pilot_projector::{Projector, RunError};
use release_pilot_query_api::{App as QueryApp, QueryConfig, QueryState};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Stack {
    db: TestDb,
    key: LedgerKey,
    command: String,
    query: String,
    http: reqwest::Client,
    ci: String,
    approvers: [String; 2],
    commander: String,
    auditor: String,
}

async fn token(db: &TestDb, subject: &str, role: Role) -> String {
    TokenStore::new(db.db.clone())
        .create(
            &Person::parse(subject).expect("valid"),
            &BTreeSet::from([role]),
        )
        .await
        .expect("token")
        .1
}

async fn stack(db: TestDb) -> Stack {
    let key = LedgerKey::generate();
    let command = CommandApp::build(
        "127.0.0.1:0".parse().expect("addr"),
        AppState::new(db.db.clone(), CommandConfig::default()),
    )
    .await
    .expect("bind");
    let command_base = format!("http://{}", command.local_addr().expect("addr"));
    tokio::spawn(command.run(std::future::pending()));
    let config = QueryConfig {
        public_key: Some(key.verifying_key()),
        ..QueryConfig::default()
    };
    let query = QueryApp::build(
        "127.0.0.1:0".parse().expect("addr"),
        QueryState::new(db.db.clone(), config),
    )
    .await
    .expect("bind");
    let query_base = format!("http://{}", query.local_addr().expect("addr"));
    tokio::spawn(query.run(std::future::pending()));
    Stack {
        ci: token(&db, "ci-bot", Role::Ci).await,
        approvers: [
            token(&db, "ann@example.com", Role::Approver).await,
            token(&db, "bob@example.com", Role::Approver).await,
        ],
        commander: token(&db, "ivy@example.com", Role::IncidentCommander).await,
        auditor: token(&db, "aud@example.com", Role::Auditor).await,
        db,
        key,
        command: command_base,
        query: query_base,
        http: reqwest::Client::new(),
    }
}

impl Stack {
    async fn post(&self, token: &str, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.command))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.query))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(&self.ci, path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Seals everything and brings every projection up to the ledger's head.
    async fn settle(&self) {
        seal_everything(&self.db.db, &self.key, Duration::from_secs(30)).await;
        for projection in AnyProjection::ALL {
            let projector = Projector::new(self.db.db.clone(), projection, 1000);
            loop {
                match projector.apply_next().await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(RunError::Busy) => tokio::time::sleep(Duration::from_millis(10)).await,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }

    /// A release of `service` from one commit, its gates recorded, approved for
    /// production unless `approve` is false.
    async fn release(
        &self,
        service: &str,
        sha: &str,
        message: &str,
        committed_at: &str,
        approve: bool,
    ) -> String {
        let requirement = message
            .split("Refs: ")
            .nth(1)
            .map(str::to_owned)
            .into_iter()
            .collect::<Vec<_>>();
        let created = self
            .post(
                &self.ci,
                "/v1/releases",
                json!({"service": service, "commits": [{"sha": sha, "message": message,
                       "author": "dev@example.com", "committed_at": committed_at}]}),
            )
            .await;
        let id = created["release_id"].as_str().expect("id").to_owned();
        let tests: Vec<Value> = requirement
            .iter()
            .map(|r| json!({"name": format!("it_meets_{r}"), "status": "passed", "requirements": [r]}))
            .collect();
        self.post(
            &self.ci,
            &format!("/v1/releases/{id}/gates"),
            json!({"gate": "testing", "evidence": {"tests_passed": 10, "tests_failed": 0, "coverage_pct": 95.0, "test_cases": tests}}),
        )
        .await;
        self.post(
            &self.ci,
            &format!("/v1/releases/{id}/gates"),
            json!({"gate": "security", "evidence": {"vulnerabilities": {"critical": 0, "high": 0}}}),
        )
        .await;
        if approve {
            for approver in &self.approvers {
                self.post(
                    approver,
                    &format!("/v1/releases/{id}/approvals"),
                    json!({"environment": "production", "decision": "approve"}),
                )
                .await;
            }
        }
        id
    }

    async fn deploy(
        &self,
        release: &str,
        strategy: &str,
        started: &str,
        remediates: Option<&str>,
    ) -> String {
        let token = if strategy == "hotfix" {
            &self.commander
        } else {
            &self.ci
        };
        let mut body = json!({"release_id": release, "environment": "production", "strategy": strategy, "started_at": started});
        if let Some(incident) = remediates {
            body["remediates_incident"] = json!(incident);
        }
        let started = self.post(token, "/v1/deployments", body).await;
        started["deployment_id"].as_str().expect("id").to_owned()
    }

    async fn complete(&self, deployment: &str, finished: &str) {
        self.post(
            &self.ci,
            &format!("/v1/deployments/{deployment}/complete"),
            json!({"finished_at": finished}),
        )
        .await;
    }
}

/// The DORA scenario (checkout, production, week of Monday 2 March 2026):
/// - D1: commit c1 at 08:00 on 2 March, live at 10:00 (lead 120 min);
/// - D2: commit c2 at 09:00 on 3 March, live at 11:00 (lead 120 min); an incident opened at
///   12:00 names no deployment, is attributed to D2 by the rule, resolved at 12:45;
/// - D3: started 09:00 on 4 March, rolled back from 09:30 to 09:50 (c3 never reaches
///   production);
/// - D4: a hotfix (commit c4 at 07:00 on 5 March) through the incident-commander lane,
///   live at 08:30 (lead 90 min), never approved afterwards.
struct Scenario {
    d2: String,
    d3: String,
    d4: String,
    incident: String,
    release1: String,
}

async fn scenario(s: &Stack) -> Scenario {
    for (id, title) in [("REQ-1", "Checkout in one step"), ("REQ-2", "Gift cards")] {
        s.post(
            &s.ci_admin().await,
            "/v1/requirements",
            json!({"id": id, "title": title, "category": "functional"}),
        )
        .await;
    }
    let r1 = s
        .release(
            "checkout",
            "c1c1c1c1",
            "feat: one-step checkout\n\nRefs: REQ-1",
            "2026-03-02T08:00:00Z",
            true,
        )
        .await;
    let d1 = s
        .deploy(&r1, "standard", "2026-03-02T09:00:00Z", None)
        .await;
    s.complete(&d1, "2026-03-02T10:00:00Z").await;
    let r2 = s
        .release(
            "checkout",
            "c2c2c2c2",
            "fix: rounding",
            "2026-03-03T09:00:00Z",
            true,
        )
        .await;
    let d2 = s
        .deploy(&r2, "standard", "2026-03-03T10:00:00Z", None)
        .await;
    s.complete(&d2, "2026-03-03T11:00:00Z").await;
    let opened = s
        .post(
            &s.commander,
            "/v1/incidents",
            json!({"service": "checkout", "environment": "production", "severity": "sev2",
                   "title": "totals off by a cent", "opened_at": "2026-03-03T12:00:00Z"}),
        )
        .await;
    let incident = opened["incident_id"].as_str().expect("id").to_owned();
    s.post(
        &s.commander,
        &format!("/v1/incidents/{incident}/resolve"),
        json!({"resolved_at": "2026-03-03T12:45:00Z"}),
    )
    .await;
    let r3 = s
        .release(
            "checkout",
            "c3c3c3c3",
            "feat: coupons",
            "2026-03-04T08:00:00Z",
            true,
        )
        .await;
    let d3 = s
        .deploy(&r3, "standard", "2026-03-04T09:00:00Z", None)
        .await;
    s.post(
        &s.ci,
        &format!("/v1/deployments/{d3}/rollback"),
        json!({"reason": "errors", "started_at": "2026-03-04T09:30:00Z"}),
    )
    .await;
    s.post(
        &s.ci,
        &format!("/v1/deployments/{d3}/rollback/complete"),
        json!({"finished_at": "2026-03-04T09:50:00Z"}),
    )
    .await;
    let r4 = s
        .release(
            "checkout",
            "c4c4c4c4",
            "fix: hot path",
            "2026-03-05T07:00:00Z",
            false,
        )
        .await;
    s.post(
        &s.commander,
        &format!("/v1/releases/{r4}/hotfix-approvals"),
        json!({"environment": "production", "reason": "checkout down"}),
    )
    .await;
    let d4 = s.deploy(&r4, "hotfix", "2026-03-05T08:00:00Z", None).await;
    s.complete(&d4, "2026-03-05T08:30:00Z").await;
    s.settle().await;
    Scenario {
        d2,
        d3,
        d4,
        incident,
        release1: r1,
    }
}

impl Stack {
    async fn ci_admin(&self) -> String {
        token(&self.db, "root@example.com", Role::Admin).await
    }
}

both_backends!(dora_metrics_match_hand_computed_values, |db| async move {
    let s = stack(db).await;
    let ids = scenario(&s).await;
    let r = s
        .ok("/v1/dora?service=checkout&from=2026-03-02&to=2026-03-09&bucket=day&details=true")
        .await;

    // Deployment frequency: D1, D2, D4 completed on 3 distinct days of a 7-day window.
    let df = &r["deployment_frequency"];
    assert_eq!(df["value"]["deployments"], 3, "{r}");
    assert_eq!(df["value"]["deploy_days"], 3);
    assert_eq!(df["value"]["per_day"], 0.429);
    assert_eq!(df["tier"], "high");
    assert_eq!(df["quick_check"]["answer"], 4);
    assert_eq!(df["quick_check"]["score"], 6.0);

    // Lead time: c1 120, c2 120, c4 90 minutes; c3 never reached production.
    let lt = &r["change_lead_time"];
    assert_eq!(lt["value"]["commits"], 3);
    assert_eq!(lt["value"]["median_minutes"], 120.0);
    assert_eq!(lt["value"]["p90_minutes"], 120.0);
    assert_eq!(lt["tier"], "elite");
    let shas: BTreeSet<&str> = lt["details"]["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .filter_map(|c| c["sha"].as_str())
        .collect();
    assert_eq!(shas, BTreeSet::from(["c1c1c1c1", "c2c2c2c2", "c4c4c4c4"]));

    // Change fail rate: D2 (the attributed incident) and D3 (rolled back) of four.
    let cfr = &r["change_fail_rate"];
    assert_eq!(cfr["value"]["failed"], 2);
    assert_eq!(cfr["value"]["finished"], 4);
    assert_eq!(cfr["value"]["rate"], 0.5);
    assert_eq!(cfr["tier"], "low");
    let failed = cfr["details"]["failed_deployments"]
        .as_array()
        .expect("list");
    let d2 = failed
        .iter()
        .find(|d| d["deployment_id"] == ids.d2.as_str())
        .expect("D2 is a failed change");
    assert_eq!(d2["incidents"][0]["incident_id"], ids.incident.as_str());
    assert_eq!(
        d2["incidents"][0]["declared"], false,
        "attributed by the rule"
    );
    assert!(failed.iter().any(|d| d["deployment_id"] == ids.d3.as_str()));

    // Recovery: D2 45 min (incident resolved), D3 20 min (rollback): median 32.5.
    let recovery = &r["failed_deployment_recovery_time"];
    assert_eq!(recovery["value"]["median_minutes"], 32.5);
    assert_eq!(recovery["tier"], "elite");

    // Rework: the hotfix, one of four.
    let rework = &r["deployment_rework_rate"];
    assert_eq!(rework["value"]["rate"], 0.25);
    assert_eq!(
        rework["details"]["unplanned_deployments"],
        json!([ids.d4.as_str()])
    );

    // Quick Check overall: (6 + 8 + 5 + 10 + 7.5) / 5.
    assert_eq!(r["quick_check_overall"], 7.3);

    // Daily series: deployments on 2, 3 and 5 March.
    let series = r["series"].as_array().expect("series");
    assert_eq!(series.len(), 7);
    let per_day: Vec<u64> = series
        .iter()
        .map(|b| b["deployments"].as_u64().unwrap_or(99))
        .collect();
    assert_eq!(per_day, vec![1, 1, 0, 1, 0, 0, 0]);

    // A window with nothing in it says why.
    let empty = s.ok("/v1/dora?from=2025-01-01&to=2025-02-01").await;
    assert!(empty["deployment_frequency"]["value"].is_null());
    assert!(empty["deployment_frequency"]["reason"].is_string());
});

both_backends!(
    traceability_runs_both_ways_and_coverage_names_the_gaps,
    |db| async move {
        let s = stack(db).await;
        let ids = scenario(&s).await;
        let trace = s.ok("/v1/trace/requirements/REQ-1").await;
        assert_eq!(trace["requirement"]["title"], "Checkout in one step");
        assert_eq!(trace["commits"][0]["sha"], "c1c1c1c1");
        assert_eq!(trace["tests"][0]["status"], "passed");
        let release = &trace["releases"][0];
        assert_eq!(release["release_id"], ids.release1.as_str());
        assert_eq!(release["deployments"][0]["status"], "succeeded");
        assert_eq!(release["approvals"].as_array().map(Vec::len), Some(2));

        let from_deployment = s.ok(&format!("/v1/trace/deployments/{}", ids.d2)).await;
        assert_eq!(from_deployment["environment"], "checkout/production");
        assert_eq!(from_deployment["release"]["commits"][0]["sha"], "c2c2c2c2");
        let hotfix = s.ok(&format!("/v1/trace/deployments/{}", ids.d4)).await;
        assert_eq!(hotfix["strategy"], "hotfix");

        let coverage = s.ok("/v1/trace/coverage").await;
        assert_eq!(coverage["without_commit"], json!(["REQ-2"]));
        assert_eq!(coverage["never_in_production"], json!(["REQ-2"]));
        let orphans: Vec<&str> = coverage["orphan_commits"]
            .as_array()
            .expect("orphans")
            .iter()
            .filter_map(|c| c["sha"].as_str())
            .collect();
        assert_eq!(orphans, vec!["c2c2c2c2", "c3c3c3c3", "c4c4c4c4"]);

        let response = s
            .http
            .get(format!("{}/v1/trace/matrix?format=csv", s.query))
            .bearer_auth(&s.ci)
            .send()
            .await
            .expect("csv");
        assert_eq!(
            response.headers()["content-type"],
            "text/csv; charset=utf-8"
        );
        let csv = response.text().await.expect("text");
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
        lines[0],
        "requirement,title,category,commits,tests_passed,tests_failed,releases,production_versions"
    );
        assert_eq!(
            lines[1],
            "REQ-1,Checkout in one step,functional,1,1,0,1,0.1.0"
        );
        assert_eq!(lines[2], "REQ-2,Gift cards,functional,0,0,0,0,");

        let (status, _) = s.get(&s.ci, "/v1/trace/requirements/REQ-99").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
);

both_backends!(
    exceptions_show_the_hotfix_lane_and_its_overdue_approvals_to_auditors_only,
    |db| async move {
        let s = stack(db).await;
        let ids = scenario(&s).await;
        let (status, problem) = s.get(&s.ci, "/v1/exceptions").await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden"))
        );
        let (status, report) = s.get(&s.auditor, "/v1/exceptions").await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let items = report["items"].as_array().expect("items");
        let of_kind =
            |kind: &str| -> Vec<&Value> { items.iter().filter(|i| i["kind"] == kind).collect() };
        let lane = of_kind("hotfix_lane");
        assert_eq!(lane.len(), 1);
        assert_eq!(lane[0]["deployment_id"], ids.d4.as_str());
        assert_eq!(lane[0]["detail"]["hotfix_approved_by"], "ivy@example.com");
        assert!(of_kind("retroactive_approval_overdue").is_empty());
        let overdue = report["overdue"].as_array().expect("overdue");
        assert_eq!(overdue.len(), 1);
        assert_eq!(overdue[0]["detail"]["state"], "still_missing");
        assert_eq!(overdue[0]["detail"]["due"], "2026-03-06T08:00:00Z");

        // Recorded exceptions page by position.
        let (_, page) = s.get(&s.auditor, "/v1/exceptions?limit=1").await;
        assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
        let next = page["next"].as_i64().expect("a next page");
        let (_, rest) = s
            .get(&s.auditor, &format!("/v1/exceptions?limit=1&after={next}"))
            .await;
        assert!(
            rest["items"][0]["position"]
                .as_i64()
                .is_some_and(|p| p > next)
                || rest["items"].as_array().is_some_and(Vec::is_empty)
        );
        let (status, problem) = s.get(&s.auditor, "/v1/exceptions?kind=nope").await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_kind"))
        );
    }
);

/// A time `minutes_ago`, as RFC 3339 in UTC (`Z`, so it needs no escaping in a URL).
fn at(minutes_ago: i64) -> String {
    rfc3339(Utc::now() - chrono::Duration::minutes(minutes_ago))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

both_backends!(
    as_of_answers_stay_put_and_a_backfill_changes_world_time_not_ledger_time,
    |db| async move {
        let s = stack(db).await;
        // v1 goes live three hours ago.
        let r1 = s
            .release("api", "a1a1a1a1", "feat: first", &at(300), true)
            .await;
        let d1 = s.deploy(&r1, "standard", &at(190), None).await;
        s.complete(&d1, &at(180)).await;
        s.settle().await;
        let known_before = Utc::now();
        let t_between = at(120);
        let board_then = s.ok(&format!("/v1/environments?as_of={t_between}")).await;
        let release_then = s
            .ok(&format!(
                "/v1/releases/{r1}?as_of={}",
                rfc3339(known_before)
            ))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;

        // Later: v2 goes live an hour ago, and v1 gets a staging approval.
        let r2 = s
            .release("api", "a2a2a2a2", "feat: second", &at(100), true)
            .await;
        let d2 = s.deploy(&r2, "standard", &at(70), None).await;
        s.complete(&d2, &at(60)).await;
        s.post(
            &s.approvers[0],
            &format!("/v1/releases/{r1}/approvals"),
            json!({"environment": "staging", "decision": "approve"}),
        )
        .await;
        s.settle().await;

        // The past stays as it was.
        assert_eq!(
            s.ok(&format!("/v1/environments?as_of={t_between}")).await["items"],
            board_then["items"]
        );
        assert_eq!(board_then["items"][0]["version"], "0.1.0");
        assert_eq!(
            s.ok(&format!(
                "/v1/releases/{r1}?as_of={}",
                rfc3339(known_before)
            ))
            .await["approvals"],
            release_then["approvals"]
        );
        assert!(release_then["approvals"].get("staging").is_none());
        let now = s.ok("/v1/environments/api/production").await;
        assert_eq!(now["live"]["version"], "0.2.0");
        assert_eq!(now["live"]["by"], "ci-bot");

        // A deployment reported late: v3 went live 150 minutes ago, recorded only now.
        let known_before_backfill = Utc::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r3 = s
            .release("api", "a3a3a3a3", "fix: third", &at(200), true)
            .await;
        let d3 = s.deploy(&r3, "standard", &at(160), None).await;
        s.complete(&d3, &at(150)).await;
        s.settle().await;

        // World time: at t_between (120 minutes ago) v3 was live.
        let world = s
            .ok(&format!(
                "/v1/environments/api/production?as_of={t_between}"
            ))
            .await;
        assert_eq!(world["live"]["version"], "0.2.1");
        // Ledger time: as known before the backfill was recorded, v1 was live then.
        let ledger = s
            .ok(&format!(
                "/v1/environments/api/production?as_of={t_between}&known_at={}",
                rfc3339(known_before_backfill)
            ))
            .await;
        assert_eq!(ledger["live"]["version"], "0.1.0");
        // And now, v2 is still live: the backfill sits in the past.
        assert_eq!(
            s.ok("/v1/environments/api/production").await["live"]["version"],
            "0.2.0"
        );
        let history = s.ok("/v1/environments/api/production/history").await;
        let versions: Vec<&str> = history["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["version"].as_str())
            .collect();
        assert_eq!(versions, vec!["0.1.0", "0.2.1", "0.2.0"]);
        assert!(history["items"][2]["until"].is_null());
    }
);

both_backends!(
    an_export_verifies_offline_and_any_tampering_is_named,
    |db| async move {
        let s = stack(db).await;
        scenario(&s).await;
        Sealer::new(s.db.db.clone(), s.key.clone(), SealerConfig::default())
            .checkpoint_now()
            .await
            .expect("checkpoint");
        let (status, problem) = s.get(&s.ci, "/v1/audit/export").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        let response = s
            .http
            .get(format!("{}/v1/audit/export", s.query))
            .bearer_auth(&s.auditor)
            .send()
            .await
            .expect("export");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
        let text = response.text().await.expect("body");
        let key = s.key.verifying_key();
        let report = verify_export(text.as_bytes(), &key).expect("an intact export verifies");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            report.entries,
            i64::try_from(lines.len() - 1).expect("count")
        );
        assert_eq!(report.first_position, 1);

        // The public key as served verifies it too.
        let (status, pem) = s.get(&s.ci, "/v1/ledger/public-key").await;
        assert_eq!(status, StatusCode::OK);
        let served = release_pilot_ledger::signing::public_key_from_pem(pem.as_str().expect("pem"))
            .expect("a key");
        assert_eq!(served, key);

        let rejoin = |lines: &[String]| lines.join("\n") + "\n";
        let original: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        // One byte of one entry changed (line 6 holds position 5).
        let mut altered = original.clone();
        let start = altered[5].find("\"recorded_at\":\"").expect("recorded_at") + 15;
        let digit = altered[5].as_bytes()[start + 20];
        let flipped = if digit == b'1' { "2" } else { "1" };
        altered[5].replace_range(start + 20..start + 21, flipped);
        let failure = verify_export(rejoin(&altered).as_bytes(), &key).expect_err("altered");
        assert_eq!(
            failure,
            ExportFailure::Chain(VerifyFailure::HashMismatch { position: 5 })
        );
        // A line dropped.
        let mut dropped = original.clone();
        dropped.remove(4);
        let failure = verify_export(rejoin(&dropped).as_bytes(), &key).expect_err("dropped");
        assert_eq!(
            failure,
            ExportFailure::Chain(VerifyFailure::Gap {
                expected: 4,
                found: 5
            })
        );
        // Two lines swapped.
        let mut swapped = original.clone();
        swapped.swap(7, 8);
        let failure = verify_export(rejoin(&swapped).as_bytes(), &key).expect_err("reordered");
        assert_eq!(
            failure,
            ExportFailure::Chain(VerifyFailure::Gap {
                expected: 7,
                found: 8
            })
        );
        // The tail cut off.
        let failure = verify_export(rejoin(&original[..original.len() - 1]).as_bytes(), &key)
            .expect_err("cut");
        assert!(
            matches!(failure, ExportFailure::Truncated { .. }),
            "{failure}"
        );
        // Another key.
        let other = LedgerKey::generate().verifying_key();
        assert!(matches!(
            verify_export(text.as_bytes(), &other),
            Err(ExportFailure::Signature(_))
        ));

        // A period export, and CSV with the manifest in a header.
        let response = s
            .http
            .get(format!(
                "{}/v1/audit/export?format=csv&from=2020-01-01",
                s.query
            ))
            .bearer_auth(&s.auditor)
            .send()
            .await
            .expect("csv");
        assert_eq!(response.status(), StatusCode::OK);
        let manifest: Value = serde_json::from_str(
            response.headers()["release-pilot-manifest"]
                .to_str()
                .expect("header"),
        )
        .expect("manifest");
        let csv = response.text().await.expect("csv");
        assert_eq!(
            csv.lines().count() - 1,
            usize::try_from(manifest["manifest"]["entries"].as_i64().expect("n")).expect("n")
        );
        let (status, problem) = s.get(&s.auditor, "/v1/audit/export?from=2099-01-01").await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("nothing_to_export"))
        );
    }
);

both_backends!(
    the_audit_trail_pages_by_position_and_filters,
    |db| async move {
        let s = stack(db).await;
        scenario(&s).await;
        let (status, first) = s.get(&s.auditor, "/v1/audit?limit=5").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(first["items"].as_array().map(Vec::len), Some(5));
        assert_eq!(first["next"], 5);
        let (_, second) = s.get(&s.auditor, "/v1/audit?limit=5&after=5").await;
        assert_eq!(second["items"][0]["position"], 6);
        let (_, by_actor) = s
            .get(&s.auditor, "/v1/audit?actor=ivy@example.com&limit=1000")
            .await;
        let items = by_actor["items"].as_array().expect("items");
        assert!(!items.is_empty());
        assert!(items.iter().all(|i| i["actor"] == "ivy@example.com"));
        let (_, incidents) = s.get(&s.auditor, "/v1/audit?aggregate_type=incident").await;
        let types: Vec<&str> = incidents["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["event_type"].as_str())
            .collect();
        assert_eq!(types, vec!["IncidentOpened", "IncidentResolved"]);
        let (_, checkpoint) = s.get(&s.ci, "/v1/ledger/checkpoint").await;
        assert!(checkpoint["ledger_head"].as_i64().is_some_and(|h| h > 20));
    }
);

both_backends!(bad_parameters_get_a_problem_never_a_500, |db| async move {
    let s = stack(db).await;
    scenario(&s).await;
    let cases: &[(&str, StatusCode, &str)] = &[
        (
            "/v1/dora?from=yesterday",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/dora?from=2026-03-09&to=2026-03-02",
            StatusCode::BAD_REQUEST,
            "invalid_window",
        ),
        (
            "/v1/dora?bucket=fortnight",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/dora?service=nope",
            StatusCode::NOT_FOUND,
            "service_not_found",
        ),
        (
            "/v1/dora?colour=blue",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/releases?after=garbage",
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        (
            "/v1/releases?after=12.not-a-uuid",
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        (
            "/v1/releases?limit=0",
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        ),
        (
            "/v1/releases?limit=ten",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/releases/not-a-uuid",
            StatusCode::NOT_FOUND,
            "release_not_found",
        ),
        (
            "/v1/releases/00000000-0000-0000-0000-000000000000",
            StatusCode::NOT_FOUND,
            "release_not_found",
        ),
        (
            "/v1/releases?service=nope",
            StatusCode::NOT_FOUND,
            "service_not_found",
        ),
        (
            "/v1/environments/checkout/moon",
            StatusCode::NOT_FOUND,
            "environment_not_found",
        ),
        (
            "/v1/environments?as_of=2026-13-01",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/deployments?status=great",
            StatusCode::BAD_REQUEST,
            "invalid_status",
        ),
        (
            "/v1/deployments?from=2026-03-09&to=2026-03-09",
            StatusCode::BAD_REQUEST,
            "invalid_window",
        ),
        (
            "/v1/deployments/123",
            StatusCode::NOT_FOUND,
            "deployment_not_found",
        ),
        (
            "/v1/trace/matrix?format=xml",
            StatusCode::BAD_REQUEST,
            "invalid_format",
        ),
        ("/v1/nothing", StatusCode::NOT_FOUND, "route_not_found"),
    ];
    for (path, status, code) in cases {
        let response = s
            .http
            .get(format!("{}{path}", s.query))
            .bearer_auth(&s.ci)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), *status, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], *code, "{path}: {body}");
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let (status, _) = s.get("not-a-token", "/v1/dora").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, problem) = s.get(&s.auditor, "/v1/audit?after=-1").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_cursor"))
    );
});

both_backends!(
    releases_and_deployments_page_with_keyset_cursors,
    |db| async move {
        let s = stack(db).await;
        scenario(&s).await;
        let first = s.ok("/v1/releases?service=checkout&limit=3").await;
        assert_eq!(first["items"].as_array().map(Vec::len), Some(3));
        let next = first["next"].as_str().expect("a next cursor");
        let second = s
            .ok(&format!(
                "/v1/releases?service=checkout&limit=3&after={next}"
            ))
            .await;
        assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
        assert!(second["next"].is_null());
        let versions: Vec<&str> = first["items"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(second["items"].as_array().into_iter().flatten())
            .filter_map(|r| r["version"].as_str())
            .collect();
        assert_eq!(versions, vec!["0.2.1", "0.2.0", "0.1.1", "0.1.0"]);

        let page = s.ok("/v1/deployments?environment=production&limit=2").await;
        let next = page["next"].as_str().expect("cursor");
        let rest = s
            .ok(&format!(
                "/v1/deployments?environment=production&limit=2&after={next}"
            ))
            .await;
        let statuses: Vec<&str> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(rest["items"].as_array().into_iter().flatten())
            .filter_map(|d| d["status"].as_str())
            .collect();
        assert_eq!(
            statuses,
            vec!["succeeded", "rolled_back", "succeeded", "succeeded"]
        );
        let started: Vec<DateTime<Utc>> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["started_at"].as_str()?.parse().ok())
            .collect();
        assert!(started[0] > started[1]);
    }
);

both_backends!(
    the_openapi_document_describes_every_read_route,
    |db| async move {
        let s = stack(db).await;
        let response = s
            .http
            .get(format!("{}/openapi.json", s.query))
            .send()
            .await
            .expect("openapi");
        let doc: Value = response.json().await.expect("json");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        for path in [
            "/v1/releases",
            "/v1/releases/{id}",
            "/v1/releases/{id}/timeline",
            "/v1/environments",
            "/v1/environments/{service}/{environment}",
            "/v1/environments/{service}/{environment}/history",
            "/v1/deployments",
            "/v1/deployments/{id}",
            "/v1/dora",
            "/v1/trace/requirements/{id}",
            "/v1/trace/deployments/{id}",
            "/v1/trace/matrix",
            "/v1/trace/coverage",
            "/v1/audit",
            "/v1/audit/export",
            "/v1/ledger/checkpoint",
            "/v1/ledger/public-key",
            "/v1/exceptions",
        ] {
            assert!(doc["paths"][path]["get"].is_object(), "{path} is missing");
        }
    }
);
