//! `release-pilot command-service` and `release-pilot token …`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use release_pilot_command_service::auth::TokenStore;
use release_pilot_command_service::{App, AppState, CommandConfig};
use release_pilot_domain::ids::Person;
use release_pilot_domain::roles::Role;
use release_pilot_ledger::db;
use release_pilot_ledger::relay::{Relay, RelayConfig};
use release_pilot_ledger::sealer::{Sealer, SealerConfig};
use release_pilot_ledger::signing::LedgerKey;
use tokio::sync::watch;

use crate::ledger_cli::{default_signing_key, fail, runtime, DatabaseArgs};

/// Arguments of `command-service`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "RELEASE_PILOT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// NATS URL; without it the ledger is sealed but not relayed to JetStream.
    #[arg(long, env = "NATS_URL")]
    nats_url: Option<String>,
    /// Data directory (holds the generated signing key).
    #[arg(long, env = "RELEASE_PILOT_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Ed25519 signing key (PKCS#8 PEM); generated into the data directory when absent.
    #[arg(long, env = "RELEASE_PILOT_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// An admin token to accept (for automation); otherwise one is generated and printed
    /// once when no token exists.
    #[arg(long, env = "RELEASE_PILOT_BOOTSTRAP_TOKEN", hide_env_values = true)]
    bootstrap_token: Option<String>,
    /// Largest request body in bytes.
    #[arg(long, env = "RELEASE_PILOT_BODY_LIMIT", default_value_t = 1024 * 1024)]
    body_limit: usize,
    /// Sustained requests per second per token.
    #[arg(long, env = "RELEASE_PILOT_RATE_PER_SECOND", default_value = "200")]
    rate_per_second: std::num::NonZeroU32,
    /// Requests a token may burst above its sustained rate.
    #[arg(long, env = "RELEASE_PILOT_RATE_BURST", default_value = "400")]
    rate_burst: std::num::NonZeroU32,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "RELEASE_PILOT_REQUEST_TIMEOUT", default_value_t = 30)]
    request_timeout: u64,
    /// Origins browsers may call from (comma-separated); none by default.
    #[arg(long, env = "RELEASE_PILOT_CORS_ORIGINS", value_delimiter = ',')]
    cors_origin: Vec<String>,
}

/// `token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenAction {
    /// Create a token and print it once.
    Create {
        /// The token's subject (who it identifies).
        #[arg(long)]
        subject: String,
        /// A role (repeat for several): ci, approver, incident_commander, auditor, admin.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token's id, as `list` shows it.
        id: uuid::Uuid,
    },
}

/// Arguments of `token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(subcommand)]
    action: TokenAction,
}

/// Runs `work` with the database URL on a fresh runtime; exit 0 on success, 2 with the
/// message otherwise.
pub(crate) fn with_database<F, Fut>(database: &DatabaseArgs, work: F) -> ExitCode
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let url = match database.url() {
        Ok(url) => url.to_owned(),
        Err(e) => return fail(e),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(e),
    };
    match runtime.block_on(work(url)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

pub(crate) async fn shutdown_signal(stop: watch::Sender<bool>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    let _ = stop.send(true);
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    let _ = stop.send(true);
}

/// Runs the command API with the sealer (and the relay when NATS is configured).
pub fn command_service(args: ServeArgs) -> ExitCode {
    let url = args.database.url_in(&args.data_dir);
    let key_path = args
        .signing_key
        .clone()
        .unwrap_or_else(|| default_signing_key(&args.data_dir));
    let (key, generated) = match LedgerKey::load_or_generate(&key_path) {
        Ok(key) => key,
        Err(e) => return fail(e),
    };
    if generated {
        eprintln!("generated the ledger signing key at {}", key_path.display());
    }
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(e),
    };
    let result: Result<(), String> = runtime.block_on(async move {
        let pool = db::connect(&url, 32).await.map_err(|e| e.to_string())?;
        db::migrate(&pool).await.map_err(|e| e.to_string())?;
        let tokens = TokenStore::new(pool.clone());
        if let Some(token) = tokens
            .bootstrap(args.bootstrap_token.as_deref())
            .await
            .map_err(|e| e.to_string())?
        {
            println!("admin token (shown once, store it now): {token}");
        }
        let (stop, shutdown) = watch::channel(false);
        let sealer = tokio::spawn(
            Sealer::new(pool.clone(), key, SealerConfig::default()).run(shutdown.clone()),
        );
        let relay = match (&args.nats_url, pool.postgres()) {
            (Some(nats), Some(postgres)) => {
                let client = async_nats_connect(nats).await?;
                let relay = Relay::new(
                    postgres.clone(),
                    async_nats::jetstream::new(client),
                    RelayConfig::default(),
                );
                Some(tokio::spawn(relay.run(shutdown.clone())))
            }
            (Some(_), None) => {
                eprintln!("NATS_URL ignored: the JetStream relay runs with PostgreSQL");
                None
            }
            (None, _) => None,
        };
        let config = CommandConfig {
            body_limit_bytes: args.body_limit,
            rate_per_second: args.rate_per_second,
            rate_burst: args.rate_burst,
            request_timeout: std::time::Duration::from_secs(args.request_timeout),
            cors_origins: args.cors_origin.clone(),
            ..CommandConfig::default()
        };
        let state = AppState::new(pool.clone(), config);
        tokio::spawn(state.metrics.clone().watch(
            pool,
            std::time::Duration::from_secs(1),
            shutdown.clone(),
        ));
        let app = App::build(args.listen, state)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        println!(
            "command API listening on http://{}",
            app.local_addr().map_err(|e| e.to_string())?
        );
        let mut http_shutdown = shutdown.clone();
        let server = app.run(async move {
            let _ = http_shutdown.wait_for(|stopped| *stopped).await;
        });
        tokio::spawn(shutdown_signal(stop));
        server.await.map_err(|e| e.to_string())?;
        let _ = sealer.await;
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn async_nats_connect(url: &str) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(|e| format!("nats {url}: {e}"))
}

/// Manages API tokens.
pub fn token(args: TokenArgs) -> ExitCode {
    let action = args.action;
    with_database(&args.database, |url| async move {
        let pool = db::connect(&url, 2).await.map_err(|e| e.to_string())?;
        db::migrate(&pool).await.map_err(|e| e.to_string())?;
        let tokens = TokenStore::new(pool);
        match action {
            TokenAction::Create { subject, roles } => {
                let subject = Person::parse(&subject).map_err(|e| e.to_string())?;
                let roles: BTreeSet<Role> = roles
                    .iter()
                    .map(|r| Role::parse(r))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                let (id, token) = tokens
                    .create(&subject, &roles)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("{token}");
                eprintln!("token {id} for {subject} created; it is shown only now");
            }
            TokenAction::List => {
                for info in tokens.list().await.map_err(|e| e.to_string())? {
                    let state = if info.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{}  {:<8} {:<30} {}",
                        info.id,
                        state,
                        info.subject,
                        info.roles.join(",")
                    );
                }
            }
            TokenAction::Revoke { id } => {
                if !tokens.revoke(id).await.map_err(|e| e.to_string())? {
                    return Err(format!("no active token with id {id}"));
                }
                println!("token {id} revoked");
            }
        }
        Ok(())
    })
}
