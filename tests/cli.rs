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
    let mut child = Command::new(env!("CARGO_BIN_EXE_release-pilot"))
        .args(args)
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
fn subcommands_that_have_not_landed_say_so_and_exit_2() {
    for subcommand in ["serve", "migrate", "verify", "demo"] {
        let output = release_pilot(&[subcommand], "");
        assert_eq!(output.status.code(), Some(2), "{subcommand}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("not yet available"),
            "{subcommand}: {stderr}"
        );
    }
}
