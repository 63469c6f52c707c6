//! Builders shared by the domain's tests.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use uuid::Uuid;

use crate::ids::{
    CommitSha, DeploymentId, EnvironmentName, IncidentId, Person, ReleaseId, RequirementId,
    ServiceName,
};

/// A fixed instant plus `minutes`.
pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("valid date")
        + Duration::minutes(minutes)
}

/// A fixed instant plus `seconds`.
pub fn at_s(seconds: i64) -> DateTime<Utc> {
    at(0) + Duration::seconds(seconds)
}

pub fn service(name: &str) -> ServiceName {
    ServiceName::parse(name).expect("valid service")
}

pub fn env(name: &str) -> EnvironmentName {
    EnvironmentName::parse(name).expect("valid environment")
}

pub fn person(name: &str) -> Person {
    Person::parse(name).expect("valid person")
}

pub fn sha(n: u8) -> CommitSha {
    CommitSha::parse(&format!("{n:02x}{}", "a".repeat(38))).expect("valid sha")
}

pub fn req(key: &str) -> RequirementId {
    RequirementId::parse(key).expect("valid requirement")
}

pub fn release_id(n: u128) -> ReleaseId {
    ReleaseId::from_uuid(Uuid::from_u128(n))
}

pub fn deployment_id(n: u128) -> DeploymentId {
    DeploymentId::from_uuid(Uuid::from_u128(0xd000 + n))
}

pub fn incident_id(n: u128) -> IncidentId {
    IncidentId::from_uuid(Uuid::from_u128(0x1000 + n))
}

/// Given `events`, when `command`: the events decided or the refusal.
pub fn when<A>(given: Vec<A::Event>, command: A::Command) -> Result<Vec<A::Event>, A::Error>
where
    A: Aggregate<Services = ()>,
{
    TestFramework::<A>::with(())
        .given(given)
        .when(command)
        .inspect_result()
}
