//! A generated, realistic release history, sent through the public API: several services
//! releasing from conventional commits, gates with test cases linked to requirements,
//! staging then production, two approvals, canary and blue-green rollouts, automatic
//! rollbacks on unhealthy samples, failed deployments, incidents (with and without the
//! deployment that caused them), hotfixes through the incident-commander lane with
//! retroactive approvals (some never given), self-approval attempts, gate bypasses and
//! withdrawn releases.
//!
//! Domain times (commit, start, finish, samples, incidents) are simulated, one working day
//! after another from `start`; the same seed gives the same history.

use chrono::{DateTime, Datelike, Duration, Utc, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::{Api, ClientError};

/// The tokens the history is sent with: one per role it plays.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The CI pipeline (`ci`).
    pub ci: String,
    /// Two approvers (`approver`), who never author commits.
    pub approvers: [String; 2],
    /// A commit author with the approver role, whose approvals of their own work the
    /// ledger refuses.
    pub author_approver: String,
    /// The incident commander (`incident_commander`).
    pub incident_commander: String,
    /// An administrator (`admin`): requirements and gate bypasses.
    pub admin: String,
}

/// The subject `author_approver` must have: one of the commit authors.
pub const AUTHOR_APPROVER: &str = "dana@example.com";

/// Commit authors.
const AUTHORS: &[&str] = &[
    AUTHOR_APPROVER,
    "eli@example.com",
    "fay@example.com",
    "gus@example.com",
    "hal@example.com",
];

/// The requirement catalogue registered first.
const REQUIREMENTS: &[(&str, &str, &str)] = &[
    ("REQ-1", "Users sign in with SSO", "security"),
    ("REQ-2", "Passwords are never stored in clear", "security"),
    ("REQ-3", "Checkout completes in under 2 s", "performance"),
    ("REQ-4", "Orders can be cancelled within 24 h", "functional"),
    ("REQ-5", "Invoices are downloadable as PDF", "functional"),
    (
        "REQ-6",
        "Search returns results in under 300 ms",
        "performance",
    ),
    ("REQ-7", "Audit log of every admin action", "compliance"),
    (
        "REQ-8",
        "Personal data can be exported on request",
        "compliance",
    ),
    (
        "REQ-9",
        "Payments retry on transient failure",
        "reliability",
    ),
    (
        "REQ-10",
        "Service degrades gracefully without the cache",
        "reliability",
    ),
];

/// How much history to generate.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// The services.
    pub services: Vec<String>,
    /// Working and weekend days to simulate.
    pub days: u32,
    /// The first simulated day.
    pub start: DateTime<Utc>,
    /// The seed.
    pub seed: u64,
}

impl HistoryConfig {
    /// `days` days of `services` ending yesterday, seeded with `seed`.
    pub fn ending_now(services: &[&str], days: u32, seed: u64) -> Self {
        let today = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc();
        Self {
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            days,
            start: today - Duration::days(i64::from(days)),
            seed,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistorySummary {
    /// Commands the server accepted.
    pub commands: u64,
    /// Commands the server refused on purpose (self-approvals) and recorded.
    pub refused: u64,
    /// Releases created.
    pub releases: u64,
    /// Production deployments started.
    pub production_deployments: u64,
    /// Rollbacks (automatic and manual) completed.
    pub rollbacks: u64,
    /// Incidents opened.
    pub incidents: u64,
    /// Hotfix deployments.
    pub hotfixes: u64,
}

/// Progress after each simulated day.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Days done.
    pub day: u32,
    /// Of how many.
    pub days: u32,
    /// Commands accepted so far.
    pub commands: u64,
}

struct Run<'a> {
    api: &'a Api,
    tokens: &'a Tokens,
    rng: StdRng,
    summary: HistorySummary,
}

/// How a production rollout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Healthy,
    AutoRollback,
    Failed,
    IncidentThenRollback,
    IncidentThenHotfix,
}

impl Run<'_> {
    async fn post(&mut self, token: &str, path: &str, body: Value) -> Result<Value, ClientError> {
        let answer = self.api.post(token, path, &body).await?;
        self.summary.commands += 1;
        Ok(answer)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn sha(&mut self) -> String {
        format!(
            "{:032x}{:08x}",
            self.rng.random::<u128>(),
            self.rng.random::<u32>()
        )
    }

    fn commits(&mut self, at: DateTime<Utc>, fix_only: bool) -> Vec<Value> {
        let count = if fix_only {
            1
        } else {
            self.rng.random_range(1..=4)
        };
        (0..count)
            .map(|i| {
                let kind = if fix_only {
                    "fix"
                } else if i == 0 {
                    // Every release holds at least one change worth a version.
                    ["feat", "fix", "fix", "perf"][self.rng.random_range(0..4)]
                } else {
                    ["feat", "feat", "fix", "fix", "fix", "perf", "chore", "docs"]
                        [self.rng.random_range(0..8)]
                };
                let breaking = !fix_only && kind == "feat" && self.chance(0.03);
                let requirement = if self.chance(0.7) {
                    let (id, _, _) = REQUIREMENTS[self.rng.random_range(0..REQUIREMENTS.len())];
                    format!("\n\nRefs: {id}")
                } else {
                    String::new()
                };
                let message = format!(
                    "{kind}{}: change {i} to the {kind} path{requirement}",
                    if breaking { "!" } else { "" }
                );
                let author = AUTHORS[self.rng.random_range(0..AUTHORS.len())];
                let committed_at = at - Duration::minutes(self.rng.random_range(30..4320));
                json!({"sha": self.sha(), "message": message, "author": author, "committed_at": committed_at})
            })
            .collect()
    }

    /// Creates a release and records its gates; `None` when a gate failed and the release
    /// was withdrawn.
    async fn release(
        &mut self,
        service: &str,
        at: DateTime<Utc>,
        hotfix: bool,
    ) -> Result<Option<(String, Vec<String>)>, ClientError> {
        let commits = self.commits(at, hotfix);
        let requirements: Vec<String> = commits
            .iter()
            .filter_map(|c| c["message"].as_str())
            .filter_map(|m| m.split("Refs: ").nth(1))
            .map(str::to_owned)
            .collect();
        let artifact = format!("registry.example.com/{service}@sha256:{}", self.sha());
        let ci = self.tokens.ci.clone();
        let created = self
            .post(
                &ci,
                "/v1/releases",
                json!({"service": service, "commits": commits, "artifact": artifact}),
            )
            .await?;
        self.summary.releases += 1;
        let id = created["release_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let failing_tests = if !hotfix && self.chance(0.05) { 2 } else { 0 };
        let test_cases: Vec<Value> = requirements
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"name": format!("{service}::it_meets_{}", r.to_lowercase().replace('-', "_")), "status": if i == 0 && failing_tests > 0 {"failed"} else {"passed"}, "requirements": [r]}))
            .collect();
        let body = json!({"gate": "testing", "evidence": {"tests_passed": self.rng.random_range(200..900), "tests_failed": failing_tests,
                          "coverage_pct": self.rng.random_range(90.0..99.0), "test_cases": test_cases}});
        let testing = self
            .post(&ci, &format!("/v1/releases/{id}/gates"), body)
            .await?;
        if testing["status"] == "failed" {
            self.post(
                &ci,
                &format!("/v1/releases/{id}/withdraw"),
                json!({"reason": "tests failed"}),
            )
            .await?;
            return Ok(None);
        }
        let high = u32::from(!hotfix && self.chance(0.04));
        let body = json!({"gate": "security", "evidence": {"vulnerabilities": {"critical": 0, "high": high,
                          "medium": self.rng.random_range(0..4), "low": self.rng.random_range(0..9)}}});
        let security = self
            .post(&ci, &format!("/v1/releases/{id}/gates"), body)
            .await?;
        if security["status"] == "failed" {
            let admin = self.tokens.admin.clone();
            self.post(
                &admin,
                &format!("/v1/releases/{id}/gates/security/bypass"),
                json!({"reason": "the finding is in a test-only dependency; accepted until the next release"}),
            )
            .await?;
        }
        Ok(Some((id, requirements)))
    }

    async fn approve(&mut self, release: &str) -> Result<(), ClientError> {
        if self.chance(0.03) {
            // A commit author tries to approve; the ledger refuses and records the attempt.
            let token = self.tokens.author_approver.clone();
            match self
                .api
                .post(
                    &token,
                    &format!("/v1/releases/{release}/approvals"),
                    &json!({"environment": "production", "decision": "approve"}),
                )
                .await
            {
                Ok(_) => self.summary.commands += 1,
                Err(e) if e.code().is_some() => self.summary.refused += 1,
                Err(e) => return Err(e),
            }
        }
        for token in self.tokens.approvers.clone() {
            self.post(
                &token,
                &format!("/v1/releases/{release}/approvals"),
                json!({"environment": "production", "decision": "approve", "comment": "looks good"}),
            )
            .await?;
        }
        Ok(())
    }

    /// Deploys and completes a release in staging.
    async fn staging(&mut self, release: &str, at: DateTime<Utc>) -> Result<(), ClientError> {
        let ci = self.tokens.ci.clone();
        let started = self
            .post(
                &ci,
                "/v1/deployments",
                json!({"release_id": release, "environment": "staging", "strategy": "standard", "started_at": at}),
            )
            .await?;
        let id = started["deployment_id"].as_str().unwrap_or_default();
        self.post(
            &ci,
            &format!("/v1/deployments/{id}/complete"),
            json!({"finished_at": at + Duration::minutes(6)}),
        )
        .await?;
        Ok(())
    }

    fn samples(&mut self, from: DateTime<Utc>, minutes: i64, step: i64, error_rate: f64) -> Value {
        let samples: Vec<Value> = (0..=minutes / step)
            .map(|i| {
                json!({"at": from + Duration::minutes(i * step), "error_rate_pct": error_rate + self.rng.random_range(0.0..0.1),
                       "p95_ms": self.rng.random_range(150.0..260.0), "health_ok": true,
                       "memory_pct": self.rng.random_range(40.0..70.0), "db_pool_pct": self.rng.random_range(10.0..50.0)})
            })
            .collect();
        json!({"samples": samples})
    }

    /// Rolls a release out to production; returns the deployment id and when it ended.
    async fn production(
        &mut self,
        release: &str,
        at: DateTime<Utc>,
        strategy: &str,
        remediates: Option<&str>,
        outcome: Outcome,
    ) -> Result<(String, DateTime<Utc>), ClientError> {
        let ci = self.tokens.ci.clone();
        let token = if strategy == "hotfix" {
            self.tokens.incident_commander.clone()
        } else {
            ci.clone()
        };
        let mut body = json!({"release_id": release, "environment": "production", "strategy": strategy, "started_at": at});
        if let Some(incident) = remediates {
            body["remediates_incident"] = json!(incident);
        }
        let started = self.post(&token, "/v1/deployments", body).await?;
        self.summary.production_deployments += 1;
        let id = started["deployment_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let path = |what: &str| format!("/v1/deployments/{id}/{what}");
        let mut now = at;
        if outcome == Outcome::AutoRollback {
            // Healthy for five minutes, then errors above 2 % for three: the trigger fires.
            let healthy = self.samples(now, 5, 1, 0.1);
            self.post(&ci, &path("health"), healthy).await?;
            let breach = self.samples(now + Duration::minutes(6), 3, 1, 4.0);
            self.post(&ci, &path("health"), breach).await?;
            now += Duration::minutes(12);
            self.post(&ci, &path("rollback/complete"), json!({"finished_at": now}))
                .await?;
            self.summary.rollbacks += 1;
            return Ok((id, now));
        }
        if outcome == Outcome::Failed {
            now += Duration::minutes(4);
            self.post(
                &ci,
                &path("fail"),
                json!({"reason": "readiness probe never passed", "finished_at": now}),
            )
            .await?;
            return Ok((id, now));
        }
        match strategy {
            "canary" => {
                for (weight, minutes) in [(25, 10), (75, 30), (100, 60)] {
                    let samples = self.samples(now, minutes, 5, 0.1);
                    self.post(&ci, &path("health"), samples).await?;
                    now += Duration::minutes(minutes);
                    self.post(
                        &ci,
                        &path("canary"),
                        json!({"weight_percent": weight, "at": now}),
                    )
                    .await?;
                }
            }
            "blue_green" => {
                now += Duration::minutes(8);
                self.post(&ci, &path("traffic-switch"), json!({"at": now}))
                    .await?;
            }
            _ => {}
        }
        now += Duration::minutes(5);
        self.post(&ci, &path("complete"), json!({"finished_at": now}))
            .await?;
        Ok((id, now))
    }

    async fn incident(
        &mut self,
        service: &str,
        deployment: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<String, ClientError> {
        let severity = ["sev1", "sev2", "sev2", "sev3"][self.rng.random_range(0..4)];
        let mut body = json!({"service": service, "environment": "production", "severity": severity,
                              "title": "error rate above the SLO after the release", "opened_at": at});
        if let Some(deployment) = deployment {
            body["deployment_id"] = json!(deployment);
        }
        let ic = self.tokens.incident_commander.clone();
        let opened = self.post(&ic, "/v1/incidents", body).await?;
        self.summary.incidents += 1;
        Ok(opened["incident_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    async fn resolve(&mut self, incident: &str, at: DateTime<Utc>) -> Result<(), ClientError> {
        let ic = self.tokens.incident_commander.clone();
        self.post(
            &ic,
            &format!("/v1/incidents/{incident}/resolve"),
            json!({"resolved_at": at, "resolution": "service restored"}),
        )
        .await?;
        Ok(())
    }

    /// One service's release on one day, from commits to production and whatever follows.
    async fn day(&mut self, service: &str, morning: DateTime<Utc>) -> Result<(), ClientError> {
        let at = morning + Duration::minutes(self.rng.random_range(0..180));
        let Some((release, _)) = self.release(service, at, false).await? else {
            return Ok(());
        };
        self.staging(&release, at + Duration::minutes(20)).await?;
        self.approve(&release).await?;
        let strategy =
            ["canary", "canary", "standard", "standard", "blue_green"][self.rng.random_range(0..5)];
        let roll: f64 = self.rng.random();
        let outcome = match roll {
            r if r < 0.08 => Outcome::AutoRollback,
            r if r < 0.12 => Outcome::Failed,
            r if r < 0.17 => Outcome::IncidentThenRollback,
            r if r < 0.22 => Outcome::IncidentThenHotfix,
            _ => Outcome::Healthy,
        };
        let rollout_outcome = match outcome {
            Outcome::IncidentThenRollback | Outcome::IncidentThenHotfix => Outcome::Healthy,
            other => other,
        };
        let (deployment, ended) = self
            .production(
                &release,
                at + Duration::minutes(60),
                strategy,
                None,
                rollout_outcome,
            )
            .await?;
        let opened = ended + Duration::minutes(self.rng.random_range(10..120));
        match outcome {
            Outcome::IncidentThenRollback => {
                // Half the incidents name the deployment that caused them; the others are
                // attributed by the rule.
                let cause = self.chance(0.5).then_some(deployment.as_str());
                let incident = self.incident(service, cause, opened).await?;
                let ci = self.tokens.ci.clone();
                let started = opened + Duration::minutes(5);
                match self
                    .api
                    .post(
                        &ci,
                        &format!("/v1/deployments/{deployment}/rollback"),
                        &json!({"reason": "incident", "started_at": started}),
                    )
                    .await
                {
                    Ok(_) => {
                        self.summary.commands += 1;
                        self.post(
                            &ci,
                            &format!("/v1/deployments/{deployment}/rollback/complete"),
                            json!({"finished_at": started + Duration::minutes(7)}),
                        )
                        .await?;
                        self.summary.rollbacks += 1;
                    }
                    // The service's first release has nothing to roll back to.
                    Err(e) if e.code() == Some("no_rollback_target") => {}
                    Err(e) => return Err(e),
                }
                self.resolve(&incident, started + Duration::minutes(30))
                    .await?;
            }
            Outcome::IncidentThenHotfix => {
                let cause = self.chance(0.5).then_some(deployment.as_str());
                let incident = self.incident(service, cause, opened).await?;
                let fix_at = opened + Duration::minutes(40);
                if let Some((hotfix, _)) = self.release(service, fix_at, true).await? {
                    let ic = self.tokens.incident_commander.clone();
                    self.post(
                        &ic,
                        &format!("/v1/releases/{hotfix}/hotfix-approvals"),
                        json!({"environment": "production", "reason": "restores checkout during the incident"}),
                    )
                    .await?;
                    let (_, fixed) = self
                        .production(
                            &hotfix,
                            fix_at + Duration::minutes(15),
                            "hotfix",
                            Some(&incident),
                            Outcome::Healthy,
                        )
                        .await?;
                    self.summary.hotfixes += 1;
                    self.resolve(&incident, fixed + Duration::minutes(10))
                        .await?;
                    // Most hotfixes get their regular approvals afterwards; some never do.
                    if self.chance(0.75) {
                        self.approve(&hotfix).await?;
                    }
                } else {
                    self.resolve(&incident, fix_at + Duration::minutes(90))
                        .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Sends the history to `api`; `progress` is called after each simulated day.
pub async fn generate(
    api: &Api,
    tokens: &Tokens,
    config: &HistoryConfig,
    mut progress: impl FnMut(Progress),
) -> Result<HistorySummary, ClientError> {
    let mut run = Run {
        api,
        tokens,
        rng: StdRng::seed_from_u64(config.seed),
        summary: HistorySummary::default(),
    };
    let admin = tokens.admin.clone();
    for (id, title, category) in REQUIREMENTS {
        match api
            .post(
                &admin,
                "/v1/requirements",
                &json!({"id": id, "title": title, "category": category}),
            )
            .await
        {
            Ok(_) => run.summary.commands += 1,
            Err(e) if e.code() == Some("already_exists") => {}
            Err(e) => return Err(e),
        }
    }
    for day in 0..config.days {
        let morning = config.start + Duration::days(i64::from(day)) + Duration::hours(8);
        let weekend = matches!(morning.weekday(), Weekday::Sat | Weekday::Sun);
        for service in &config.services {
            let busy = if weekend { 0.1 } else { 0.8 };
            if run.chance(busy) {
                run.day(service, morning).await?;
            }
        }
        progress(Progress {
            day: day + 1,
            days: config.days,
            commands: run.summary.commands,
        });
    }
    Ok(run.summary)
}
