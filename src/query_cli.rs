//! `release-pilot query-api`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use release_pilot_ledger::db;
use release_pilot_ledger::signing::{public_key_from_pem, LedgerKey};
use release_pilot_query_api::{App, QueryConfig, QueryState};
use tokio::sync::watch;

use crate::ledger_cli::{default_signing_key, DatabaseArgs};
use crate::server_cli::{shutdown_signal, with_database};

/// Arguments of `query-api`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Address to listen on.
    #[arg(
        long,
        env = "RELEASE_PILOT_QUERY_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    listen: SocketAddr,
    /// The ledger's public key (SPKI PEM), served at /v1/ledger/public-key.
    #[arg(long, env = "RELEASE_PILOT_PUBLIC_KEY")]
    public_key: Option<PathBuf>,
    /// The sealer's signing key, whose public half is served when no --public-key is given.
    #[arg(long, env = "RELEASE_PILOT_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// Data directory (holds the generated signing key).
    #[arg(long, env = "RELEASE_PILOT_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Sustained requests per second per token.
    #[arg(
        long,
        env = "RELEASE_PILOT_QUERY_RATE_PER_SECOND",
        default_value = "500"
    )]
    rate_per_second: std::num::NonZeroU32,
    /// Requests a token may burst above its sustained rate.
    #[arg(long, env = "RELEASE_PILOT_QUERY_RATE_BURST", default_value = "1000")]
    rate_burst: std::num::NonZeroU32,
    /// Seconds between full verifications of the ledger (exported as
    /// `ledger_chain_valid`); 0 turns it off. Needs the public key.
    #[arg(long, env = "RELEASE_PILOT_VERIFY_EVERY", default_value_t = 600)]
    verify_every: u64,
    /// Origins browsers may call from (comma-separated); none by default.
    #[arg(long, env = "RELEASE_PILOT_CORS_ORIGINS", value_delimiter = ',')]
    cors_origin: Vec<String>,
}

/// The public key to serve: the given PEM, or the public half of the signing key when its
/// file exists; none otherwise (the route then says how to configure it).
fn public_key(args: &QueryArgs) -> Result<Option<release_pilot_ledger::VerifyingKey>, String> {
    if let Some(path) = &args.public_key {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        return public_key_from_pem(&pem)
            .map(Some)
            .map_err(|e| e.to_string());
    }
    let path = args
        .signing_key
        .clone()
        .unwrap_or_else(|| default_signing_key(&args.data_dir));
    match std::fs::read_to_string(&path) {
        Ok(pem) => Ok(Some(
            LedgerKey::from_pem(&pem)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .verifying_key(),
        )),
        Err(_) => Ok(None),
    }
}

/// Runs the query API until SIGTERM or Ctrl-C.
pub fn query_api(args: QueryArgs) -> ExitCode {
    let key = match public_key(&args) {
        Ok(key) => key,
        Err(e) => return crate::ledger_cli::fail(e),
    };
    with_database(&args.database, |url| async move {
        let pool = db::connect(&url, 16).await.map_err(|e| e.to_string())?;
        db::migrate(&pool).await.map_err(|e| e.to_string())?;
        let config = QueryConfig {
            rate_per_second: args.rate_per_second,
            rate_burst: args.rate_burst,
            cors_origins: args.cors_origin.clone(),
            public_key: key,
            ..QueryConfig::default()
        };
        let state = QueryState::new(pool, config);
        let (stop, mut shutdown) = watch::channel(false);
        tokio::spawn(release_pilot_query_api::gauges::watch(
            state.clone(),
            std::time::Duration::from_secs(60),
            shutdown.clone(),
        ));
        if args.verify_every > 0 {
            tokio::spawn(release_pilot_query_api::gauges::watch_chain(
                state.clone(),
                std::time::Duration::from_secs(args.verify_every),
                shutdown.clone(),
            ));
        }
        let app = App::build(args.listen, state)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        println!(
            "query API listening on http://{}",
            app.local_addr().map_err(|e| e.to_string())?
        );
        tokio::spawn(shutdown_signal(stop));
        app.run(async move {
            let _ = shutdown.wait_for(|stopped| *stopped).await;
        })
        .await
        .map_err(|e| e.to_string())
    })
}
