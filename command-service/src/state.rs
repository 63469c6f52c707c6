//! What every handler shares.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use release_pilot_domain::links::LinkRules;
use release_pilot_ledger::db::Db;
use release_pilot_ledger::store::EventStore;

use crate::auth::{Gate, TokenStore};
use crate::metrics::Metrics;

/// Settings of the command API.
#[derive(Debug, Clone)]
pub struct CommandConfig {
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// How requirement links are read from commit messages.
    pub link_rules: LinkRules,
    /// Snapshot every this many events per aggregate.
    pub snapshot_every: usize,
    /// Sustained requests per second per token subject.
    pub rate_per_second: NonZeroU32,
    /// Requests a subject may burst above the sustained rate.
    pub rate_burst: NonZeroU32,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Origins browsers may call from (CORS); empty allows none.
    pub cors_origins: Vec<String>,
}

impl Default for CommandConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            link_rules: LinkRules::default(),
            snapshot_every: 100,
            rate_per_second: NonZeroU32::new(200).expect("non-zero"),
            rate_burst: NonZeroU32::new(400).expect("non-zero"),
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
        }
    }
}

/// Shared state.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The event store.
    pub store: EventStore,
    /// API tokens.
    pub tokens: TokenStore,
    /// Settings.
    pub config: Arc<CommandConfig>,
    /// Per-subject rate limiter.
    pub limiter: Arc<DefaultKeyedRateLimiter<String>>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// What authentication needs, shared with the rest of the state.
    pub fn gate(&self) -> Gate {
        Gate {
            tokens: self.tokens.clone(),
            limiter: self.limiter.clone(),
            request_timeout: self.config.request_timeout,
        }
    }

    /// State over `db`.
    pub fn new(db: impl Into<Db>, config: CommandConfig) -> Self {
        let db = db.into();
        Self {
            store: EventStore::new(db.clone(), config.snapshot_every),
            tokens: TokenStore::new(db.clone()),
            db,
            limiter: Arc::new(RateLimiter::keyed(
                Quota::per_second(config.rate_per_second).allow_burst(config.rate_burst),
            )),
            config: Arc::new(config),
            metrics: Metrics::new(),
        }
    }
}
