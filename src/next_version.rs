//! `release-pilot next-version`: the version and changelog a release would get, computed
//! from commit messages with the same rule the ledger applies.
//!
//! Input on standard input is what
//! `git log --format='%H%n%B%n---' PREVIOUS_TAG..HEAD` prints: for each commit, its full
//! sha on one line, its message, then a line holding only `---`.

use std::io::Read;
use std::process::ExitCode;

use release_pilot_domain::conventional::{parse_version, plan_release, VersionSource};
use release_pilot_domain::ids::CommitSha;

/// Arguments of `next-version`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service's previous release (e.g. 1.4.2); omit for a first release.
    #[arg(long)]
    previous: Option<String>,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

/// A commit read from the input.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    sha: CommitSha,
    message: String,
}

/// Splits `git log --format='%H%n%B%n---'` output into commits.
fn parse_records(input: &str) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    let mut lines = input.lines().peekable();
    while lines.peek().is_some() {
        let Some(first) = lines.find(|l| !l.trim().is_empty()) else {
            break;
        };
        let sha = CommitSha::parse(first)
            .map_err(|e| format!("expected a commit sha line, found {first:?}: {e}"))?;
        let mut message = Vec::new();
        for line in lines.by_ref() {
            if line.trim_end() == "---" {
                break;
            }
            message.push(line);
        }
        let message = message.join("\n").trim().to_owned();
        if message.is_empty() {
            return Err(format!("commit {sha} has no message"));
        }
        records.push(Record { sha, message });
    }
    Ok(records)
}

/// Runs the subcommand: 0 with a version, 1 when nothing calls for a release, 2 on bad
/// input.
pub fn run(args: Args) -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("release-pilot: cannot read standard input: {e}");
        return ExitCode::from(2);
    }
    let previous = match args.previous.as_deref().map(parse_version).transpose() {
        Ok(previous) => previous,
        Err(e) => {
            eprintln!("release-pilot: --previous: {e}");
            return ExitCode::from(2);
        }
    };
    let records = match parse_records(&input) {
        Ok(records) if records.is_empty() => {
            eprintln!("release-pilot: no commits on standard input; pipe in git log --format='%H%n%B%n---' A..B");
            return ExitCode::from(2);
        }
        Ok(records) => records,
        Err(e) => {
            eprintln!("release-pilot: {e}");
            return ExitCode::from(2);
        }
    };
    let commits: Vec<_> = records
        .iter()
        .map(|r| (r.sha.clone(), r.message.as_str()))
        .collect();
    let plan = match plan_release(previous.as_ref(), None, &commits) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("release-pilot: {e}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        let bump = match plan.source {
            VersionSource::Computed { bump } => Some(bump),
            VersionSource::Explicit => None,
        };
        let out = serde_json::json!({
            "version": plan.version.to_string(),
            "previous_version": previous.map(|v| v.to_string()),
            "bump": bump,
            "changelog": plan.changelog,
        });
        println!("{out:#}");
    } else {
        print!("{}", plan.changelog.to_markdown(&plan.version));
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "0123456789abcdef0123456789abcdef01234567";
    const SHA2: &str = "89abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn git_log_output_is_split_into_commits() {
        let input = format!("{SHA1}\nfeat: a\n\nbody\n---\n\n{SHA2}\nfix: b\n---\n");
        let records = parse_records(&input).expect("parses");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].message, "feat: a\n\nbody");
        assert_eq!(records[1].sha.as_str(), SHA2);
    }

    #[test]
    fn a_missing_separator_at_the_end_is_tolerated() {
        let records = parse_records(&format!("{SHA1}\nfeat: a")).expect("parses");
        assert_eq!(records[0].message, "feat: a");
    }

    #[test]
    fn garbage_instead_of_a_sha_is_an_error() {
        assert!(parse_records("hello\nfeat: a\n---\n").is_err());
        assert!(parse_records(&format!("{SHA1}\n---\n")).is_err());
    }
}
