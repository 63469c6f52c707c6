//! The command extractor: the JSON body (with problem+json rejections a person can act
//! on), the `Idempotency-Key` and `traceparent` headers, and a fingerprint of the request
//! for idempotent retries.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// A command request.
#[derive(Debug)]
pub struct CommandRequest<T> {
    /// The parsed body.
    pub body: T,
    /// The caller's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// The caller's W3C trace context, if any and well-formed.
    pub traceparent: Option<String>,
    /// SHA-256 of method, path and body: a retry must match it.
    pub fingerprint: [u8; 32],
}

/// Whether a JSON text encodes a NUL character (`\u0000` after an odd run of
/// backslashes). PostgreSQL cannot hold NUL in text, and no field here means one.
fn encodes_nul(bytes: &[u8]) -> bool {
    bytes.windows(6).enumerate().any(|(i, window)| {
        if !window.eq_ignore_ascii_case(b"\\u0000") {
            return false;
        }
        let backslashes = bytes[..=i]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        backslashes % 2 == 1
    })
}

/// Parses a JSON body, telling malformed JSON (400) from well-formed JSON that does not
/// fit the command (422: unknown field, wrong type, missing field, a NUL character).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if encodes_nul(bytes) {
        return Err(ApiError::invalid(
            "invalid_character",
            "text must not contain NUL characters (\\u0000)",
        ));
    }
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        }
        serde_json::error::Category::Data => ApiError::invalid(
            "invalid_body",
            format!("the body does not fit this command: {e}"),
        ),
        serde_json::error::Category::Io => {
            ApiError::bad_request("malformed_json", format!("the body could not be read: {e}"))
        }
    })
}

fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map(str::to_owned).map_err(|_| {
                ApiError::bad_request("invalid_header", format!("{name} must be visible ASCII"))
            })
        })
        .transpose()
}

/// A `traceparent` is kept only when it has the W3C shape
/// (`00-<32 hex>-<16 hex>-<2 hex>`); anything else is dropped rather than stored.
fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

impl<T: DeserializeOwned> FromRequest<AppState> for CommandRequest<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let idempotency_key = header_text(&parts.headers, "idempotency-key")?;
        if let Some(key) = &idempotency_key {
            if key.is_empty() || key.len() > 255 {
                return Err(ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1-255 characters",
                ));
            }
        }
        let traceparent =
            header_text(&parts.headers, "traceparent")?.filter(|t| valid_traceparent(t));
        let content_type = header_text(&parts.headers, header::CONTENT_TYPE.as_str())?;
        let bytes = axum::body::to_bytes(body, state.config.body_limit_bytes)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body exceeds {} bytes", state.config.body_limit_bytes),
                )
            })?;
        let has_body = !Bytes::is_empty(&bytes);
        if has_body
            && !content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/json"))
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ));
        }
        let body = parse_json(&bytes)?;
        let mut hasher = Sha256::new();
        hasher.update(parts.method.as_str().as_bytes());
        hasher.update(b" ");
        hasher.update(parts.uri.path().as_bytes());
        hasher.update(b"\n");
        hasher.update(&bytes);
        Ok(Self {
            body,
            idempotency_key,
            traceparent,
            fingerprint: hasher.finalize().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
    }

    #[test]
    fn malformed_json_is_400_and_misfit_json_is_422() {
        let status = |bytes: &[u8]| {
            parse_json::<Body>(bytes)
                .map(|_| ())
                .map_err(|e| (e.status, e.code))
        };
        assert_eq!(
            status(b"{\"name\": "),
            Err((StatusCode::BAD_REQUEST, "malformed_json"))
        );
        assert_eq!(
            status(b"{\"name\": 3}"),
            Err((StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"))
        );
        assert_eq!(
            status(b"{\"name\": \"x\", \"extra\": 1}"),
            Err((StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"))
        );
        assert_eq!(
            status(b"{}"),
            Err((StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"))
        );
        assert_eq!(status(b"{\"name\": \"x\"}"), Ok(()));
    }

    #[test]
    fn nul_characters_are_refused_but_an_escaped_backslash_is_not_one() {
        let code = |bytes: &[u8]| parse_json::<Body>(bytes).map(|_| ()).map_err(|e| e.code);
        assert_eq!(code(br#"{"name": "a\u0000b"}"#), Err("invalid_character"));
        assert_eq!(code(br#"{"name": "a\\u0000b"}"#), Ok(()));
        assert_eq!(code(br#"{"name": "a\\\u0000b"}"#), Err("invalid_character"));
    }

    #[test]
    fn only_w3c_shaped_traceparents_are_kept() {
        assert!(valid_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        ));
        assert!(!valid_traceparent("00-xyz-b7ad6b7169203331-01"));
        assert!(!valid_traceparent("garbage"));
    }
}
