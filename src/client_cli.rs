//! Client subcommands for CI pipelines: they talk HTTP to a running Release Pilot
//! (`RELEASE_PILOT_URL`, `RELEASE_PILOT_QUERY_URL`, `RELEASE_PILOT_TOKEN`). Human-readable
//! output by default, the server's JSON with `--json`. Exit 0 on success, 2 on an error
//! (the problem's code and detail are printed); `can-deploy` exits 1 when refused.

use std::path::PathBuf;
use std::process::ExitCode;

use release_pilot_client::{Api, ClientError};
use serde_json::{json, Value};

/// Where the server is and who is calling.
#[derive(Debug, clap::Args)]
pub struct Conn {
    /// The command API.
    #[arg(
        long,
        global = true,
        env = "RELEASE_PILOT_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// The query API.
    #[arg(
        long,
        global = true,
        env = "RELEASE_PILOT_QUERY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    query_url: String,
    /// The bearer token.
    #[arg(
        long,
        global = true,
        env = "RELEASE_PILOT_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Print the server's JSON answer instead of a summary.
    #[arg(long, global = true)]
    json: bool,
}

/// `release …`.
#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    action: ReleaseAction,
}

/// Release actions.
#[derive(Debug, clap::Subcommand)]
pub enum ReleaseAction {
    /// Create a release from commits of the local git repository.
    Create {
        /// The service.
        #[arg(long)]
        service: String,
        /// The commits, as a git range (`v1.4.2..HEAD`); default: the last commit.
        #[arg(long)]
        from_git: Option<String>,
        /// An explicit version; default: computed from the conventional commits.
        #[arg(long)]
        version: Option<String>,
        /// Requirements the release declares (repeat).
        #[arg(long)]
        requirement: Vec<String>,
        /// The artifact (image digest, package URL).
        #[arg(long)]
        artifact: Option<String>,
        /// The git repository (default: the current directory).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
}

/// `gate record …`.
#[derive(Debug, clap::Args)]
pub struct GateArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    action: GateAction,
}

/// Gate actions.
#[derive(Debug, clap::Subcommand)]
pub enum GateAction {
    /// Record a quality gate's evidence.
    Record {
        /// The release.
        #[arg(long)]
        release: String,
        /// The gate: testing, security, code_quality, performance, documentation,
        /// infrastructure, or a custom name.
        #[arg(long, default_value = "testing")]
        gate: String,
        /// JUnit XML reports (repeat; cargo-nextest, pytest, Maven Surefire, Jest…).
        #[arg(long)]
        junit: Vec<PathBuf>,
        /// Line coverage, percent.
        #[arg(long)]
        coverage: Option<f64>,
        /// Vulnerabilities found, by severity (a security gate's evidence).
        #[arg(long)]
        critical: Option<u32>,
        /// High-severity vulnerabilities.
        #[arg(long)]
        high: Option<u32>,
        /// Medium-severity vulnerabilities.
        #[arg(long)]
        medium: Option<u32>,
        /// Low-severity vulnerabilities.
        #[arg(long)]
        low: Option<u32>,
        /// Where the full report lives.
        #[arg(long)]
        report_url: Option<String>,
    },
}

/// `approve`.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    conn: Conn,
    /// The release.
    #[arg(long)]
    release: String,
    /// The environment.
    #[arg(long)]
    environment: String,
    /// Reject instead of approving (needs --comment as the reason).
    #[arg(long)]
    reject: bool,
    /// A comment (the reason, when rejecting).
    #[arg(long)]
    comment: Option<String>,
}

/// `deploy …`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    action: DeployAction,
}

/// Deployment actions.
#[derive(Debug, clap::Subcommand)]
pub enum DeployAction {
    /// Start a deployment (cleared against the policy in force).
    Start {
        /// The release.
        #[arg(long)]
        release: String,
        /// The environment.
        #[arg(long)]
        environment: String,
        /// standard, canary, blue_green or hotfix.
        #[arg(long, default_value = "standard")]
        strategy: String,
        /// The incident this deployment remediates.
        #[arg(long)]
        remediates: Option<String>,
    },
    /// Advance a canary to its next weight.
    Canary {
        /// The deployment.
        #[arg(long)]
        deployment: String,
        /// The new weight, percent.
        #[arg(long)]
        weight: u8,
    },
    /// Record one health sample (may trigger an automatic rollback).
    Health {
        /// The deployment.
        #[arg(long)]
        deployment: String,
        /// Error rate, percent.
        #[arg(long)]
        error_rate: Option<f64>,
        /// p95 latency, ms.
        #[arg(long)]
        p95_ms: Option<f64>,
        /// Whether the health check passed.
        #[arg(long)]
        health_ok: Option<bool>,
    },
    /// Complete a deployment.
    Complete {
        /// The deployment.
        #[arg(long)]
        deployment: String,
    },
    /// Fail a deployment.
    Fail {
        /// The deployment.
        #[arg(long)]
        deployment: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

/// `rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    conn: Conn,
    /// The deployment to roll back.
    #[arg(long)]
    deployment: String,
    /// Why (to start a rollback).
    #[arg(long)]
    reason: Option<String>,
    /// Record that the rollback finished.
    #[arg(long)]
    complete: bool,
}

/// `incident …`.
#[derive(Debug, clap::Args)]
pub struct IncidentArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    action: IncidentAction,
}

/// Incident actions.
#[derive(Debug, clap::Subcommand)]
pub enum IncidentAction {
    /// Open an incident.
    Open {
        /// The service.
        #[arg(long)]
        service: String,
        /// The environment.
        #[arg(long)]
        environment: String,
        /// critical, high, medium, low (or sev1–sev4).
        #[arg(long)]
        severity: String,
        /// What is wrong.
        #[arg(long)]
        title: String,
        /// The deployment that caused it, when known.
        #[arg(long)]
        deployment: Option<String>,
    },
    /// Resolve an incident.
    Resolve {
        /// The incident.
        #[arg(long)]
        incident: String,
        /// How.
        #[arg(long)]
        resolution: Option<String>,
    },
}

/// `can-deploy`.
#[derive(Debug, clap::Args)]
pub struct CanDeployArgs {
    #[command(flatten)]
    conn: Conn,
    /// The release.
    #[arg(long)]
    release: String,
    /// The environment.
    #[arg(long = "env", alias = "environment")]
    environment: String,
    /// The strategy.
    #[arg(long, default_value = "standard")]
    strategy: String,
}

/// `dora`.
#[derive(Debug, clap::Args)]
pub struct DoraArgs {
    #[command(flatten)]
    conn: Conn,
    /// Only this service.
    #[arg(long)]
    service: Option<String>,
    /// Window start (RFC 3339 or YYYY-MM-DD; default 30 days ago).
    #[arg(long)]
    from: Option<String>,
    /// Window end (default now).
    #[arg(long)]
    to: Option<String>,
}

/// `audit export`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    action: AuditAction,
}

/// Audit actions.
#[derive(Debug, clap::Subcommand)]
pub enum AuditAction {
    /// Download a signed export (JSON Lines) of a period.
    Export {
        /// Recorded at or after.
        #[arg(long)]
        from: Option<String>,
        /// Recorded before.
        #[arg(long)]
        to: Option<String>,
        /// The file to write.
        #[arg(long, short)]
        output: PathBuf,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn token(conn: &Conn) -> Result<&str, String> {
    conn.token
        .as_deref()
        .ok_or_else(|| "no token: set RELEASE_PILOT_TOKEN or pass --token".to_owned())
}

fn describe(error: ClientError) -> String {
    match error {
        ClientError::Problem {
            status,
            code,
            detail,
            body,
        } => {
            let mut text = format!("{status} {code}: {detail}");
            if let Some(refusals) = body["refusals"].as_array() {
                for r in refusals {
                    text.push_str(&format!(
                        "\n  - {}: {}",
                        r["code"].as_str().unwrap_or("?"),
                        r["detail"].as_str().unwrap_or("")
                    ));
                }
            }
            text
        }
        ClientError::Transport(e) => format!("cannot reach Release Pilot: {e}"),
    }
}

/// Runs `work` and prints its answer (the JSON with `--json`, else `human` of it).
fn run<F, Fut>(conn: &Conn, work: F, human: impl FnOnce(&Value) -> String) -> ExitCode
where
    F: FnOnce(Api, Api, String) -> Fut,
    Fut: std::future::Future<Output = Result<Value, ClientError>>,
{
    let outcome = (|| -> Result<Value, String> {
        let token = token(conn)?.to_owned();
        runtime()?
            .block_on(work(
                Api::new(conn.url.clone()),
                Api::new(conn.query_url.clone()),
                token,
            ))
            .map_err(describe)
    })();
    match outcome {
        Ok(value) => {
            if conn.json {
                println!("{value:#}");
            } else {
                println!("{}", human(&value));
            }
            ExitCode::SUCCESS
        }
        Err(e) => crate::ledger_cli::fail(e),
    }
}

/// Commits of `range` in `repo`, oldest first, as the API takes them.
pub fn git_commits(repo: &std::path::Path, range: Option<&str>) -> Result<Vec<Value>, String> {
    let mut command = std::process::Command::new("git");
    command
        .arg("-C")
        .arg(repo)
        .args(["log", "--reverse", "--format=%H%x1f%ae%x1f%cI%x1f%B%x1e"]);
    match range {
        Some(range) => {
            command.arg(range);
        }
        None => {
            command.args(["-n", "1"]);
        }
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "git log failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let commits: Vec<Value> = text
        .split('\u{1e}')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .filter_map(|record| {
            let mut fields = record.splitn(4, '\u{1f}');
            let (sha, author, at, message) =
                (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            Some(json!({"sha": sha, "author": author, "committed_at": at, "message": message.trim()}))
        })
        .collect();
    if commits.is_empty() {
        return Err(format!(
            "no commits in {}",
            range.unwrap_or("the repository")
        ));
    }
    Ok(commits)
}

/// Gate evidence from JUnit XML reports: totals, and every test case by
/// `classname::name` with its status and the requirements a `requirement` (or
/// `requirements`, comma-separated) property names.
pub fn junit_evidence(paths: &[PathBuf]) -> Result<Value, String> {
    fn walk(suite: &junit_parser::TestSuite, cases: &mut Vec<Value>, counts: &mut [u32; 3]) {
        for case in &suite.cases {
            let status = match &case.status {
                junit_parser::TestStatus::Success => "passed",
                junit_parser::TestStatus::Skipped(_) => "skipped",
                _ => "failed",
            };
            match status {
                "passed" => counts[0] += 1,
                "failed" => counts[1] += 1,
                _ => counts[2] += 1,
            }
            // `classname::name`, unless the tool already repeats the class in the name
            // (Jest does).
            let own = &case.original_name;
            let name = match case.classname.as_deref() {
                Some(class) if !class.is_empty() && !own.starts_with(class) => {
                    format!("{class}::{own}")
                }
                _ => own.clone(),
            };
            let requirements: Vec<&str> = ["requirement", "requirements"]
                .iter()
                .filter_map(|k| case.properties.hashmap.get(*k))
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            let mut value = json!({"name": name, "status": status});
            if !requirements.is_empty() {
                value["requirements"] = json!(requirements);
            }
            cases.push(value);
        }
        for inner in &suite.suites {
            walk(inner, cases, counts);
        }
    }
    let mut cases = Vec::new();
    let mut counts = [0u32; 3];
    for path in paths {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let suites = junit_parser::from_reader(std::io::BufReader::new(file))
            .map_err(|e| format!("{}: not JUnit XML: {e}", path.display()))?;
        for suite in &suites.suites {
            walk(suite, &mut cases, &mut counts);
        }
    }
    Ok(
        json!({"tests_passed": counts[0], "tests_failed": counts[1], "tests_skipped": counts[2], "test_cases": cases}),
    )
}

/// `release create`.
pub fn release(args: ReleaseArgs) -> ExitCode {
    let ReleaseAction::Create {
        service,
        from_git,
        version,
        requirement,
        artifact,
        repo,
    } = args.action;
    let commits = match git_commits(&repo, from_git.as_deref()) {
        Ok(c) => c,
        Err(e) => return crate::ledger_cli::fail(e),
    };
    let mut body = json!({"service": service, "commits": commits, "requirements": requirement});
    if let Some(v) = version {
        body["version"] = json!(v);
    }
    if let Some(a) = artifact {
        body["artifact"] = json!(a);
    }
    run(
        &args.conn,
        |api, _, token| async move { api.post(&token, "/v1/releases", &body).await },
        |r| {
            format!(
                "release {} version {} ({})\n{}",
                r["release_id"].as_str().unwrap_or("?"),
                r["version"].as_str().unwrap_or("?"),
                r["version_source"].as_str().unwrap_or(""),
                r["changelog_markdown"].as_str().unwrap_or("")
            )
        },
    )
}

/// `gate record`.
pub fn gate(args: GateArgs) -> ExitCode {
    let GateAction::Record {
        release,
        gate,
        junit,
        coverage,
        critical,
        high,
        medium,
        low,
        report_url,
    } = args.action;
    let mut evidence = if junit.is_empty() {
        json!({})
    } else {
        match junit_evidence(&junit) {
            Ok(e) => e,
            Err(e) => return crate::ledger_cli::fail(e),
        }
    };
    if let Value::Object(map) = &mut evidence {
        map.remove("tests_skipped");
    }
    if let Some(c) = coverage {
        evidence["coverage_pct"] = json!(c);
    }
    if [critical, high, medium, low].iter().any(Option::is_some) {
        evidence["vulnerabilities"] = json!({"critical": critical.unwrap_or(0), "high": high.unwrap_or(0),
                                            "medium": medium.unwrap_or(0), "low": low.unwrap_or(0)});
    }
    if let Some(u) = report_url {
        evidence["url"] = json!(u);
    }
    let body = json!({"gate": gate, "evidence": evidence});
    run(
        &args.conn,
        |api, _, token| async move {
            api.post(&token, &format!("/v1/releases/{release}/gates"), &body)
                .await
        },
        |r| {
            let mut text = format!("gate {}", r["status"].as_str().unwrap_or("?"));
            for f in r["failures"].as_array().into_iter().flatten() {
                text.push_str(&format!(
                    "\n  - {}",
                    f["detail"].as_str().unwrap_or(&f.to_string())
                ));
            }
            text
        },
    )
}

/// `approve`.
pub fn approve(args: ApproveArgs) -> ExitCode {
    let decision = if args.reject { "reject" } else { "approve" };
    let mut body = json!({"environment": args.environment, "decision": decision});
    if let Some(c) = &args.comment {
        body["comment"] = json!(c);
    }
    let release = args.release.clone();
    run(
        &args.conn,
        |api, _, token| async move {
            api.post(&token, &format!("/v1/releases/{release}/approvals"), &body)
                .await
        },
        |r| {
            let a = &r["approval"];
            format!(
                "{}: {} of {} approvals{}",
                decision,
                a["have"],
                a["need"],
                if a["complete"] == true {
                    " — complete"
                } else {
                    ""
                }
            )
        },
    )
}

/// `deploy …`.
pub fn deploy(args: DeployArgs) -> ExitCode {
    let (path, body, what) = match args.action {
        DeployAction::Start {
            release,
            environment,
            strategy,
            remediates,
        } => {
            let mut body =
                json!({"release_id": release, "environment": environment, "strategy": strategy});
            if let Some(i) = remediates {
                body["remediates_incident"] = json!(i);
            }
            ("/v1/deployments".to_owned(), body, "started")
        }
        DeployAction::Canary { deployment, weight } => (
            format!("/v1/deployments/{deployment}/canary"),
            json!({"weight_percent": weight}),
            "advanced",
        ),
        DeployAction::Health {
            deployment,
            error_rate,
            p95_ms,
            health_ok,
        } => (
            format!("/v1/deployments/{deployment}/health"),
            json!({"samples": [{"error_rate_pct": error_rate, "p95_ms": p95_ms, "health_ok": health_ok}]}),
            "sampled",
        ),
        DeployAction::Complete { deployment } => (
            format!("/v1/deployments/{deployment}/complete"),
            json!({}),
            "completed",
        ),
        DeployAction::Fail { deployment, reason } => (
            format!("/v1/deployments/{deployment}/fail"),
            json!({"reason": reason}),
            "failed",
        ),
    };
    run(
        &args.conn,
        |api, _, token| async move { api.post(&token, &path, &body).await },
        |r| match r["deployment_id"].as_str() {
            Some(id) if what == "started" => format!(
                "deployment {id} started: {} {} to {}",
                r["service"].as_str().unwrap_or("?"),
                r["version"].as_str().unwrap_or("?"),
                r["environment"].as_str().unwrap_or("?")
            ),
            _ => match r["verdict"].as_str() {
                Some(verdict) => format!("health: {verdict}"),
                None => format!(
                    "deployment {what}{}",
                    r["status"]
                        .as_str()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                ),
            },
        },
    )
}

/// `rollback`.
pub fn rollback(args: RollbackArgs) -> ExitCode {
    let deployment = args.deployment.clone();
    let (path, body) = if args.complete {
        (
            format!("/v1/deployments/{deployment}/rollback/complete"),
            json!({}),
        )
    } else {
        let Some(reason) = args.reason.clone() else {
            return crate::ledger_cli::fail("give --reason to start a rollback, or --complete");
        };
        (
            format!("/v1/deployments/{deployment}/rollback"),
            json!({"reason": reason}),
        )
    };
    run(
        &args.conn,
        |api, _, token| async move { api.post(&token, &path, &body).await },
        |r| match (&r["target"], &r["live"]) {
            (Value::Object(t), _) => format!(
                "rolling back to {}",
                t.get("version").and_then(Value::as_str).unwrap_or("?")
            ),
            (_, Value::Object(l)) => format!(
                "rolled back; live: {}",
                l.get("version").and_then(Value::as_str).unwrap_or("?")
            ),
            _ => "rollback recorded".to_owned(),
        },
    )
}

/// `incident …`.
pub fn incident(args: IncidentArgs) -> ExitCode {
    let (path, body) = match args.action {
        IncidentAction::Open {
            service,
            environment,
            severity,
            title,
            deployment,
        } => {
            let mut body = json!({"service": service, "environment": environment, "severity": severity, "title": title});
            if let Some(d) = deployment {
                body["deployment_id"] = json!(d);
            }
            ("/v1/incidents".to_owned(), body)
        }
        IncidentAction::Resolve {
            incident,
            resolution,
        } => (
            format!("/v1/incidents/{incident}/resolve"),
            json!({"resolution": resolution}),
        ),
    };
    run(
        &args.conn,
        |api, _, token| async move { api.post(&token, &path, &body).await },
        |r| match r["incident_id"].as_str() {
            Some(id) => format!("incident {id} opened"),
            None => "incident resolved".to_owned(),
        },
    )
}

/// `can-deploy`: exit 0 when the deployment would be cleared, 1 when refused (every
/// reason printed), 2 on an error.
pub fn can_deploy(args: CanDeployArgs) -> ExitCode {
    let outcome = (|| -> Result<Value, String> {
        let token = token(&args.conn)?.to_owned();
        let api = Api::new(args.conn.url.clone());
        let path = format!(
            "/v1/releases/{}/clearance?environment={}&strategy={}",
            args.release, args.environment, args.strategy
        );
        runtime()?
            .block_on(async { api.get(&token, &path).await })
            .map_err(describe)
    })();
    let answer = match outcome {
        Ok(answer) => answer,
        Err(e) => return crate::ledger_cli::fail(e),
    };
    if args.conn.json {
        println!("{answer:#}");
    }
    if answer["allowed"] == true {
        if !args.conn.json {
            println!(
                "allowed: {} may deploy to {} (policy version {})",
                args.release, args.environment, answer["policy_version"]
            );
        }
        return ExitCode::SUCCESS;
    }
    if !args.conn.json {
        println!(
            "refused: {} may not deploy to {}",
            args.release, args.environment
        );
        for r in answer["refusals"].as_array().into_iter().flatten() {
            println!(
                "  - {}: {}",
                r["code"].as_str().unwrap_or("?"),
                r["detail"].as_str().unwrap_or("")
            );
        }
    }
    ExitCode::from(1)
}

/// `dora`.
pub fn dora(args: DoraArgs) -> ExitCode {
    let mut query = Vec::new();
    for (k, v) in [
        ("service", &args.service),
        ("from", &args.from),
        ("to", &args.to),
    ] {
        if let Some(v) = v {
            query.push(format!("{k}={v}"));
        }
    }
    let path = format!("/v1/dora?{}", query.join("&"));
    run(
        &args.conn,
        |_, query_api, token| async move { query_api.get(&token, &path).await },
        |r| {
            let line = |name: &str, key: &str, value: String| {
                let m = &r[key];
                let tier = m["tier"].as_str().unwrap_or("—");
                match m["reason"].as_str() {
                    Some(reason) => format!("{name:<34} {reason}"),
                    None => format!("{name:<34} {value:<28} tier {tier}"),
                }
            };
            let v = |key: &str, field: &str| r[key]["value"][field].clone();
            [
                line(
                    "deployment frequency",
                    "deployment_frequency",
                    format!("{} per day", v("deployment_frequency", "per_day")),
                ),
                line(
                    "change lead time (median)",
                    "change_lead_time",
                    format!("{} min", v("change_lead_time", "median_minutes")),
                ),
                line(
                    "change fail rate",
                    "change_fail_rate",
                    format!("{}", v("change_fail_rate", "rate")),
                ),
                line(
                    "failed deployment recovery time",
                    "failed_deployment_recovery_time",
                    format!(
                        "{} min",
                        v("failed_deployment_recovery_time", "median_minutes")
                    ),
                ),
                line(
                    "deployment rework rate",
                    "deployment_rework_rate",
                    format!("{}", v("deployment_rework_rate", "rate")),
                ),
                format!(
                    "{:<34} {}",
                    "DORA Quick Check (0–10)", r["quick_check_overall"]
                ),
            ]
            .join("\n")
        },
    )
}

/// `audit export`.
pub fn audit(args: AuditArgs) -> ExitCode {
    let AuditAction::Export { from, to, output } = args.action;
    let outcome = (|| -> Result<u64, String> {
        let token = token(&args.conn)?.to_owned();
        let mut query = Vec::new();
        for (k, v) in [("from", &from), ("to", &to)] {
            if let Some(v) = v {
                query.push(format!("{k}={v}"));
            }
        }
        let url = format!(
            "{}/v1/audit/export?{}",
            args.conn.query_url.trim_end_matches('/'),
            query.join("&")
        );
        runtime()?.block_on(async {
            let mut response = reqwest::Client::new()
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| format!("cannot reach Release Pilot: {e}"))?;
            if !response.status().is_success() {
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                return Err(format!(
                    "{status} {}: {}",
                    body["code"].as_str().unwrap_or("?"),
                    body["detail"].as_str().unwrap_or("")
                ));
            }
            use std::io::Write;
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&output).map_err(|e| format!("{}: {e}", output.display()))?,
            );
            let mut bytes = 0u64;
            while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
                file.write_all(&chunk).map_err(|e| e.to_string())?;
                bytes += chunk.len() as u64;
                eprint!("\rdownloaded {} kB", bytes / 1000);
            }
            eprintln!();
            file.flush().map_err(|e| e.to_string())?;
            Ok(bytes)
        })
    })();
    match outcome {
        Ok(bytes) => {
            println!(
                "wrote {} ({} kB); verify with: release-pilot verify {} --public-key ledger.pub",
                output.display(),
                bytes / 1000,
                output.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => crate::ledger_cli::fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/junit")
            .join(name)
    }

    fn totals(e: &Value) -> (u64, u64, u64) {
        (
            e["tests_passed"].as_u64().unwrap_or(99),
            e["tests_failed"].as_u64().unwrap_or(99),
            e["tests_skipped"].as_u64().unwrap_or(99),
        )
    }

    #[test]
    fn cargo_nextest_reports_count_failures_and_name_cases_by_binary() {
        let e = junit_evidence(&[fixture("nextest.xml")]).expect("parses");
        assert_eq!(totals(&e), (3, 1, 0));
        assert_eq!(
            e["test_cases"][1]["name"],
            "shop-core::cart::tests::rounds_totals"
        );
        assert_eq!(e["test_cases"][1]["status"], "failed");
    }

    #[test]
    fn pytest_reports_count_errors_as_failures_and_carry_requirements() {
        let e = junit_evidence(&[fixture("pytest.xml")]).expect("parses");
        assert_eq!(totals(&e), (3, 1, 1));
        assert_eq!(
            e["test_cases"][0]["name"],
            "tests.test_checkout::test_one_step_checkout"
        );
        assert_eq!(e["test_cases"][0]["requirements"], json!(["REQ-1"]));
        assert_eq!(e["test_cases"][1]["status"], "skipped");
        assert_eq!(e["test_cases"][4]["status"], "failed");
    }

    #[test]
    fn maven_surefire_reports_with_a_single_suite_root() {
        let e = junit_evidence(&[fixture("surefire.xml")]).expect("parses");
        assert_eq!(totals(&e), (2, 1, 0));
        assert_eq!(
            e["test_cases"][2]["name"],
            "com.example.shop.CartTest::appliesCoupons"
        );
    }

    #[test]
    fn jest_reports_keep_names_that_already_include_the_suite() {
        let e = junit_evidence(&[fixture("jest.xml")]).expect("parses");
        assert_eq!(totals(&e), (3, 0, 1));
        assert_eq!(
            e["test_cases"][0]["name"],
            "checkout page renders the basket"
        );
    }

    #[test]
    fn several_reports_add_up_and_a_broken_one_is_named() {
        let e = junit_evidence(&[fixture("jest.xml"), fixture("surefire.xml")]).expect("parses");
        assert_eq!(totals(&e), (5, 1, 1));
        let dir = tempfile::tempdir().expect("dir");
        let broken = dir.path().join("broken.xml");
        std::fs::write(&broken, "<testsuite><testcase name=").expect("write");
        let error = junit_evidence(std::slice::from_ref(&broken)).expect_err("not XML");
        assert!(error.contains("broken.xml"), "{error}");
        let error = junit_evidence(&[dir.path().join("missing.xml")]).expect_err("missing");
        assert!(error.contains("missing.xml"), "{error}");
    }
}
