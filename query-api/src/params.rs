//! Query parameters: parsed strictly, refused with a 400 problem that says what is wrong.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use chrono::{DateTime, NaiveDate, Utc};
use release_pilot_http::error::ApiError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// Query parameters of type `T`; unknown or malformed ones are a 400 `invalid_query`.
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Params(value))
            .map_err(|rejection| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("{}; see /openapi.json", rejection.body_text()),
                )
            })
    }
}

/// A point in time: RFC 3339 (`2026-03-03T12:00:00Z`) or a date (`2026-03-03`, meaning
/// its midnight UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_time(&text)
            .map(Time)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses an RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    let hint = if text.contains(' ') {
        " (a '+' in a URL reads as a space: write the offset as %2B or use Z)"
    } else {
        ""
    };
    Err(format!(
        "{text:?} is not a time: use RFC 3339 (2026-03-03T12:00:00Z) or a date (2026-03-03){hint}"
    ))
}

/// Refuses a window whose end is not after its start.
pub fn check_window(from: Option<Time>, to: Option<Time>) -> Result<(), ApiError> {
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            return Err(ApiError::bad_request(
                "invalid_window",
                format!(
                    "from ({}) must be before to ({})",
                    from.0.to_rfc3339(),
                    to.0.to_rfc3339()
                ),
            ));
        }
    }
    Ok(())
}

/// The page size: `limit` (default 100), at most 1000.
pub fn limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit {n} is out of range: use 1 to 1000"),
        )),
    }
}

/// A keyset cursor over (time, id): `<microseconds>.<uuid>`.
pub fn encode_cursor(at: DateTime<Utc>, id: uuid::Uuid) -> String {
    format!("{}.{id}", at.timestamp_micros())
}

/// Reads a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, uuid::Uuid), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "the cursor is not one this API returned; start again without it",
        )
    };
    let (micros, id) = cursor.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at, id))
}

/// A path id that must be a UUID; anything else is a 404 with `code`.
pub fn uuid_or_404(id: &str, code: &'static str, what: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::not_found(code, format!("no {what} {id:?}")))
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
