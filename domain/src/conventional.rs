//! Versions and changelogs from Conventional Commits.
//!
//! A release created without a version gets one from its commits, relative to the
//! service's previous release: `feat` → minor, `fix`/`perf` → patch, `!` or a
//! `BREAKING CHANGE:` footer → major; the strongest commit wins. With no previous release
//! the base is `0.0.0`. Pre-release and build parts of the previous version are dropped
//! before bumping, so the result is always greater. Commit messages that do not follow
//! the convention count as "other" and bump nothing.

use std::fmt;

use git_conventional::{Commit, Type};
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ids::CommitSha;

/// How much a change moves the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bump {
    /// No release needed.
    None,
    /// x.y.Z
    Patch,
    /// x.Y.0
    Minor,
    /// X.0.0
    Major,
}

/// The changelog section a commit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// `!` or `BREAKING CHANGE:`.
    Breaking,
    /// `feat`.
    Feature,
    /// `fix`.
    Fix,
    /// `perf`.
    Performance,
    /// `revert`.
    Revert,
    /// `docs`.
    Documentation,
    /// `refactor`.
    Refactor,
    /// Anything else, including messages that are not conventional commits.
    Other,
}

impl ChangeKind {
    /// The section heading.
    pub fn title(&self) -> &'static str {
        match self {
            Self::Breaking => "Breaking changes",
            Self::Feature => "Features",
            Self::Fix => "Bug fixes",
            Self::Performance => "Performance",
            Self::Revert => "Reverts",
            Self::Documentation => "Documentation",
            Self::Refactor => "Refactoring",
            Self::Other => "Other changes",
        }
    }
}

/// What one commit message means for the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The version bump it calls for.
    pub bump: Bump,
    /// Its changelog section.
    pub kind: ChangeKind,
    /// The conventional scope, if any.
    pub scope: Option<String>,
    /// The one-line description.
    pub description: String,
}

/// Reads one commit message.
pub fn classify(message: &str) -> Classified {
    let first_line = || message.lines().next().unwrap_or("").trim().to_owned();
    let Ok(commit) = Commit::parse(message.trim()) else {
        return Classified {
            bump: Bump::None,
            kind: ChangeKind::Other,
            scope: None,
            description: first_line(),
        };
    };
    let commit_type = commit.type_();
    let (bump, kind) = if commit.breaking() {
        (Bump::Major, ChangeKind::Breaking)
    } else if commit_type == Type::FEAT {
        (Bump::Minor, ChangeKind::Feature)
    } else if commit_type == Type::FIX {
        (Bump::Patch, ChangeKind::Fix)
    } else if commit_type == Type::PERF {
        (Bump::Patch, ChangeKind::Performance)
    } else if commit_type == Type::REVERT {
        (Bump::None, ChangeKind::Revert)
    } else if commit_type == Type::DOCS {
        (Bump::None, ChangeKind::Documentation)
    } else if commit_type == Type::REFACTOR {
        (Bump::None, ChangeKind::Refactor)
    } else {
        (Bump::None, ChangeKind::Other)
    };
    Classified {
        bump,
        kind,
        scope: commit.scope().map(|s| s.as_str().to_owned()),
        description: commit.description().trim().to_owned(),
    }
}

/// The version after `previous` for `bump`; `None` when the bump is [`Bump::None`].
pub fn next_version(previous: Option<&Version>, bump: Bump) -> Option<Version> {
    let base = previous.cloned().unwrap_or_else(|| Version::new(0, 0, 0));
    let (major, minor, patch) = (base.major, base.minor, base.patch);
    // Pre-release and build parts are dropped: the plain next version is always greater
    // than `previous`, including when `previous` is a pre-release of it.
    match bump {
        Bump::None => None,
        Bump::Major => Some(Version::new(major + 1, 0, 0)),
        Bump::Minor => Some(Version::new(major, minor + 1, 0)),
        Bump::Patch => Some(Version::new(major, minor, patch + 1)),
    }
}

/// One changelog line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangelogEntry {
    /// The commit.
    pub sha: CommitSha,
    /// The conventional scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The description.
    pub description: String,
}

/// One changelog section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangelogSection {
    /// Which kind of change.
    pub kind: ChangeKind,
    /// Its entries, in commit order.
    pub entries: Vec<ChangelogEntry>,
}

/// A changelog grouped by change kind, sections in a fixed order, empty ones omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changelog {
    /// The sections.
    pub sections: Vec<ChangelogSection>,
}

impl Changelog {
    /// Renders the changelog as Markdown under a `## version` heading.
    pub fn to_markdown(&self, version: &Version) -> String {
        let mut out = format!("## {version}\n");
        for section in &self.sections {
            out.push_str(&format!("\n### {}\n\n", section.kind.title()));
            for entry in &section.entries {
                match &entry.scope {
                    Some(scope) => out.push_str(&format!(
                        "- **{scope}:** {} ({})\n",
                        entry.description,
                        entry.sha.short()
                    )),
                    None => out.push_str(&format!(
                        "- {} ({})\n",
                        entry.description,
                        entry.sha.short()
                    )),
                }
            }
        }
        out
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// Where a release's version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum VersionSource {
    /// Given by the caller.
    Explicit,
    /// Computed from the commits with this bump.
    Computed {
        /// The strongest bump among the commits.
        bump: Bump,
    },
}

/// A release's version and changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasePlan {
    /// The version.
    pub version: Version,
    /// Where it came from.
    pub source: VersionSource,
    /// The changelog.
    pub changelog: Changelog,
}

/// Parses a semantic version, with a message a person can act on.
pub fn parse_version(text: &str) -> Result<Version, DomainError> {
    let trimmed = text.trim();
    let trimmed = trimmed.strip_prefix('v').unwrap_or(trimmed);
    Version::parse(trimmed).map_err(|e| DomainError::InvalidVersion {
        given: text.to_owned(),
        reason: e.to_string(),
    })
}

/// Decides a release's version and changelog: the explicit version when given (it must be
/// greater than `previous`), otherwise the one the commits call for.
pub fn plan_release(
    previous: Option<&Version>,
    explicit: Option<&Version>,
    commits: &[(CommitSha, &str)],
) -> Result<ReleasePlan, DomainError> {
    let mut strongest = Bump::None;
    let mut sections: Vec<ChangelogSection> = Vec::new();
    for (sha, message) in commits {
        let classified = classify(message);
        strongest = strongest.max(classified.bump);
        let entry = ChangelogEntry {
            sha: sha.clone(),
            scope: classified.scope,
            description: classified.description,
        };
        match sections.iter_mut().find(|s| s.kind == classified.kind) {
            Some(section) => section.entries.push(entry),
            None => sections.push(ChangelogSection {
                kind: classified.kind,
                entries: vec![entry],
            }),
        }
    }
    sections.sort_by_key(|s| s.kind);
    let changelog = Changelog { sections };
    let (version, source) = match explicit {
        Some(version) => {
            if let Some(previous) = previous {
                if version.cmp_precedence(previous) != std::cmp::Ordering::Greater {
                    return Err(DomainError::VersionNotGreater {
                        given: version.to_string(),
                        previous: previous.to_string(),
                    });
                }
            }
            (version.clone(), VersionSource::Explicit)
        }
        None => {
            let version =
                next_version(previous, strongest).ok_or(DomainError::NoReleasableChanges)?;
            (version, VersionSource::Computed { bump: strongest })
        }
    };
    Ok(ReleasePlan {
        version,
        source,
        changelog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::sha;
    use proptest::prelude::*;

    fn v(text: &str) -> Version {
        Version::parse(text).expect("valid version")
    }

    fn plan(previous: Option<&str>, messages: &[&str]) -> Result<ReleasePlan, DomainError> {
        let previous = previous.map(v);
        let commits: Vec<_> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (sha(i as u8), *m))
            .collect();
        plan_release(previous.as_ref(), None, &commits)
    }

    #[test]
    fn commit_types_map_to_bumps() {
        assert_eq!(classify("feat(api): add search").bump, Bump::Minor);
        assert_eq!(classify("fix: null check").bump, Bump::Patch);
        assert_eq!(classify("perf: cache lookups").bump, Bump::Patch);
        assert_eq!(classify("feat!: drop v1 routes").bump, Bump::Major);
        assert_eq!(
            classify("refactor: split module\n\nBREAKING CHANGE: config renamed").bump,
            Bump::Major
        );
        assert_eq!(classify("docs: typo").bump, Bump::None);
        assert_eq!(classify("Merge branch 'main'").bump, Bump::None);
        assert_eq!(classify("FEAT: shouting").bump, Bump::Minor);
    }

    #[test]
    fn the_strongest_commit_decides() {
        let p = plan(Some("1.4.2"), &["fix: a", "feat: b", "docs: c"]).expect("plan");
        assert_eq!(p.version, v("1.5.0"));
        assert_eq!(p.source, VersionSource::Computed { bump: Bump::Minor });
        let p = plan(Some("1.4.2"), &["fix: a", "feat!: b"]).expect("plan");
        assert_eq!(p.version, v("2.0.0"));
        let p = plan(Some("1.4.2"), &["perf: a"]).expect("plan");
        assert_eq!(p.version, v("1.4.3"));
    }

    #[test]
    fn the_first_release_bumps_from_zero() {
        assert_eq!(
            plan(None, &["feat: hello"]).expect("plan").version,
            v("0.1.0")
        );
        assert_eq!(
            plan(None, &["fix: hello"]).expect("plan").version,
            v("0.0.1")
        );
    }

    #[test]
    fn a_prerelease_previous_version_is_bumped_past() {
        let p = plan(Some("2.0.0-rc.1"), &["fix: a"]).expect("plan");
        assert_eq!(p.version, v("2.0.1"));
    }

    #[test]
    fn nothing_releasable_without_an_explicit_version_is_refused() {
        assert_eq!(
            plan(Some("1.0.0"), &["docs: a", "chore: b", "not conventional"]),
            Err(DomainError::NoReleasableChanges)
        );
    }

    #[test]
    fn an_explicit_version_must_be_greater_than_the_previous() {
        let commits = [(sha(1), "docs: a")];
        let ok = plan_release(Some(&v("1.0.0")), Some(&v("1.0.1")), &commits).expect("plan");
        assert_eq!(ok.source, VersionSource::Explicit);
        for not_greater in ["1.0.0", "0.9.9", "1.0.0+build.7", "1.0.0-rc.1"] {
            assert!(matches!(
                plan_release(Some(&v("1.0.0")), Some(&v(not_greater)), &commits),
                Err(DomainError::VersionNotGreater { .. })
            ));
        }
    }

    #[test]
    fn versions_are_parsed_with_an_optional_v_prefix() {
        assert_eq!(parse_version("v1.2.3"), Ok(v("1.2.3")));
        assert!(matches!(
            parse_version("1.2"),
            Err(DomainError::InvalidVersion { .. })
        ));
    }

    #[test]
    fn the_changelog_is_grouped_by_kind_in_a_fixed_order() {
        let p = plan(
            Some("1.0.0"),
            &[
                "fix(db): retry on deadlock",
                "docs: readme",
                "feat: export csv",
                "feat(api)!: remove v0",
                "wip",
            ],
        )
        .expect("plan");
        let kinds: Vec<_> = p.changelog.sections.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                ChangeKind::Breaking,
                ChangeKind::Feature,
                ChangeKind::Fix,
                ChangeKind::Documentation,
                ChangeKind::Other
            ]
        );
        let fix = &p.changelog.sections[2].entries[0];
        assert_eq!(fix.scope.as_deref(), Some("db"));
        assert_eq!(fix.description, "retry on deadlock");
        let markdown = p.changelog.to_markdown(&p.version);
        assert!(markdown.starts_with("## 2.0.0\n"));
        assert!(markdown.contains("### Bug fixes"));
    }

    fn commit_message() -> impl Strategy<Value = (String, Bump)> {
        prop_oneof![
            Just(("feat: x".to_owned(), Bump::Minor)),
            Just(("feat(scope): x".to_owned(), Bump::Minor)),
            Just(("fix: x".to_owned(), Bump::Patch)),
            Just(("perf: x".to_owned(), Bump::Patch)),
            Just(("feat!: x".to_owned(), Bump::Major)),
            Just(("fix: x\n\nBREAKING CHANGE: y".to_owned(), Bump::Major)),
            Just(("docs: x".to_owned(), Bump::None)),
            Just(("chore: x".to_owned(), Bump::None)),
            Just(("random words".to_owned(), Bump::None)),
        ]
    }

    proptest! {
        #[test]
        fn the_computed_version_is_greater_and_matches_the_strongest_commit(
            major in 0u64..50, minor in 0u64..50, patch in 0u64..50,
            pre in prop::option::of("[a-z]{1,5}\\.[1-9][0-9]?"),
            first in commit_message(),
            rest in prop::collection::vec(commit_message(), 0..20),
        ) {
            let mut previous = Version::new(major, minor, patch);
            if let Some(pre) = pre {
                previous.pre = semver::Prerelease::new(&pre).expect("valid pre-release");
            }
            let all: Vec<_> = std::iter::once(first).chain(rest).collect();
            let strongest = all.iter().map(|(_, b)| *b).max().unwrap_or(Bump::None);
            let commits: Vec<_> = all.iter().enumerate().map(|(i, (m, _))| (sha(i as u8), m.as_str())).collect();
            match plan_release(Some(&previous), None, &commits) {
                Ok(plan) => {
                    prop_assert!(plan.version > previous);
                    prop_assert_eq!(plan.source, VersionSource::Computed { bump: strongest });
                    let expected = match strongest {
                        Bump::Major => (previous.major + 1, 0, 0),
                        Bump::Minor => (previous.major, previous.minor + 1, 0),
                        Bump::Patch => (previous.major, previous.minor, previous.patch + 1),
                        Bump::None => unreachable!("a plan needs a bump"),
                    };
                    prop_assert_eq!((plan.version.major, plan.version.minor, plan.version.patch), expected);
                }
                Err(error) => {
                    prop_assert_eq!(error, DomainError::NoReleasableChanges);
                    prop_assert_eq!(strongest, Bump::None);
                }
            }
        }
    }
}
