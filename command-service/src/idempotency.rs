//! `Idempotency-Key`: a retry with the same key and the same request returns the first
//! answer and appends nothing; the same key with a different request is refused (422).
//!
//! A key is first claimed (a row without an answer) before the command runs, so two
//! concurrent retries cannot both append: the second sees the claim and is told to retry
//! (409). A successful answer completes the claim; a refusal or error releases it, so a
//! retry after the cause is fixed runs again.

use axum::http::StatusCode;
use release_pilot_ledger::on;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Runs `command` at most once per `(caller, key)`, answering retries from the record.
pub async fn once<F, Fut>(
    state: &AppState,
    caller: &Caller,
    key: Option<&str>,
    fingerprint: &[u8; 32],
    command: F,
) -> Result<(StatusCode, Value), ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    let Some(key) = key else {
        return command().await;
    };
    let subject = caller.subject.as_str();
    let claimed = on!(&state.db, |pool| {
        sqlx::query(
            "INSERT INTO idempotency_keys (subject, key, request_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (subject, key) DO NOTHING",
        )
        .bind(subject)
        .bind(key)
        .bind(fingerprint.as_slice())
        .execute(pool)
        .await?
        .rows_affected()
    }) == 1;
    if !claimed {
        let (stored, status, response): (Vec<u8>, Option<i16>, Option<String>) = on!(
            &state.db,
            |pool, lite| {
                let response = if lite { "response" } else { "response::text" };
                sqlx::query_as(&format!(
                    "SELECT request_hash, status, {response} AS response FROM idempotency_keys WHERE subject = $1 AND key = $2"
                ))
                .bind(subject)
                .bind(key)
                .fetch_one(pool)
                .await?
            }
        );
        if stored != fingerprint.as_slice() {
            return Err(ApiError::invalid(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request; use a new key",
            ));
        }
        return match (status, response) {
            (Some(status), Some(response)) => Ok((
                StatusCode::from_u16(u16::try_from(status).unwrap_or(200))
                    .unwrap_or(StatusCode::OK),
                serde_json::from_str(&response).unwrap_or(Value::Null),
            )),
            _ => Err(ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this Idempotency-Key is still running; retry shortly",
            )),
        };
    }
    let outcome = command().await;
    match &outcome {
        Ok((status, body)) => {
            on!(&state.db, |pool| {
                sqlx::query("UPDATE idempotency_keys SET status = $3, response = $4 WHERE subject = $1 AND key = $2")
                    .bind(subject)
                    .bind(key)
                    .bind(i16::try_from(status.as_u16()).unwrap_or(200))
                    .bind(body)
                    .execute(pool)
                    .await?;
            });
        }
        Err(_) => {
            on!(&state.db, |pool| {
                sqlx::query("DELETE FROM idempotency_keys WHERE subject = $1 AND key = $2")
                    .bind(subject)
                    .bind(key)
                    .execute(pool)
                    .await?;
            });
        }
    }
    outcome
}
