//! The five DORA metrics, computed from DORA facts by pure functions (`docs/metrics.md`
//! states every definition; this module is the one place they are implemented).
//!
//! All times are UTC. A window is half-open, `[from, to)`. Medians of an even count are the
//! mean of the two middle values; p90 is the nearest-rank value (the ⌈0.9·n⌉-th smallest).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// Version of the definitions, reported with every answer.
pub const DEFINITIONS_VERSION: &str = "2026-11";

/// An incident linked to a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentLink {
    /// The incident.
    pub incident_id: Uuid,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it was resolved, if it was.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Whether the link was declared (`deployment_id` on the incident) rather than
    /// attributed by the rule.
    pub declared: bool,
}

/// A production deployment and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentFact {
    /// The deployment.
    pub deployment_id: Uuid,
    /// Its service.
    pub service: String,
    /// Its environment.
    pub environment: String,
    /// The version deployed.
    pub version: String,
    /// Whether it was planned (not a hotfix, remediates no incident).
    pub planned: bool,
    /// `succeeded`, `failed`, `rolled_back` or `in_progress`.
    pub status: String,
    /// When it completed successfully.
    pub completed_at: Option<DateTime<Utc>>,
    /// When it finished (completed, failed, or rolled back while in progress).
    pub finished_at: Option<DateTime<Utc>>,
    /// When it failed or a rollback of it began.
    pub failed_at: Option<DateTime<Utc>>,
    /// When a rollback of it completed.
    pub restored_at: Option<DateTime<Utc>>,
    /// The next successful deployment of the same service and environment after it.
    pub next_success_at: Option<DateTime<Utc>>,
    /// Incidents it caused.
    pub incidents: Vec<IncidentLink>,
}

impl DeploymentFact {
    fn finished_in(&self, window: &Window) -> bool {
        self.status != "in_progress" && self.finished_at.is_some_and(|t| window.contains(t))
    }

    /// Whether it counts as a failed change: it failed, was rolled back, or caused an
    /// incident.
    pub fn failed_change(&self) -> bool {
        matches!(self.status.as_str(), "failed" | "rolled_back")
            || self.failed_at.is_some()
            || !self.incidents.is_empty()
    }

    /// When the failure began: the earliest of the deployment failing (or its rollback
    /// starting) and the opening of an incident it caused.
    pub fn failure_began(&self) -> Option<DateTime<Utc>> {
        self.failed_at
            .into_iter()
            .chain(self.incidents.iter().map(|i| i.opened_at))
            .min()
    }

    /// When service was restored: the earliest, at or after the failure began, of the
    /// rollback completing, the next successful deployment of the service in the same
    /// environment, and the resolution of an incident it caused.
    pub fn restored(&self) -> Option<DateTime<Utc>> {
        let began = self.failure_began()?;
        self.restored_at
            .into_iter()
            .chain(self.next_success_at)
            .chain(self.incidents.iter().filter_map(|i| i.resolved_at))
            .filter(|t| *t >= began)
            .min()
    }
}

/// A commit and the first successful production deployment that contained it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitFact {
    /// The commit.
    pub sha: String,
    /// Its service.
    pub service: String,
    /// When it was committed.
    pub committed_at: DateTime<Utc>,
    /// The first successful production deployment containing it.
    pub deployment_id: Uuid,
    /// When that deployment completed.
    pub deployed_at: DateTime<Utc>,
}

impl CommitFact {
    /// Minutes from commit to production (never negative).
    pub fn lead_minutes(&self) -> f64 {
        ((self.deployed_at - self.committed_at).num_seconds().max(0)) as f64 / 60.0
    }
}

/// A half-open interval of time `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Start (included).
    pub from: DateTime<Utc>,
    /// End (excluded).
    pub to: DateTime<Utc>,
}

impl Window {
    /// Whether `t` falls in the window.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }

    fn days(&self) -> f64 {
        (self.to - self.from).num_seconds() as f64 / 86_400.0
    }
}

/// Buckets for the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// UTC days.
    Day,
    /// ISO weeks, Monday 00:00 UTC to Monday.
    Week,
    /// Calendar months.
    Month,
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

impl Bucket {
    /// The start of the bucket holding `t`.
    pub fn start_of(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let date = t.date_naive();
        match self {
            Bucket::Day => midnight(date),
            Bucket::Week => {
                midnight(date - Duration::days(i64::from(date.weekday().num_days_from_monday())))
            }
            Bucket::Month => midnight(date.with_day(1).unwrap_or(date)),
        }
    }

    /// The start of the bucket after the one starting at `start`.
    pub fn next(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Bucket::Day => start + Duration::days(1),
            Bucket::Week => start + Duration::days(7),
            Bucket::Month => {
                let date = start.date_naive();
                let (year, month) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                midnight(NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(date))
            }
        }
    }

    /// The buckets covering `window`, each clamped to it.
    pub fn split(self, window: &Window) -> Vec<Window> {
        let mut out = Vec::new();
        let mut start = self.start_of(window.from);
        while start < window.to {
            let end = self.next(start);
            out.push(Window {
                from: start.max(window.from),
                to: end.min(window.to),
            });
            start = end;
        }
        out
    }
}

/// The median (mean of the two middle values for an even count).
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    Some(if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    })
}

/// The nearest-rank percentile `p` (0–100): the ⌈p/100·n⌉-th smallest value.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(n) - 1).copied()
}

/// A DORA 2023 performance tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Elite.
    Elite,
    /// High.
    High,
    /// Medium.
    Medium,
    /// Low.
    Low,
}

const HOUR: f64 = 60.0;
const DAY: f64 = 24.0 * HOUR;
const WEEK: f64 = 7.0 * DAY;
const MONTH: f64 = 30.0 * DAY;
const SIX_MONTHS: f64 = 182.0 * DAY;

/// Deployment frequency tier (2023): elite when the median over weeks of deploy-days per
/// week is at least 5, high when at least 1, medium when the median over months of
/// deploy-days per month is at least 1, low otherwise.
pub fn frequency_tier(median_days_per_week: f64, median_days_per_month: f64) -> Tier {
    if median_days_per_week >= 5.0 {
        Tier::Elite
    } else if median_days_per_week >= 1.0 {
        Tier::High
    } else if median_days_per_month >= 1.0 {
        Tier::Medium
    } else {
        Tier::Low
    }
}

/// Lead time tier (2023) from the median in minutes: elite under a day, high under a
/// week, medium under 30 days, low otherwise.
pub fn lead_time_tier(median_minutes: f64) -> Tier {
    if median_minutes < DAY {
        Tier::Elite
    } else if median_minutes < WEEK {
        Tier::High
    } else if median_minutes < MONTH {
        Tier::Medium
    } else {
        Tier::Low
    }
}

/// Change fail rate tier (2023): elite up to 5 %, high up to 10 %, medium up to 15 %.
pub fn change_fail_tier(rate: f64) -> Tier {
    if rate <= 0.05 {
        Tier::Elite
    } else if rate <= 0.10 {
        Tier::High
    } else if rate <= 0.15 {
        Tier::Medium
    } else {
        Tier::Low
    }
}

/// Failed deployment recovery time tier (2023) from the median in minutes: elite under
/// an hour, high under a day, medium under a week.
pub fn recovery_tier(median_minutes: f64) -> Tier {
    if median_minutes < HOUR {
        Tier::Elite
    } else if median_minutes < DAY {
        Tier::High
    } else if median_minutes < WEEK {
        Tier::Medium
    } else {
        Tier::Low
    }
}

/// The Quick Check answer (1–6) for a duration in minutes, on its lead-time and
/// recovery scale: under an hour 6, under a day 5, under a week 4, under a month 3,
/// under six months 2, else 1.
pub fn duration_answer(minutes: f64) -> u8 {
    match minutes {
        m if m < HOUR => 6,
        m if m < DAY => 5,
        m if m < WEEK => 4,
        m if m < MONTH => 3,
        m if m < SIX_MONTHS => 2,
        _ => 1,
    }
}

/// The Quick Check answer (1–6) for a deployment rate per day: on demand (several a day)
/// 6, at least daily 5, at least weekly 4, at least monthly 3, at least every six months
/// 2, else 1.
pub fn frequency_answer(per_day: f64) -> u8 {
    match per_day {
        r if r > 1.0 => 6,
        r if r >= 1.0 => 5,
        r if r >= 1.0 / 7.0 => 4,
        r if r >= 1.0 / 30.0 => 3,
        r if r >= 1.0 / 182.0 => 2,
        _ => 1,
    }
}

/// The Quick Check score (0–10) of a 1–6 answer: `(answer − 1) / 5 × 10`.
pub fn answer_score(answer: u8) -> f64 {
    (f64::from(answer.clamp(1, 6)) - 1.0) / 5.0 * 10.0
}

/// The Quick Check score (0–10) of a percentage (0 % scores 10, 100 % scores 0).
pub fn percentage_score(pct: f64) -> f64 {
    10.0 - pct.clamp(0.0, 100.0) / 10.0
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// One metric's answer: its value, tier and Quick Check score — or why there is none.
fn metric(value: Value, tier: Option<Tier>, quick_check: Value, details: Value) -> Value {
    json!({"value": value, "tier": tier, "quick_check": quick_check, "reason": Value::Null, "details": details})
}

fn no_data(reason: &str) -> Value {
    json!({"value": Value::Null, "tier": Value::Null, "quick_check": Value::Null, "reason": reason})
}

/// The facts behind a report.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Production deployments that completed or finished in the window (and the ones
    /// needed around it).
    pub deployments: Vec<DeploymentFact>,
    /// Commits whose first production deployment completed in the window.
    pub commits: Vec<CommitFact>,
}

/// The five metrics over `window`, with tiers and Quick Check scores. `details` adds
/// the lists of deployments, commits and incidents behind each number.
pub fn report(facts: &Facts, window: &Window, details: bool) -> Value {
    let list = |v: Value| if details { v } else { Value::Null };

    // Deployment frequency.
    let successes: Vec<&DeploymentFact> = facts
        .deployments
        .iter()
        .filter(|d| d.completed_at.is_some_and(|t| window.contains(t)))
        .collect();
    let deploy_days = |w: &Window| -> usize {
        successes
            .iter()
            .filter_map(|d| d.completed_at)
            .filter(|t| w.contains(*t))
            .map(|t| t.date_naive())
            .collect::<std::collections::BTreeSet<NaiveDate>>()
            .len()
    };
    let per_bucket = |bucket: Bucket| -> Vec<f64> {
        let mut counts: Vec<f64> = bucket
            .split(window)
            .iter()
            .map(|w| deploy_days(w) as f64)
            .collect();
        counts.sort_by(f64::total_cmp);
        counts
    };
    let finished: Vec<&DeploymentFact> = facts
        .deployments
        .iter()
        .filter(|d| d.finished_in(window))
        .collect();
    let frequency = if successes.is_empty() && finished.is_empty() {
        no_data("no production deployment completed or finished in the window")
    } else {
        let per_day = successes.len() as f64 / window.days().max(1e-9);
        let weekly = median(&per_bucket(Bucket::Week)).unwrap_or(0.0);
        let monthly = median(&per_bucket(Bucket::Month)).unwrap_or(0.0);
        let answer = frequency_answer(per_day);
        metric(
            json!({"deployments": successes.len(), "deploy_days": deploy_days(window), "per_day": round(per_day, 3),
                   "per_week": round(per_day * 7.0, 3), "median_deploy_days_per_week": weekly,
                   "median_deploy_days_per_month": monthly}),
            Some(frequency_tier(weekly, monthly)),
            json!({"answer": answer, "score": round(answer_score(answer), 1)}),
            list(
                json!({"deployments": successes.iter().map(|d| d.deployment_id).collect::<Vec<_>>()}),
            ),
        )
    };

    // Change lead time.
    let mut leads: Vec<f64> = facts
        .commits
        .iter()
        .filter(|c| window.contains(c.deployed_at))
        .map(CommitFact::lead_minutes)
        .collect();
    leads.sort_by(f64::total_cmp);
    let lead_time = match (median(&leads), percentile(&leads, 90.0)) {
        (Some(m), Some(p90)) => {
            let answer = duration_answer(m);
            metric(
                json!({"commits": leads.len(), "median_minutes": round(m, 1), "p90_minutes": round(p90, 1)}),
                Some(lead_time_tier(m)),
                json!({"answer": answer, "score": round(answer_score(answer), 1)}),
                list(
                    json!({"commits": facts.commits.iter().filter(|c| window.contains(c.deployed_at))
                    .map(|c| json!({"sha": c.sha, "service": c.service, "committed_at": c.committed_at,
                                    "deployment_id": c.deployment_id, "deployed_at": c.deployed_at,
                                    "lead_minutes": round(c.lead_minutes(), 1)}))
                    .collect::<Vec<_>>()}),
                ),
            )
        }
        _ => no_data("no commit reached production for the first time in the window"),
    };

    // Change fail rate and recovery.
    let failed: Vec<&DeploymentFact> = finished
        .iter()
        .copied()
        .filter(|d| d.failed_change())
        .collect();
    let change_fail = if finished.is_empty() {
        no_data("no production deployment finished in the window")
    } else {
        let rate = failed.len() as f64 / finished.len() as f64;
        metric(
            json!({"failed": failed.len(), "finished": finished.len(), "rate": round(rate, 4)}),
            Some(change_fail_tier(rate)),
            json!({"percentage": round(rate * 100.0, 1), "score": round(percentage_score(rate * 100.0), 1)}),
            list(json!({"failed_deployments": failed.iter().map(|d| json!({
                "deployment_id": d.deployment_id, "service": d.service, "status": d.status,
                "incidents": d.incidents.iter().map(|i| json!({"incident_id": i.incident_id, "declared": i.declared})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>()})),
        )
    };
    let mut recoveries: Vec<f64> = Vec::new();
    let mut unrecovered = Vec::new();
    let mut recovery_list = Vec::new();
    for d in &failed {
        match (d.failure_began(), d.restored()) {
            (Some(began), Some(restored)) => {
                let minutes = (restored - began).num_seconds() as f64 / 60.0;
                recoveries.push(minutes);
                recovery_list.push(json!({"deployment_id": d.deployment_id, "failed_at": began, "restored_at": restored, "minutes": round(minutes, 1)}));
            }
            _ => unrecovered.push(d.deployment_id),
        }
    }
    recoveries.sort_by(f64::total_cmp);
    let recovery = match median(&recoveries) {
        Some(m) => {
            let answer = duration_answer(m);
            metric(
                json!({"recovered": recoveries.len(), "unrecovered": unrecovered.len(), "median_minutes": round(m, 1)}),
                Some(recovery_tier(m)),
                json!({"answer": answer, "score": round(answer_score(answer), 1)}),
                list(json!({"recoveries": recovery_list, "unrecovered": unrecovered})),
            )
        }
        None if failed.is_empty() => {
            no_data("no failed production deployment finished in the window")
        }
        None => no_data("no failed production deployment in the window has been restored yet"),
    };

    // Rework rate.
    let unplanned: Vec<&DeploymentFact> = finished.iter().copied().filter(|d| !d.planned).collect();
    let rework = if finished.is_empty() {
        no_data("no production deployment finished in the window")
    } else {
        let rate = unplanned.len() as f64 / finished.len() as f64;
        let mut value = metric(
            json!({"unplanned": unplanned.len(), "finished": finished.len(), "rate": round(rate, 4)}),
            None,
            json!({"percentage": round(rate * 100.0, 1), "score": round(percentage_score(rate * 100.0), 1)}),
            list(
                json!({"unplanned_deployments": unplanned.iter().map(|d| d.deployment_id).collect::<Vec<_>>()}),
            ),
        );
        value["tier_note"] = json!("DORA 2023 defines no tiers for the deployment rework rate");
        value
    };

    let scores: Vec<f64> = [&frequency, &lead_time, &change_fail, &recovery, &rework]
        .iter()
        .filter_map(|m| m["quick_check"]["score"].as_f64())
        .collect();
    let overall = if scores.is_empty() {
        Value::Null
    } else {
        json!(round(scores.iter().sum::<f64>() / scores.len() as f64, 1))
    };
    json!({
        "deployment_frequency": frequency,
        "change_lead_time": lead_time,
        "change_fail_rate": change_fail,
        "failed_deployment_recovery_time": recovery,
        "deployment_rework_rate": rework,
        "quick_check_overall": overall,
    })
}

/// The series: per bucket, the headline numbers of [`report`] over that bucket.
pub fn series(facts: &Facts, window: &Window, bucket: Bucket) -> Vec<Value> {
    bucket
        .split(window)
        .iter()
        .map(|w| {
            let r = report(facts, w, false);
            json!({
                "from": w.from, "to": w.to,
                "deployments": r["deployment_frequency"]["value"]["deployments"].as_u64().unwrap_or(0),
                "deploy_days": r["deployment_frequency"]["value"]["deploy_days"].as_u64().unwrap_or(0),
                "lead_time_median_minutes": r["change_lead_time"]["value"]["median_minutes"],
                "change_fail_rate": r["change_fail_rate"]["value"]["rate"],
                "recovery_median_minutes": r["failed_deployment_recovery_time"]["value"]["median_minutes"],
                "rework_rate": r["deployment_rework_rate"]["value"]["rate"],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    /// Monday 2 March 2026 to Monday 16 March 2026: two ISO weeks, 14 days.
    fn two_weeks() -> Window {
        Window {
            from: t("2026-03-02T00:00:00Z"),
            to: t("2026-03-16T00:00:00Z"),
        }
    }

    fn succeeded(n: u128, completed: &str) -> DeploymentFact {
        DeploymentFact {
            deployment_id: Uuid::from_u128(n),
            service: "checkout".into(),
            environment: "production".into(),
            version: format!("1.{n}.0"),
            planned: true,
            status: "succeeded".into(),
            completed_at: Some(t(completed)),
            finished_at: Some(t(completed)),
            failed_at: None,
            restored_at: None,
            next_success_at: None,
            incidents: Vec::new(),
        }
    }

    fn commit(sha: &str, committed: &str, deployment: u128, deployed: &str) -> CommitFact {
        CommitFact {
            sha: sha.into(),
            service: "checkout".into(),
            committed_at: t(committed),
            deployment_id: Uuid::from_u128(deployment),
            deployed_at: t(deployed),
        }
    }

    #[test]
    fn with_no_data_every_metric_says_why_instead_of_a_number() {
        let r = report(&Facts::default(), &two_weeks(), false);
        for name in [
            "deployment_frequency",
            "change_lead_time",
            "change_fail_rate",
            "failed_deployment_recovery_time",
            "deployment_rework_rate",
        ] {
            assert!(r[name]["value"].is_null(), "{name}: {}", r[name]);
            assert!(r[name]["tier"].is_null(), "{name}");
            assert!(
                r[name]["reason"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}"
            );
        }
        assert!(r["quick_check_overall"].is_null());
    }

    #[test]
    fn one_deployment_with_one_commit() {
        let facts = Facts {
            deployments: vec![succeeded(1, "2026-03-03T10:00:00Z")],
            commits: vec![commit(
                "a1",
                "2026-03-03T08:00:00Z",
                1,
                "2026-03-03T10:00:00Z",
            )],
        };
        let r = report(&facts, &two_weeks(), true);
        let df = &r["deployment_frequency"];
        assert_eq!(df["value"]["deployments"], 1);
        assert_eq!(df["value"]["deploy_days"], 1);
        // 1 deployment in 14 days: 0.071 a day, weekly at least? no; monthly yes: answer 3.
        assert_eq!(df["value"]["per_day"], 0.071);
        // Weeks hold 1 and 0 deploy-days (median 0.5); the month holds 1: medium.
        assert_eq!(df["value"]["median_deploy_days_per_week"], 0.5);
        assert_eq!(df["tier"], "medium");
        assert_eq!(df["quick_check"]["answer"], 3);
        assert_eq!(df["quick_check"]["score"], 4.0);
        let lt = &r["change_lead_time"];
        assert_eq!(lt["value"]["median_minutes"], 120.0);
        assert_eq!(lt["value"]["p90_minutes"], 120.0);
        assert_eq!(lt["tier"], "elite");
        assert_eq!(lt["quick_check"]["answer"], 5);
        assert_eq!(lt["details"]["commits"][0]["sha"], "a1");
        let cfr = &r["change_fail_rate"];
        assert_eq!(cfr["value"]["rate"], 0.0);
        assert_eq!(cfr["tier"], "elite");
        assert_eq!(cfr["quick_check"]["score"], 10.0);
        assert!(r["failed_deployment_recovery_time"]["value"].is_null());
        assert_eq!(r["deployment_rework_rate"]["value"]["rate"], 0.0);
        // (4 + 8 + 10 + 10) / 4: recovery has no score without a failure.
        assert_eq!(r["quick_check_overall"], 8.0);
    }

    #[test]
    fn a_rollback_counts_as_a_failed_change_and_its_completion_restores_service() {
        let mut rolled_back = succeeded(2, "2026-03-04T10:30:00Z");
        rolled_back.status = "rolled_back".into();
        rolled_back.completed_at = None;
        rolled_back.failed_at = Some(t("2026-03-04T10:10:00Z"));
        rolled_back.restored_at = Some(t("2026-03-04T10:30:00Z"));
        let facts = Facts {
            deployments: vec![succeeded(1, "2026-03-03T10:00:00Z"), rolled_back],
            commits: vec![],
        };
        let r = report(&facts, &two_weeks(), true);
        assert_eq!(r["change_fail_rate"]["value"]["failed"], 1);
        assert_eq!(r["change_fail_rate"]["value"]["finished"], 2);
        assert_eq!(r["change_fail_rate"]["value"]["rate"], 0.5);
        assert_eq!(r["change_fail_rate"]["tier"], "low");
        assert_eq!(r["change_fail_rate"]["quick_check"]["score"], 5.0);
        let recovery = &r["failed_deployment_recovery_time"];
        assert_eq!(recovery["value"]["median_minutes"], 20.0);
        assert_eq!(recovery["tier"], "elite");
        assert_eq!(recovery["quick_check"]["answer"], 6);
        // The rolled-back deployment never completed: not a successful deployment.
        assert_eq!(r["deployment_frequency"]["value"]["deployments"], 1);
    }

    #[test]
    fn an_incident_makes_a_failure_restored_by_the_earliest_remedy() {
        let mut caused = succeeded(1, "2026-03-05T10:00:00Z");
        caused.incidents.push(IncidentLink {
            incident_id: Uuid::from_u128(9),
            opened_at: t("2026-03-05T12:00:00Z"),
            resolved_at: Some(t("2026-03-05T14:00:00Z")),
            declared: false,
        });
        // The next successful deployment (13:00) restores service before the incident
        // is resolved (14:00).
        caused.next_success_at = Some(t("2026-03-05T13:00:00Z"));
        let facts = Facts {
            deployments: vec![caused, succeeded(2, "2026-03-05T13:00:00Z")],
            commits: vec![],
        };
        let r = report(&facts, &two_weeks(), true);
        assert_eq!(r["change_fail_rate"]["value"]["rate"], 0.5);
        let recovery = &r["failed_deployment_recovery_time"];
        assert_eq!(recovery["value"]["median_minutes"], 60.0);
        // Exactly one hour is not under an hour: high.
        assert_eq!(recovery["tier"], "high");
        assert_eq!(
            r["change_fail_rate"]["details"]["failed_deployments"][0]["incidents"][0]["declared"],
            false
        );
    }

    #[test]
    fn a_failure_not_yet_restored_is_listed_but_has_no_recovery_time() {
        let mut failed = succeeded(1, "2026-03-05T10:00:00Z");
        failed.status = "failed".into();
        failed.completed_at = None;
        failed.failed_at = failed.finished_at;
        let facts = Facts {
            deployments: vec![failed],
            commits: vec![],
        };
        let r = report(&facts, &two_weeks(), true);
        assert_eq!(r["change_fail_rate"]["value"]["rate"], 1.0);
        let recovery = &r["failed_deployment_recovery_time"];
        assert!(recovery["value"].is_null());
        assert!(recovery["reason"]
            .as_str()
            .is_some_and(|s| s.contains("restored")));
    }

    #[test]
    fn a_hotfix_counts_as_rework() {
        let mut hotfix = succeeded(2, "2026-03-06T09:00:00Z");
        hotfix.planned = false;
        let facts = Facts {
            deployments: vec![succeeded(1, "2026-03-05T10:00:00Z"), hotfix],
            commits: vec![],
        };
        let r = report(&facts, &two_weeks(), true);
        let rework = &r["deployment_rework_rate"];
        assert_eq!(rework["value"]["unplanned"], 1);
        assert_eq!(rework["value"]["rate"], 0.5);
        assert!(rework["tier"].is_null());
        assert_eq!(rework["quick_check"]["score"], 5.0);
        assert_eq!(
            rework["details"]["unplanned_deployments"][0],
            json!(Uuid::from_u128(2))
        );
    }

    #[test]
    fn lead_time_median_and_p90_follow_their_definitions() {
        // Ten commits with lead times 10, 20, …, 100 minutes.
        let deployed = "2026-03-03T12:00:00Z";
        let commits: Vec<CommitFact> = (1..=10)
            .map(|i| CommitFact {
                sha: format!("c{i}"),
                service: "checkout".into(),
                committed_at: t(deployed) - Duration::minutes(10 * i),
                deployment_id: Uuid::from_u128(1),
                deployed_at: t(deployed),
            })
            .collect();
        let facts = Facts {
            deployments: vec![succeeded(1, deployed)],
            commits,
        };
        let r = report(&facts, &two_weeks(), false);
        assert_eq!(r["change_lead_time"]["value"]["median_minutes"], 55.0);
        assert_eq!(r["change_lead_time"]["value"]["p90_minutes"], 90.0);
        assert_eq!(r["change_lead_time"]["quick_check"]["answer"], 6);
    }

    #[test]
    fn tiers_at_their_exact_thresholds() {
        assert_eq!(change_fail_tier(0.05), Tier::Elite);
        assert_eq!(change_fail_tier(0.050_001), Tier::High);
        assert_eq!(change_fail_tier(0.10), Tier::High);
        assert_eq!(change_fail_tier(0.15), Tier::Medium);
        assert_eq!(change_fail_tier(0.150_001), Tier::Low);
        assert_eq!(lead_time_tier(1439.99), Tier::Elite);
        assert_eq!(lead_time_tier(1440.0), Tier::High);
        assert_eq!(lead_time_tier(7.0 * 1440.0), Tier::Medium);
        assert_eq!(lead_time_tier(30.0 * 1440.0), Tier::Low);
        assert_eq!(recovery_tier(59.99), Tier::Elite);
        assert_eq!(recovery_tier(60.0), Tier::High);
        assert_eq!(recovery_tier(1440.0), Tier::Medium);
        assert_eq!(recovery_tier(7.0 * 1440.0), Tier::Low);
        assert_eq!(frequency_tier(5.0, 20.0), Tier::Elite);
        assert_eq!(frequency_tier(4.5, 20.0), Tier::High);
        assert_eq!(frequency_tier(1.0, 4.0), Tier::High);
        assert_eq!(frequency_tier(0.5, 1.0), Tier::Medium);
        assert_eq!(frequency_tier(0.0, 0.5), Tier::Low);
    }

    #[test]
    fn quick_check_scores_for_known_answers() {
        assert_eq!(answer_score(6), 10.0);
        assert_eq!(answer_score(4), 6.0);
        assert_eq!(answer_score(1), 0.0);
        assert_eq!(percentage_score(0.0), 10.0);
        assert_eq!(percentage_score(15.0), 8.5);
        assert_eq!(percentage_score(100.0), 0.0);
        assert_eq!(duration_answer(59.0), 6);
        assert_eq!(duration_answer(60.0), 5);
        assert_eq!(duration_answer(1440.0), 4);
        assert_eq!(duration_answer(200.0 * 1440.0), 1);
        assert_eq!(frequency_answer(2.0), 6);
        assert_eq!(frequency_answer(1.0), 5);
        assert_eq!(frequency_answer(1.0 / 7.0), 4);
        assert_eq!(frequency_answer(1.0 / 30.0), 3);
        assert_eq!(frequency_answer(0.0), 1);
    }

    #[test]
    fn weekly_buckets_split_at_monday_midnight_utc() {
        // Sunday 8 March to Tuesday 10 March: the week boundary is Monday 9 March 00:00.
        let window = Window {
            from: t("2026-03-08T00:00:00Z"),
            to: t("2026-03-10T00:00:00Z"),
        };
        assert_eq!(
            Bucket::Week.start_of(t("2026-03-08T23:59:59Z")),
            t("2026-03-02T00:00:00Z")
        );
        let facts = Facts {
            deployments: vec![
                succeeded(1, "2026-03-08T23:30:00Z"),
                succeeded(2, "2026-03-09T00:30:00Z"),
                succeeded(3, "2026-03-09T08:00:00Z"),
            ],
            commits: vec![],
        };
        let series = series(&facts, &window, Bucket::Week);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0]["from"], json!(t("2026-03-08T00:00:00Z")));
        assert_eq!(series[0]["to"], json!(t("2026-03-09T00:00:00Z")));
        assert_eq!(series[0]["deployments"], 1);
        assert_eq!(series[1]["deployments"], 2);
        assert_eq!(series[1]["deploy_days"], 1);
        let months = Bucket::Month.split(&Window {
            from: t("2026-01-15T00:00:00Z"),
            to: t("2026-03-02T00:00:00Z"),
        });
        assert_eq!(months.len(), 3);
        assert_eq!(months[1].from, t("2026-02-01T00:00:00Z"));
        assert_eq!(months[1].to, t("2026-03-01T00:00:00Z"));
    }
}
