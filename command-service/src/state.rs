//! What every handler shares.

use std::sync::Arc;

use release_pilot_domain::links::LinkRules;
use release_pilot_ledger::store::EventStore;
use sqlx::PgPool;

use crate::auth::TokenStore;

/// Settings of the command API.
#[derive(Debug, Clone)]
pub struct CommandConfig {
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// How requirement links are read from commit messages.
    pub link_rules: LinkRules,
    /// Snapshot every this many events per aggregate.
    pub snapshot_every: usize,
}

impl Default for CommandConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            link_rules: LinkRules::default(),
            snapshot_every: 100,
        }
    }
}

/// Shared state.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// The event store.
    pub store: EventStore,
    /// API tokens.
    pub tokens: TokenStore,
    /// Settings.
    pub config: Arc<CommandConfig>,
}

impl AppState {
    /// State over `pool`.
    pub fn new(pool: PgPool, config: CommandConfig) -> Self {
        Self {
            store: EventStore::new(pool.clone(), config.snapshot_every),
            tokens: TokenStore::new(pool.clone()),
            pool,
            config: Arc::new(config),
        }
    }
}
