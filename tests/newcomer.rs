//! A newcomer's first hour, through the binary only: `serve` in an empty directory, then
//! the CI client against it — a release from a real git repository with conventional
//! commits, JUnit reports, approvals, `can-deploy` (refused, then allowed), a deployment —
//! then the query API shows the deployment, DORA and traceability, and an audit export
//! verifies offline. It runs twice: with no configuration at all (the embedded SQLite
//! database under `./data`, the admin token read from what `serve` prints), and with
//! `DATABASE_URL` naming a fresh PostgreSQL database.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Runs `release-pilot` in `dir` with `env`.
fn rp(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_release-pilot"))
        .args(args)
        .current_dir(dir)
        .env_remove("RELEASE_PILOT_TOKEN")
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .expect("release-pilot runs")
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

/// What `read` returns once `done` holds, or its last answer after 30 s (for the caller
/// to assert on and show).
fn eventually(read: impl Fn() -> Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let value = read();
        if done(&value) || std::time::Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json(output: Output) -> Value {
    serde_json::from_str(&ok(output)).expect("JSON")
}

#[test]
fn a_newcomer_with_no_configuration_serves_releases_deploys_and_reads_it_all_back() {
    newcomer(None);
}

#[test]
fn the_same_first_hour_on_postgresql() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(release_pilot_ledger::testkit::TestDatabase::create());
    newcomer(Some(&db.url));
}

fn newcomer(database_url: Option<&str>) {
    let home = tempfile::tempdir().expect("empty directory");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_release-pilot"));
    serve
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--query-listen",
            "127.0.0.1:0",
        ])
        .current_dir(home.path())
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        serve.env("DATABASE_URL", url);
    }
    let mut child = serve.spawn().expect("serve starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut url = |prefix: &str| -> String {
        let line = lines.next().expect("a line").expect("utf-8");
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
            .trim()
            .to_owned()
    };
    let command = url("command API: ");
    let query = url("query API:   ");
    let admin = url("admin token (shown once, store it now): ");
    let _server = Server { child };
    assert!(
        home.path().join("data/ledger-signing-key.pem").exists(),
        "the signing key is generated into ./data"
    );

    // Tokens for the pipeline and two approvers.
    let db_env: Vec<(&str, &str)> = database_url
        .map(|url| ("DATABASE_URL", url))
        .into_iter()
        .collect();
    let token = |subject: &str, role: &str| -> String {
        ok(rp(
            home.path(),
            &["token", "create", "--subject", subject, "--role", role],
            &db_env,
        ))
        .trim()
        .to_owned()
    };
    let ci = token("ci-bot", "ci");
    let ann = token("ann@example.com", "approver");
    let bob = token("bob@example.com", "approver");
    let as_ = |token: &str| {
        vec![
            ("RELEASE_PILOT_URL", command.clone()),
            ("RELEASE_PILOT_QUERY_URL", query.clone()),
            ("RELEASE_PILOT_TOKEN", token.to_owned()),
        ]
    };
    let client = |token: &str, args: &[&str]| -> Output {
        let env = as_(token);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        rp(home.path(), args, &env)
    };

    // A repository with conventional commits since the last tag.
    let repo = tempfile::tempdir().expect("repo");
    git(repo.path(), &["init", "-q"]);
    git(
        repo.path(),
        &[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "feat: initial import",
        ],
    );
    git(repo.path(), &["tag", "v1.0.0"]);
    git(
        repo.path(),
        &[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "feat(checkout): one-step checkout\n\nRefs: REQ-1",
        ],
    );
    git(
        repo.path(),
        &["commit", "-q", "--allow-empty", "-m", "fix: round totals"],
    );
    let repo_arg = repo.path().display().to_string();
    let created = json(client(
        &ci,
        &[
            "release",
            "create",
            "--service",
            "web",
            "--from-git",
            "v1.0.0..HEAD",
            "--repo",
            &repo_arg,
            "--json",
        ],
    ));
    assert_eq!(created["version"], "0.1.0", "{created}");
    let release = created["release_id"].as_str().expect("id").to_owned();

    // Not approved, no gates: refused with every reason, exit 1.
    let refused = client(
        &ci,
        &["can-deploy", "--release", &release, "--env", "production"],
    );
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let reasons = String::from_utf8_lossy(&refused.stdout);
    assert!(
        reasons.contains("gate_missing") || reasons.contains("gate"),
        "{reasons}"
    );
    assert!(reasons.contains("approvals_incomplete"), "{reasons}");
    // An unknown release is an error, exit 2.
    let error = client(
        &ci,
        &[
            "can-deploy",
            "--release",
            "00000000-0000-7000-8000-000000000000",
            "--env",
            "production",
        ],
    );
    assert_eq!(error.status.code(), Some(2), "{error:?}");

    // JUnit reports from two tools, a security scan, two approvals.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit");
    let surefire = fixtures.join("surefire.xml").display().to_string();
    let jest = fixtures.join("jest.xml").display().to_string();
    let failed_gate = ok(client(
        &ci,
        &[
            "gate",
            "record",
            "--release",
            &release,
            "--gate",
            "testing",
            "--junit",
            &surefire,
            "--junit",
            &jest,
            "--coverage",
            "93",
        ],
    ));
    assert!(failed_gate.starts_with("gate failed"), "{failed_gate}");
    let pytest_like = repo.path().join("report.xml");
    std::fs::write(
        &pytest_like,
        r#"<testsuites><testsuite name="pytest" tests="2"><testcase classname="tests.test_checkout" name="test_one_step"><properties><property name="requirement" value="REQ-1"/></properties></testcase><testcase classname="tests.test_totals" name="test_rounding"/></testsuite></testsuites>"#,
    )
    .expect("report");
    let passed = ok(client(
        &ci,
        &[
            "gate",
            "record",
            "--release",
            &release,
            "--gate",
            "testing",
            "--junit",
            &pytest_like.display().to_string(),
            "--coverage",
            "95",
        ],
    ));
    assert!(passed.starts_with("gate passed"), "{passed}");
    ok(client(
        &ci,
        &[
            "gate",
            "record",
            "--release",
            &release,
            "--gate",
            "security",
            "--critical",
            "0",
            "--high",
            "0",
            "--medium",
            "2",
        ],
    ));
    for approver in [&ann, &bob] {
        ok(client(
            approver,
            &[
                "approve",
                "--release",
                &release,
                "--environment",
                "production",
            ],
        ));
    }
    let allowed = client(
        &ci,
        &["can-deploy", "--release", &release, "--env", "production"],
    );
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");

    let started = json(client(
        &ci,
        &[
            "deploy",
            "start",
            "--release",
            &release,
            "--environment",
            "production",
            "--json",
        ],
    ));
    let deployment = started["deployment_id"].as_str().expect("id").to_owned();
    ok(client(
        &ci,
        &["deploy", "complete", "--deployment", &deployment],
    ));

    // The query API: the deployment, DORA, traceability (after the projector catches up).
    let http = reqwest::blocking::Client::new();
    let get = |path: &str| -> Value {
        http.get(format!("{query}{path}"))
            .bearer_auth(&admin)
            .send()
            .expect("query")
            .json()
            .expect("json")
    };
    // Each read model catches up on its own: every read waits for what it expects.
    let board = eventually(
        || get("/v1/environments/web/production"),
        |board| board["live"]["version"] == "0.1.0",
    );
    assert_eq!(
        board["live"]["deployment_id"],
        deployment.as_str(),
        "{board}"
    );
    let dora = eventually(
        || json(client(&ci, &["dora", "--service", "web", "--json"])),
        |dora| dora["deployment_frequency"]["value"]["deployments"] == 1,
    );
    assert_eq!(
        dora["deployment_frequency"]["value"]["deployments"], 1,
        "{dora}"
    );
    assert_eq!(dora["change_lead_time"]["value"]["commits"], 2);
    let summary = ok(client(&ci, &["dora", "--service", "web"]));
    assert!(summary.contains("deployment frequency"), "{summary}");
    let trace = eventually(
        || get("/v1/trace/requirements/REQ-1"),
        |trace| trace["releases"][0]["deployments"][0]["deployment_id"] == deployment.as_str(),
    );
    assert_eq!(trace["tests"][0]["status"], "passed", "{trace}");
    assert_eq!(
        trace["releases"][0]["deployments"][0]["deployment_id"],
        deployment.as_str()
    );

    // An audit export, verified offline with the public key the API serves.
    let key = http
        .get(format!("{query}/v1/ledger/public-key"))
        .bearer_auth(&admin)
        .send()
        .expect("key")
        .text()
        .expect("pem");
    std::fs::write(home.path().join("ledger.pub"), key).expect("write key");
    let auditor = token("aud@example.com", "auditor");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let exported = client(&auditor, &["audit", "export", "--output", "audit.jsonl"]);
        if exported.status.success() {
            break;
        }
        // Right after the last command no checkpoint may cover it yet.
        assert!(
            String::from_utf8_lossy(&exported.stderr).contains("checkpoint_pending")
                && std::time::Instant::now() < deadline,
            "{exported:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let verified = ok(rp(
        home.path(),
        &["verify", "audit.jsonl", "--public-key", "ledger.pub"],
        &[],
    ));
    assert!(verified.starts_with("export verified"), "{verified}");
    // And the database itself verifies with the key serve generated.
    let verified = ok(rp(home.path(), &["verify"], &db_env));
    assert!(verified.starts_with("ledger verified"), "{verified}");
}
