//! Bearer tokens: each maps to a subject and roles. Only the SHA-256 of a token is
//! stored; a token is shown once, when it is created. Identity always comes from the
//! token, never from a request body.

use std::collections::BTreeSet;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use release_pilot_domain::ids::Person;
use release_pilot_domain::roles::Role;
use release_pilot_ledger::db::Db;
use release_pilot_ledger::on;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject.
    pub subject: Person,
    /// The token's roles.
    pub roles: BTreeSet<Role>,
}

impl Caller {
    /// Refuses with 403 unless the caller holds one of `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.iter().any(|role| self.roles.contains(role)) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(Role::as_str).collect();
        Err(ApiError::forbidden(format!(
            "this needs one of the roles {}; your token has {}",
            names.join(", "),
            self.roles
                .iter()
                .map(Role::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// The token's id (for revoking).
    pub id: Uuid,
    /// Its subject.
    pub subject: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The SHA-256 of a token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new random token: `rp_` and 64 hex digits (256 bits).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    format!("rp_{}", hex::encode(bytes))
}

/// How long an authenticated token is trusted without asking the database again; a
/// revocation by another instance takes effect within this time (at once on this one).
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

type TokenCache =
    std::sync::Arc<std::sync::Mutex<lru::LruCache<Vec<u8>, (Caller, std::time::Instant)>>>;

/// The token table, with a short-lived cache of authenticated tokens.
#[derive(Debug, Clone)]
pub struct TokenStore {
    db: Db,
    cache: TokenCache,
}

impl TokenStore {
    /// Tokens in `db`.
    pub fn new(db: impl Into<Db>) -> Self {
        let capacity = std::num::NonZeroUsize::new(10_000).unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            db: db.into(),
            cache: std::sync::Arc::new(std::sync::Mutex::new(lru::LruCache::new(capacity))),
        }
    }

    /// Stores `token` for `subject` with `roles`; returns its id.
    pub async fn insert(
        &self,
        token: &str,
        subject: &Person,
        roles: &BTreeSet<Role>,
    ) -> Result<Uuid, sqlx::Error> {
        let id = Uuid::now_v7();
        let roles: Vec<&str> = roles.iter().map(Role::as_str).collect();
        let sql = "INSERT INTO api_tokens (id, subject, roles, token_hash) VALUES ($1, $2, $3, $4)";
        // PostgreSQL keeps the roles as text[], SQLite as a JSON array.
        match &self.db {
            Db::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(id)
                    .bind(subject.as_str())
                    .bind(&roles)
                    .bind(hash_token(token))
                    .execute(pool)
                    .await?;
            }
            Db::Sqlite(pool) => {
                sqlx::query(sql)
                    .bind(id)
                    .bind(subject.as_str())
                    .bind(serde_json::json!(roles).to_string())
                    .bind(hash_token(token))
                    .execute(pool)
                    .await?;
            }
        }
        Ok(id)
    }

    /// Creates a random token; returns its id and the token (shown once).
    pub async fn create(
        &self,
        subject: &Person,
        roles: &BTreeSet<Role>,
    ) -> Result<(Uuid, String), sqlx::Error> {
        let token = generate_token();
        let id = self.insert(&token, subject, roles).await?;
        Ok((id, token))
    }

    /// Every token, newest first.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, sqlx::Error> {
        let sql = "SELECT id, subject, created_at, revoked_at, roles FROM api_tokens ORDER BY created_at DESC";
        // PostgreSQL keeps the roles as text[], SQLite as a JSON array.
        let rows: Vec<TokenRow<Vec<String>>> = match &self.db {
            Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
            Db::Sqlite(pool) => {
                let rows: Vec<TokenRow<String>> = sqlx::query_as(sql).fetch_all(pool).await?;
                rows.into_iter()
                    .map(|row| TokenRow {
                        roles: roles_from_json(&row.roles),
                        id: row.id,
                        subject: row.subject,
                        created_at: row.created_at,
                        revoked_at: row.revoked_at,
                    })
                    .collect()
            }
        };
        Ok(rows
            .into_iter()
            .map(|row| TokenInfo {
                id: row.id,
                subject: row.subject,
                roles: row.roles,
                created_at: row.created_at,
                revoked_at: row.revoked_at,
            })
            .collect())
    }

    /// Revokes a token; false when no active token has that id.
    pub async fn revoke(&self, id: Uuid) -> Result<bool, sqlx::Error> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
        let done = on!(&self.db, |pool| {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(Utc::now())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// The caller a token identifies, if it is known and not revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Caller>, sqlx::Error> {
        let hash = hash_token(token);
        if let Ok(mut cache) = self.cache.lock() {
            if let Some((caller, at)) = cache.get(&hash) {
                if at.elapsed() < TOKEN_CACHE_TTL {
                    return Ok(Some(caller.clone()));
                }
            }
        }
        let caller = self.lookup(&hash).await?;
        if let (Some(caller), Ok(mut cache)) = (&caller, self.cache.lock()) {
            cache.put(hash, (caller.clone(), std::time::Instant::now()));
        }
        Ok(caller)
    }

    async fn lookup(&self, hash: &[u8]) -> Result<Option<Caller>, sqlx::Error> {
        let sql =
            "SELECT subject, roles FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL";
        let row: Option<(String, Vec<String>)> = match &self.db {
            Db::Postgres(pool) => sqlx::query_as(sql).bind(hash).fetch_optional(pool).await?,
            Db::Sqlite(pool) => sqlx::query_as::<_, (String, String)>(sql)
                .bind(hash)
                .fetch_optional(pool)
                .await?
                .map(|(subject, roles)| (subject, roles_from_json(&roles))),
        };
        let Some((subject, roles)) = row else {
            return Ok(None);
        };
        let Ok(subject) = Person::parse(&subject) else {
            return Ok(None);
        };
        Ok(Some(Caller {
            subject,
            roles: roles.iter().filter_map(|r| Role::parse(r).ok()).collect(),
        }))
    }

    /// Makes sure an admin can get in: stores `explicit` as an admin token when given
    /// (and not stored yet); otherwise, when no token exists at all, creates one and
    /// returns it so it can be printed once.
    pub async fn bootstrap(&self, explicit: Option<&str>) -> Result<Option<String>, sqlx::Error> {
        let admin = Person::parse("admin").expect("a valid subject");
        let roles = BTreeSet::from([Role::Admin]);
        if let Some(token) = explicit {
            if self.authenticate(token).await?.is_none() {
                self.insert(token, &admin, &roles).await?;
            }
            return Ok(None);
        }
        let any: bool = on!(&self.db, |pool| {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_tokens)")
                .fetch_one(pool)
                .await?
        });
        if any {
            return Ok(None);
        }
        Ok(Some(self.create(&admin, &roles).await?.1))
    }
}

/// A stored token, with its roles as the backend keeps them.
#[derive(sqlx::FromRow)]
struct TokenRow<Roles> {
    id: Uuid,
    subject: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    roles: Roles,
}

/// Roles stored as a JSON array (SQLite); an unreadable value grants nothing.
fn roles_from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// What authentication needs: the tokens, the per-subject rate limiter and how long a
/// request may take.
#[derive(Debug, Clone)]
pub struct Gate {
    /// API tokens.
    pub tokens: TokenStore,
    /// Per-subject rate limiter.
    pub limiter: std::sync::Arc<governor::DefaultKeyedRateLimiter<String>>,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: std::time::Duration,
}

impl Gate {
    /// A gate over `tokens` admitting `per_second` requests per subject with `burst`
    /// above it.
    pub fn new(
        tokens: TokenStore,
        per_second: std::num::NonZeroU32,
        burst: std::num::NonZeroU32,
        request_timeout: std::time::Duration,
    ) -> Self {
        Self {
            tokens,
            limiter: std::sync::Arc::new(governor::RateLimiter::keyed(
                governor::Quota::per_second(per_second).allow_burst(burst),
            )),
            request_timeout,
        }
    }
}

/// Authenticates every `/v1/` request before routing: the caller goes into the request's
/// extensions, or the answer is 401. Health, metrics and the OpenAPI document are public.
pub async fn authenticate(
    State(state): State<Gate>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !request.uri().path().starts_with("/v1/") {
        return Ok(next.run(request).await);
    }
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthenticated("send Authorization: Bearer <token>"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthenticated("the Authorization header must be Bearer <token>")
        })?;
    let caller = state
        .tokens
        .authenticate(token)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the token is unknown or revoked"))?;
    if let Err(not_until) = state.limiter.check_key(&caller.subject.to_string()) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        let seconds = wait.as_secs() + 1;
        let mut problem = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests for {}; retry in {seconds} s",
                caller.subject
            ),
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            problem.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(problem);
    }
    request.extensions_mut().insert(caller);
    // The command runs in its own task: a timeout or a client that disconnects stops the
    // waiting, never the work. Cancelling a future in the middle of a database
    // transaction can return its connection to the pool still inside that transaction,
    // where the next user's writes would silently join it.
    let work = tokio::spawn(tracing::Instrument::in_current_span(next.run(request)));
    let timeout = state.request_timeout;
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(join)) => {
            tracing::error!(error = %join, "request task failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request failed unexpectedly; the operators have been told",
            ))
        }
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!(
                "the request took longer than {} s; it may still complete, so retry with the same Idempotency-Key",
                timeout.as_secs()
            ),
        )),
    }
}

/// The future a role guard returns.
type Guarded = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// A route layer admitting only callers with one of `roles` — checked before the body is
/// read, so a caller without the role learns nothing about validation.
pub fn allow(
    roles: &'static [Role],
) -> axum::middleware::FromFnLayer<impl Fn(Request, Next) -> Guarded + Clone, (), (Request,)> {
    axum::middleware::from_fn(move |request: Request, next: Next| -> Guarded {
        let permitted = request
            .extensions()
            .get::<Caller>()
            .map(|caller| caller.require(roles));
        Box::pin(async move {
            match permitted {
                Some(Ok(())) => next.run(request).await,
                Some(Err(problem)) => problem.into_response(),
                None => {
                    ApiError::unauthenticated("send Authorization: Bearer <token>").into_response()
                }
            }
        })
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("send Authorization: Bearer <token>"))
    }
}
