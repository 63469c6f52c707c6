//! `CreateRelease`: record a release of a service from its commits, with its version
//! (given, or computed from conventional commits) and changelog.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use semver::Version;

use super::{Release, ReleaseCommit, ReleaseEvent};
use crate::conventional::plan_release;
use crate::error::DomainError;
use crate::ids::{CommitSha, Person, ReleaseId, RequirementId, ServiceName};
use crate::links::LinkRules;

/// Longest commit message kept, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most commits in one release.
pub const MAX_COMMITS: usize = 10_000;

/// A commit as the caller submits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInput {
    /// Its id.
    pub sha: CommitSha,
    /// The full message.
    pub message: String,
    /// Its author.
    pub author: Person,
    /// When it was committed.
    pub committed_at: DateTime<Utc>,
}

/// Create a release.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRelease {
    /// Minted by the command service.
    pub release_id: ReleaseId,
    /// The service released.
    pub service: ServiceName,
    /// An explicit version; computed from the commits when absent.
    pub version: Option<Version>,
    /// The service's latest release so far, looked up by the command service.
    pub previous_version: Option<Version>,
    /// The commits in the release.
    pub commits: Vec<CommitInput>,
    /// Requirements declared by the caller, in addition to those linked from commits.
    pub requirements: Vec<RequirementId>,
    /// The artifact reference.
    pub artifact: Option<String>,
    /// How requirement links are found in commit messages (from configuration).
    pub link_rules: LinkRules,
    /// Who creates it (from the token).
    pub actor: Person,
    /// When (stamped by the service).
    pub requested_at: DateTime<Utc>,
}

impl CreateRelease {
    /// Validates the commits, plans the version and changelog and links requirements.
    pub fn decide(self, state: &Release) -> Result<Vec<ReleaseEvent>, DomainError> {
        if state.info.is_some() {
            return Err(DomainError::AlreadyExists);
        }
        if self.commits.is_empty() {
            return Err(DomainError::NoCommits);
        }
        if self.commits.len() > MAX_COMMITS {
            return Err(DomainError::invalid(
                "commits",
                format!("at most {MAX_COMMITS} commits per release"),
            ));
        }
        let mut seen = HashSet::new();
        for commit in &self.commits {
            if !seen.insert(&commit.sha) {
                return Err(DomainError::invalid(
                    "commits",
                    format!("commit {} appears twice", commit.sha),
                ));
            }
            if commit.message.trim().is_empty() || commit.message.len() > MAX_MESSAGE_BYTES {
                return Err(DomainError::invalid(
                    "commits.message",
                    format!(
                        "commit {} needs a message of 1 to {MAX_MESSAGE_BYTES} bytes",
                        commit.sha
                    ),
                ));
            }
        }
        if self
            .artifact
            .as_ref()
            .is_some_and(|a| a.trim().is_empty() || a.len() > 1024)
        {
            return Err(DomainError::invalid(
                "artifact",
                "must be 1 to 1024 characters when given",
            ));
        }
        let messages: Vec<(CommitSha, &str)> = self
            .commits
            .iter()
            .map(|c| (c.sha.clone(), c.message.as_str()))
            .collect();
        let plan = plan_release(
            self.previous_version.as_ref(),
            self.version.as_ref(),
            &messages,
        )?;
        let mut requirements: BTreeSet<RequirementId> = self.requirements.into_iter().collect();
        let commits: Vec<ReleaseCommit> = self
            .commits
            .into_iter()
            .map(|c| {
                let linked = self.link_rules.find(&c.message);
                requirements.extend(linked.iter().cloned());
                ReleaseCommit {
                    sha: c.sha,
                    message: c.message,
                    author: c.author,
                    committed_at: c.committed_at,
                    requirements: linked,
                }
            })
            .collect();
        Ok(vec![ReleaseEvent::ReleaseCreated {
            release_id: self.release_id,
            service: self.service,
            version: plan.version,
            version_source: plan.source,
            previous_version: self.previous_version,
            commits,
            requirements: requirements.into_iter().collect(),
            changelog: plan.changelog,
            artifact: self.artifact.map(|a| a.trim().to_owned()),
            created_by: self.actor,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conventional::{Bump, VersionSource};
    use crate::release::fixtures::{created, now};
    use crate::release::ReleaseCommand;
    use crate::testsupport::{at, person, release_id, req, service, sha};
    use cqrs_es::test::TestFramework;

    type Fixture = TestFramework<Release>;

    fn commit(n: u8, message: &str) -> CommitInput {
        CommitInput {
            sha: sha(n),
            message: message.into(),
            author: person("dev@example.com"),
            committed_at: at(-10),
        }
    }

    fn create(messages: &[&str]) -> CreateRelease {
        CreateRelease {
            release_id: release_id(1),
            service: service("api"),
            version: None,
            previous_version: Some(Version::new(1, 0, 0)),
            commits: messages
                .iter()
                .enumerate()
                .map(|(i, m)| commit(i as u8, m))
                .collect(),
            requirements: vec![req("REQ-9")],
            artifact: Some("ghcr.io/acme/api@sha256:abc".into()),
            link_rules: LinkRules::default(),
            actor: person("ci-bot"),
            requested_at: now(),
        }
    }

    fn run(
        command: CreateRelease,
        given: Vec<ReleaseEvent>,
    ) -> Result<Vec<ReleaseEvent>, DomainError> {
        Fixture::with(())
            .given(given)
            .when(ReleaseCommand::Create(command))
            .inspect_result()
    }

    #[test]
    fn a_release_without_a_version_gets_one_from_its_commits() {
        let events = run(create(&["fix: a", "feat: b\n\nRefs: REQ-2"]), vec![]).expect("created");
        let [ReleaseEvent::ReleaseCreated {
            version,
            version_source,
            commits,
            requirements,
            changelog,
            ..
        }] = &events[..]
        else {
            panic!("expected one ReleaseCreated, got {events:?}");
        };
        assert_eq!(version, &Version::new(1, 1, 0));
        assert_eq!(
            version_source,
            &VersionSource::Computed { bump: Bump::Minor }
        );
        assert_eq!(commits[1].requirements, [req("REQ-2")]);
        assert_eq!(requirements, &[req("REQ-2"), req("REQ-9")]);
        assert_eq!(changelog.sections.len(), 2);
    }

    #[test]
    fn an_explicit_version_is_kept() {
        let mut command = create(&["chore: bump deps"]);
        command.version = Some(Version::new(1, 0, 1));
        let events = run(command, vec![]).expect("created");
        assert!(matches!(
            &events[..],
            [ReleaseEvent::ReleaseCreated { version_source: VersionSource::Explicit, version, .. }]
                if *version == Version::new(1, 0, 1)
        ));
    }

    #[test]
    fn a_release_is_created_once() {
        assert_eq!(
            run(create(&["feat: a"]), vec![created()]),
            Err(DomainError::AlreadyExists)
        );
    }

    #[test]
    fn a_release_needs_commits() {
        assert_eq!(run(create(&[]), vec![]), Err(DomainError::NoCommits));
    }

    #[test]
    fn duplicate_commits_are_invalid() {
        let mut command = create(&["feat: a"]);
        command.commits.push(command.commits[0].clone());
        assert!(matches!(
            run(command, vec![]),
            Err(DomainError::InvalidValue {
                field: "commits",
                ..
            })
        ));
    }

    #[test]
    fn empty_commit_messages_are_invalid() {
        assert!(matches!(
            run(create(&["  "]), vec![]),
            Err(DomainError::InvalidValue {
                field: "commits.message",
                ..
            })
        ));
    }

    #[test]
    fn a_blank_artifact_is_invalid() {
        let mut command = create(&["feat: a"]);
        command.artifact = Some(" ".into());
        assert!(matches!(
            run(command, vec![]),
            Err(DomainError::InvalidValue {
                field: "artifact",
                ..
            })
        ));
    }

    #[test]
    fn an_explicit_version_not_above_the_previous_is_refused() {
        let mut command = create(&["feat: a"]);
        command.version = Some(Version::new(1, 0, 0));
        assert!(matches!(
            run(command, vec![]),
            Err(DomainError::VersionNotGreater { .. })
        ));
    }

    #[test]
    fn commits_that_call_for_no_release_need_an_explicit_version() {
        assert_eq!(
            run(create(&["docs: a", "ci: b"]), vec![]),
            Err(DomainError::NoReleasableChanges)
        );
    }
}
