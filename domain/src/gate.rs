//! Quality gates: kinds, structured evidence, thresholds and the verdict.
//!
//! The ledger does not take a CI system's word for a gate: it evaluates the evidence
//! against the policy's thresholds ([`evaluate`]). A reported status can only make a gate
//! stricter — a `passed` status with failing evidence is a failed gate.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ids::RequirementId;

/// What a gate checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum GateKind {
    /// Static analysis, linting, code review.
    CodeQuality,
    /// Automated tests and coverage.
    Testing,
    /// Performance regression checks.
    Performance,
    /// Vulnerability scanning.
    Security,
    /// Documentation completeness.
    Documentation,
    /// Infrastructure checks (plans, drift).
    Infrastructure,
    /// Any other gate a team defines, by name (`[a-z0-9_-]`, 1-64 characters).
    Custom(String),
}

impl GateKind {
    /// Parses a gate's wire name; unknown names are custom gates when well formed.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let text = text.trim();
        Ok(match text {
            "code_quality" => Self::CodeQuality,
            "testing" => Self::Testing,
            "performance" => Self::Performance,
            "security" => Self::Security,
            "documentation" => Self::Documentation,
            "infrastructure" => Self::Infrastructure,
            other => {
                let valid = !other.is_empty()
                    && other.len() <= 64
                    && other.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    });
                if !valid {
                    return Err(DomainError::invalid(
                        "gate",
                        format!(
                            "{other:?} is not a gate; use code_quality, testing, performance, security, documentation, infrastructure or a custom name of [a-z0-9_-]"
                        ),
                    ));
                }
                Self::Custom(other.to_owned())
            }
        })
    }

    /// The gate's wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::CodeQuality => "code_quality",
            Self::Testing => "testing",
            Self::Performance => "performance",
            Self::Security => "security",
            Self::Documentation => "documentation",
            Self::Infrastructure => "infrastructure",
            Self::Custom(name) => name,
        }
    }
}

impl TryFrom<String> for GateKind {
    type Error = DomainError;
    fn try_from(text: String) -> Result<Self, DomainError> {
        Self::parse(&text)
    }
}

impl From<GateKind> for String {
    fn from(kind: GateKind) -> String {
        kind.as_str().to_owned()
    }
}

impl fmt::Display for GateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Vulnerability counts by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vulnerabilities {
    /// Critical findings.
    #[serde(default)]
    pub critical: u32,
    /// High findings.
    #[serde(default)]
    pub high: u32,
    /// Medium findings.
    #[serde(default)]
    pub medium: u32,
    /// Low findings.
    #[serde(default)]
    pub low: u32,
}

/// The outcome of one test case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    /// Passed.
    Passed,
    /// Failed or errored.
    Failed,
    /// Skipped or disabled.
    Skipped,
}

/// One test case in the evidence; it may name the requirements it verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// The test's name (suite and case, as the report gives them).
    pub name: String,
    /// Its outcome.
    pub status: TestStatus,
    /// Requirements this test verifies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<RequirementId>,
}

/// Structured evidence for a gate; every measure is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Tests that passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_passed: Option<u32>,
    /// Tests that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_failed: Option<u32>,
    /// Line coverage, 0-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage_pct: Option<f64>,
    /// Vulnerability counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerabilities: Option<Vulnerabilities>,
    /// p95 latency regression against the baseline, in percent (negative = faster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_regression_pct: Option<f64>,
    /// Individual test cases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_cases: Vec<TestCase>,
    /// Where the full report lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Evidence {
    /// Checks value ranges: percentages finite and within 0-100 (regression may be
    /// negative), test names non-empty, the URL bounded.
    pub fn validate(&self) -> Result<(), DomainError> {
        if let Some(coverage) = self.coverage_pct {
            if !coverage.is_finite() || !(0.0..=100.0).contains(&coverage) {
                return Err(DomainError::invalid(
                    "coverage_pct",
                    "must be a number from 0 to 100",
                ));
            }
        }
        if let Some(regression) = self.p95_regression_pct {
            if !regression.is_finite() || !(-100.0..=100_000.0).contains(&regression) {
                return Err(DomainError::invalid(
                    "p95_regression_pct",
                    "must be a finite percentage of at least -100",
                ));
            }
        }
        if self.test_cases.iter().any(|t| t.name.trim().is_empty()) {
            return Err(DomainError::invalid(
                "test_cases",
                "every test case needs a name",
            ));
        }
        if self.url.as_ref().is_some_and(|u| u.len() > 2048) {
            return Err(DomainError::invalid(
                "url",
                "must be at most 2048 characters",
            ));
        }
        Ok(())
    }

    /// Whether any measure (not just a URL) is present.
    pub fn has_measures(&self) -> bool {
        self.tests_passed.is_some()
            || self.tests_failed.is_some()
            || self.coverage_pct.is_some()
            || self.vulnerabilities.is_some()
            || self.p95_regression_pct.is_some()
            || !self.test_cases.is_empty()
    }

    /// Failed tests: the count given, or else the failed test cases.
    pub fn failed_tests(&self) -> Option<u32> {
        self.tests_failed.or_else(|| {
            (!self.test_cases.is_empty()).then(|| {
                let failed = self
                    .test_cases
                    .iter()
                    .filter(|t| t.status == TestStatus::Failed)
                    .count();
                u32::try_from(failed).unwrap_or(u32::MAX)
            })
        })
    }
}

/// The policy's limits for gate evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateThresholds {
    /// Coverage must be at least this (percent).
    pub min_coverage_pct: f64,
    /// p95 regression must be strictly below this (percent).
    pub max_p95_regression_pct: f64,
    /// Critical vulnerabilities allowed.
    pub max_critical_vulnerabilities: u32,
    /// High vulnerabilities allowed.
    pub max_high_vulnerabilities: u32,
    /// Failed tests allowed.
    pub max_failed_tests: u32,
}

impl Default for GateThresholds {
    /// The product brief's defaults: coverage ≥ 90 %, regression < 10 %, no high or
    /// critical vulnerabilities, every test passing.
    fn default() -> Self {
        Self {
            min_coverage_pct: 90.0,
            max_p95_regression_pct: 10.0,
            max_critical_vulnerabilities: 0,
            max_high_vulnerabilities: 0,
            max_failed_tests: 0,
        }
    }
}

/// A gate passed or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    /// Passed.
    Passed,
    /// Failed.
    Failed,
}

/// One reason a gate failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum GateFailure {
    /// More failed tests than allowed.
    TestsFailed {
        /// Failed tests.
        failed: u32,
        /// Allowed.
        allowed: u32,
    },
    /// Coverage below the minimum.
    CoverageBelowMinimum {
        /// Measured coverage.
        actual: f64,
        /// Minimum.
        minimum: f64,
    },
    /// p95 regressed by the limit or more.
    PerformanceRegressed {
        /// Measured regression.
        actual: f64,
        /// The limit (must stay strictly below).
        limit: f64,
    },
    /// Too many critical or high vulnerabilities.
    VulnerabilitiesFound {
        /// Critical findings.
        critical: u32,
        /// High findings.
        high: u32,
    },
    /// The CI system itself reported the gate as failed.
    ReportedFailed,
}

/// What the ledger concluded about a gate result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    /// Passed or failed.
    pub status: GateStatus,
    /// Every reason it failed (empty when passed).
    pub failures: Vec<GateFailure>,
}

/// Evaluates a gate result: every present measure against its threshold, plus the status
/// the CI system reported (which can fail a gate but never pass failing evidence).
pub fn evaluate(
    evidence: &Evidence,
    reported: Option<GateStatus>,
    thresholds: &GateThresholds,
) -> Result<GateVerdict, DomainError> {
    evidence.validate()?;
    if !evidence.has_measures() && reported.is_none() {
        return Err(DomainError::EmptyGateResult);
    }
    let mut failures = Vec::new();
    if let Some(failed) = evidence.failed_tests() {
        if failed > thresholds.max_failed_tests {
            failures.push(GateFailure::TestsFailed {
                failed,
                allowed: thresholds.max_failed_tests,
            });
        }
    }
    if let Some(actual) = evidence.coverage_pct {
        if actual < thresholds.min_coverage_pct {
            failures.push(GateFailure::CoverageBelowMinimum {
                actual,
                minimum: thresholds.min_coverage_pct,
            });
        }
    }
    if let Some(actual) = evidence.p95_regression_pct {
        if actual >= thresholds.max_p95_regression_pct {
            failures.push(GateFailure::PerformanceRegressed {
                actual,
                limit: thresholds.max_p95_regression_pct,
            });
        }
    }
    if let Some(v) = evidence.vulnerabilities {
        if v.critical > thresholds.max_critical_vulnerabilities
            || v.high > thresholds.max_high_vulnerabilities
        {
            failures.push(GateFailure::VulnerabilitiesFound {
                critical: v.critical,
                high: v.high,
            });
        }
    }
    if reported == Some(GateStatus::Failed) {
        failures.push(GateFailure::ReportedFailed);
    }
    let status = if failures.is_empty() {
        GateStatus::Passed
    } else {
        GateStatus::Failed
    };
    Ok(GateVerdict { status, failures })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn verdict(evidence: Evidence, reported: Option<GateStatus>) -> GateVerdict {
        evaluate(&evidence, reported, &GateThresholds::default()).expect("valid evidence")
    }

    #[test]
    fn defaults_pass_exactly_at_the_coverage_boundary_and_fail_below_it() {
        let at = verdict(
            Evidence {
                coverage_pct: Some(90.0),
                ..Evidence::default()
            },
            None,
        );
        assert_eq!(at.status, GateStatus::Passed);
        let below = verdict(
            Evidence {
                coverage_pct: Some(89.99),
                ..Evidence::default()
            },
            None,
        );
        assert!(matches!(
            below.failures[..],
            [GateFailure::CoverageBelowMinimum { .. }]
        ));
    }

    #[test]
    fn a_regression_of_exactly_the_limit_fails() {
        let v = verdict(
            Evidence {
                p95_regression_pct: Some(10.0),
                ..Evidence::default()
            },
            None,
        );
        assert!(matches!(
            v.failures[..],
            [GateFailure::PerformanceRegressed { .. }]
        ));
        let ok = verdict(
            Evidence {
                p95_regression_pct: Some(9.9),
                ..Evidence::default()
            },
            None,
        );
        assert_eq!(ok.status, GateStatus::Passed);
    }

    #[test]
    fn high_or_critical_vulnerabilities_fail_and_medium_ones_do_not() {
        let high = verdict(
            Evidence {
                vulnerabilities: Some(Vulnerabilities {
                    high: 1,
                    ..Default::default()
                }),
                ..Evidence::default()
            },
            None,
        );
        assert!(matches!(
            high.failures[..],
            [GateFailure::VulnerabilitiesFound { high: 1, .. }]
        ));
        let medium = verdict(
            Evidence {
                vulnerabilities: Some(Vulnerabilities {
                    medium: 7,
                    low: 3,
                    ..Default::default()
                }),
                ..Evidence::default()
            },
            None,
        );
        assert_eq!(medium.status, GateStatus::Passed);
    }

    #[test]
    fn failed_test_cases_count_when_no_total_is_given() {
        let v = verdict(
            Evidence {
                test_cases: vec![
                    TestCase {
                        name: "a".into(),
                        status: TestStatus::Passed,
                        requirements: vec![],
                    },
                    TestCase {
                        name: "b".into(),
                        status: TestStatus::Failed,
                        requirements: vec![],
                    },
                ],
                ..Evidence::default()
            },
            None,
        );
        assert!(matches!(
            v.failures[..],
            [GateFailure::TestsFailed { failed: 1, .. }]
        ));
    }

    #[test]
    fn a_reported_pass_cannot_override_failing_evidence() {
        let v = verdict(
            Evidence {
                tests_failed: Some(2),
                ..Evidence::default()
            },
            Some(GateStatus::Passed),
        );
        assert_eq!(v.status, GateStatus::Failed);
    }

    #[test]
    fn a_reported_failure_fails_even_good_evidence() {
        let v = verdict(
            Evidence {
                coverage_pct: Some(99.0),
                ..Evidence::default()
            },
            Some(GateStatus::Failed),
        );
        assert!(matches!(v.failures[..], [GateFailure::ReportedFailed]));
    }

    #[test]
    fn a_status_alone_is_accepted_and_nothing_at_all_is_refused() {
        assert_eq!(
            verdict(Evidence::default(), Some(GateStatus::Passed)).status,
            GateStatus::Passed
        );
        let only_url = Evidence {
            url: Some("https://ci.example/run/1".into()),
            ..Evidence::default()
        };
        assert_eq!(
            evaluate(&only_url, None, &GateThresholds::default()),
            Err(DomainError::EmptyGateResult)
        );
    }

    #[test]
    fn out_of_range_percentages_are_invalid() {
        for bad in [f64::NAN, -1.0, 100.5, f64::INFINITY] {
            let evidence = Evidence {
                coverage_pct: Some(bad),
                ..Evidence::default()
            };
            assert!(matches!(
                evaluate(&evidence, None, &GateThresholds::default()),
                Err(DomainError::InvalidValue {
                    field: "coverage_pct",
                    ..
                })
            ));
        }
    }

    #[test]
    fn gate_kinds_round_trip_and_custom_names_are_checked() {
        for name in ["testing", "security", "code_quality", "license-scan"] {
            let kind = GateKind::parse(name).expect("valid");
            assert_eq!(kind.as_str(), name);
        }
        assert!(GateKind::parse("Bad Name").is_err());
        assert!(GateKind::parse("").is_err());
    }

    proptest! {
        #[test]
        fn evidence_within_every_threshold_always_passes(
            coverage in 90.0f64..=100.0,
            regression in -100.0f64..9.999,
            medium in 0u32..100,
            passed in 0u32..10_000,
        ) {
            let evidence = Evidence {
                tests_passed: Some(passed),
                tests_failed: Some(0),
                coverage_pct: Some(coverage),
                vulnerabilities: Some(Vulnerabilities { medium, ..Default::default() }),
                p95_regression_pct: Some(regression),
                ..Evidence::default()
            };
            prop_assert_eq!(verdict(evidence, None).status, GateStatus::Passed);
        }

        #[test]
        fn any_single_breach_fails(
            which in 0usize..4,
            amount in 1u32..1000,
        ) {
            let mut evidence = Evidence {
                tests_failed: Some(0),
                coverage_pct: Some(95.0),
                vulnerabilities: Some(Vulnerabilities::default()),
                p95_regression_pct: Some(0.0),
                ..Evidence::default()
            };
            match which {
                0 => evidence.tests_failed = Some(amount),
                1 => evidence.coverage_pct = Some(90.0 - f64::from(amount) / 1000.0 * 90.0),
                2 => evidence.p95_regression_pct = Some(10.0 + f64::from(amount)),
                _ => evidence.vulnerabilities = Some(Vulnerabilities { critical: amount, ..Default::default() }),
            }
            prop_assert_eq!(verdict(evidence, None).status, GateStatus::Failed);
        }
    }
}
