//! End-to-end tests of the `release-pilot` binary as a newcomer runs it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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

fn release_pilot(args: &[&str], stdin: &str) -> Output {
    release_pilot_with(args, stdin, &[])
}

fn release_pilot_with(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_release-pilot"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("RELEASE_PILOT_SIGNING_KEY")
        .env_remove("RELEASE_PILOT_DATA_DIR")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("binary finishes")
}

/// A repository tagged v1.4.2 followed by conventional commits.
fn repository(messages: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(
        dir.path(),
        &["commit", "-q", "--allow-empty", "-m", "chore: initial"],
    );
    git(dir.path(), &["tag", "v1.4.2"]);
    for message in messages {
        git(
            dir.path(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
    }
    dir
}

#[test]
fn next_version_plans_a_release_from_real_git_history() {
    let repo = repository(&["fix: retry on timeout", "feat(api): search\n\nRefs: REQ-3"]);
    let log = git(
        repo.path(),
        &["log", "--format=%H%n%B%n---", "v1.4.2..HEAD"],
    );
    let output = release_pilot(&["next-version", "--previous", "v1.4.2", "--json"], &log);
    assert!(output.status.success(), "{output:?}");
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(plan["version"], "1.5.0");
    assert_eq!(plan["bump"], "minor");
    let kinds: Vec<_> = plan["changelog"]["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| s["kind"].as_str().expect("kind").to_owned())
        .collect();
    assert_eq!(kinds, ["feature", "fix"]);
}

#[test]
fn next_version_exits_1_when_nothing_calls_for_a_release() {
    let repo = repository(&["docs: typo", "chore: deps"]);
    let log = git(
        repo.path(),
        &["log", "--format=%H%n%B%n---", "v1.4.2..HEAD"],
    );
    let output = release_pilot(&["next-version", "--previous", "1.4.2"], &log);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}

#[test]
fn next_version_exits_2_on_bad_input() {
    let output = release_pilot(&["next-version", "--previous", "one.two"], "");
    assert_eq!(output.status.code(), Some(2));
    let output = release_pilot(&["next-version"], "not a sha\nfeat: x\n---\n");
    assert_eq!(output.status.code(), Some(2));
    let output = release_pilot(&["next-version"], "");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn without_a_database_url_the_ledger_commands_use_the_embedded_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_release-pilot"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("RELEASE_PILOT_SIGNING_KEY")
            .env_remove("RELEASE_PILOT_DATA_DIR")
            .output()
            .expect("binary runs")
    };
    let migrated = run(&["migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");
    assert!(dir.path().join("data/release-pilot.db").is_file());
    // An empty ledger verifies (with a key generated for it by nobody yet: --public-key
    // is not needed when nothing is signed).
    let key = dir.path().join("data/ledger-signing-key.pem");
    release_pilot_ledger::signing::LedgerKey::load_or_generate(&key).expect("key");
    let verified = run(&["verify"]);
    assert!(verified.status.success(), "{verified:?}");
    assert!(String::from_utf8_lossy(&verified.stdout).contains("0 entries"));
}

#[test]
fn an_unreachable_database_is_named_with_exit_2() {
    let output = release_pilot_with(
        &["migrate"],
        "",
        &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nothing")],
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("release-pilot:"), "{stderr}");
}

/// A migrated database holding `events` sealed events, the signing key's file, and the
/// runtime its pool lives on (a pool must be used from the runtime that opened it).
fn sealed_database(
    events: i64,
) -> (
    tokio::runtime::Runtime,
    release_pilot_ledger::testkit::TestDatabase,
    tempfile::TempDir,
) {
    use release_pilot_ledger::sealer::{Sealer, SealerConfig};
    use release_pilot_ledger::signing::LedgerKey;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let keys = tempfile::tempdir().expect("temp dir");
    let (key, _) =
        LedgerKey::load_or_generate(&keys.path().join("ledger-signing-key.pem")).expect("key");
    let db = runtime.block_on(async {
        let db = release_pilot_ledger::testkit::TestDatabase::create().await;
        for n in 1..=events {
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                 VALUES ('release', 'r1', $1, 'E', '1', '{\"E\": {}}', '{}')",
            )
            .bind(n)
            .execute(&db.pool)
            .await
            .expect("insert");
        }
        let sealer = Sealer::new(db.pool.clone(), key, SealerConfig::default());
        // Another test's open transaction may hold the sealing horizon back for a moment:
        // seal until every committed event is in the ledger.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while sealer.seal_batch().await.expect("seal").head < events {
            assert!(std::time::Instant::now() < deadline, "sealing did not catch up");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        sealer.checkpoint_now().await.expect("checkpoint");
        db
    });
    (runtime, db, keys)
}

#[test]
fn migrate_is_idempotent_on_a_real_database() {
    let (_runtime, db, _keys) = sealed_database(0);
    let url = db.url.clone();
    for _ in 0..2 {
        let output = release_pilot_with(&["migrate"], "", &[("DATABASE_URL", &url)]);
        assert!(output.status.success(), "{output:?}");
    }
}

#[test]
fn verify_passes_on_an_intact_ledger_and_names_the_tampered_position() {
    let (runtime, db, keys) = sealed_database(25);
    let url = db.url.clone();
    let data_dir = keys.path().to_str().expect("utf-8 path").to_owned();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("RELEASE_PILOT_DATA_DIR", data_dir.as_str()),
    ];
    let output = release_pilot_with(&["verify"], "", &env);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("ledger verified: 25 entries, "),
        "{stdout}"
    );
    assert!(!stdout.contains(" 0 signed checkpoints"), "{stdout}");

    runtime.block_on(async {
        let mut tx = db.pool.begin().await.expect("begin");
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await
            .expect("disable triggers");
        sqlx::query("UPDATE events SET payload = '{\"E\": {\"x\": 1}}' WHERE sequence = 9")
            .execute(&mut *tx)
            .await
            .expect("tamper");
        tx.commit().await.expect("commit");
    });
    let output = release_pilot_with(&["verify"], "", &env);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("position 9: hash mismatch"), "{stderr}");
}

#[test]
fn verify_refuses_to_guess_a_public_key() {
    let (_runtime, db, _keys) = sealed_database(1);
    let empty = tempfile::tempdir().expect("temp dir");
    let output = release_pilot_with(
        &[
            "verify",
            "--data-dir",
            empty.path().to_str().expect("utf-8"),
        ],
        "",
        &[("DATABASE_URL", &db.url)],
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--public-key"));
}

#[test]
fn the_projector_builds_read_models_and_stops_cleanly_on_sigterm() {
    let (runtime, db, _keys) = sealed_database(12);
    let mut child = Command::new(env!("CARGO_BIN_EXE_release-pilot"))
        .arg("projector")
        .env("DATABASE_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("projector starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let indexed = loop {
        let count: i64 = runtime.block_on(async {
            sqlx::query_scalar("SELECT count(*) FROM rm_audit_index")
                .fetch_one(&db.pool)
                .await
                .expect("count")
        });
        if count == 12 || std::time::Instant::now() > deadline {
            break count;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = child.wait().expect("projector exits");
    assert_eq!(indexed, 12, "every sealed entry is indexed");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn replay_rebuilds_a_projection_and_refuses_unknown_names() {
    let (_runtime, db, _keys) = sealed_database(30);
    let env = [("DATABASE_URL", db.url.as_str())];
    let output = release_pilot_with(&["replay", "--projection", "audit_index"], "", &env);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("audit_index: rebuilt from 30 entries up to position 30"),
        "{stdout}"
    );

    let output = release_pilot_with(&["replay", "--batch", "0"], "", &env);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--batch"));

    let output = release_pilot_with(&["replay", "--projection", "audit"], "", &env);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no projection named \"audit\"") && stderr.contains("dora_facts"),
        "{stderr}"
    );

    // These events are not release events the release timeline can read: its replay
    // stops at the first one, names it, and leaves the live tables as they were.
    let output = release_pilot_with(&["replay", "--projection", "release_timeline"], "", &env);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("release_timeline") && stderr.contains("position 1"),
        "{stderr}"
    );
}

#[test]
fn verify_checks_an_export_file_offline_and_names_a_tampered_position() {
    use futures::TryStreamExt;
    let (runtime, db, keys) = sealed_database(20);
    let export = runtime.block_on(async {
        let manifest = release_pilot_ledger::export::plan(&db.db(), None, None)
            .await
            .expect("plan")
            .expect("a checkpoint covers the ledger");
        let lines: Vec<String> = release_pilot_ledger::export::lines(db.db(), &manifest, 7)
            .try_collect()
            .await
            .expect("lines");
        let head = serde_json::to_string(&release_pilot_ledger::export::ManifestLine { manifest })
            .expect("manifest");
        format!("{head}\n{}", lines.concat())
    });
    let key_pem = std::fs::read_to_string(keys.path().join("ledger-signing-key.pem")).expect("key");
    let public = release_pilot_ledger::signing::LedgerKey::from_pem(&key_pem)
        .expect("key")
        .public_pem()
        .expect("pem");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ledger.pub"), public).expect("write key");
    std::fs::write(dir.path().join("export.jsonl"), &export).expect("write export");
    let args = |file: &str| {
        vec![
            "verify".to_owned(),
            dir.path().join(file).display().to_string(),
            "--public-key".to_owned(),
            dir.path().join("ledger.pub").display().to_string(),
        ]
    };
    let run = |file: &str| {
        let args = args(file);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // No database: an export verifies with the public key alone.
        release_pilot(&args, "")
    };
    let output = run("export.jsonl");
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("export verified: 20 entries"));

    let mut lines: Vec<String> = export.lines().map(str::to_owned).collect();
    lines[8] = lines[8].replace("\"sequence\":8", "\"sequence\":80");
    std::fs::write(dir.path().join("tampered.jsonl"), lines.join("\n") + "\n").expect("write");
    let output = run("tampered.jsonl");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("position 8: hash mismatch"), "{stderr}");

    let output = run("missing.jsonl");
    assert_eq!(output.status.code(), Some(2), "{output:?}");

    // `release-pilot export` writes the same export, which verifies.
    let file = dir.path().join("cli.jsonl").display().to_string();
    let output = release_pilot_with(
        &["export", "--output", &file],
        "",
        &[("DATABASE_URL", &db.url)],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(std::fs::read_to_string(&file).expect("export"), export);
    assert!(run("cli.jsonl").status.success());
    let output = release_pilot_with(
        &["export", "--from", "2099-01-01"],
        "",
        &[("DATABASE_URL", &db.url)],
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("no ledger entry"));
}

#[test]
fn the_query_api_serves_until_sigterm() {
    use std::io::BufRead;
    let (_runtime, db, keys) = sealed_database(3);
    let mut child = Command::new(env!("CARGO_BIN_EXE_release-pilot"))
        .args(["query-api", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &db.url)
        .env("RELEASE_PILOT_DATA_DIR", keys.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("query-api starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the address");
    let address = line
        .trim()
        .strip_prefix("query API listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect");
    std::io::Write::write_all(
        &mut stream,
        b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("request");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    assert!(child.wait().expect("exits").success());
}

#[test]
fn demo_seeds_a_history_through_the_api_and_prints_the_dora_summary() {
    let (_runtime, db, _keys) = sealed_database(0);
    let home = tempfile::tempdir().expect("dir");
    let output = Command::new(env!("CARGO_BIN_EXE_release-pilot"))
        .args([
            "demo",
            "--exit",
            "--days",
            "14",
            "--services",
            "checkout,search",
            "--listen",
            "127.0.0.1:0",
            "--query-listen",
            "127.0.0.1:0",
        ])
        .current_dir(home.path())
        .env("DATABASE_URL", &db.url)
        .env_remove("RELEASE_PILOT_DATA_DIR")
        .env_remove("RUST_LOG")
        .output()
        .expect("demo runs");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("seeded 14 days:"), "{stdout}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("checkout ") || l.starts_with("search "))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(stdout.contains("where to look next"), "{stdout}");
    assert!(stdout.contains("/v1/dora?service=checkout"), "{stdout}");
}
