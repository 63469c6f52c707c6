//! Every component in one process: what `serve` and `demo` run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use release_pilot_command_service::auth::TokenStore;
use release_pilot_command_service::{App, AppState, CommandConfig};
use release_pilot_ledger::db;
use release_pilot_ledger::relay::{Relay, RelayConfig};
use release_pilot_ledger::sealer::{Sealer, SealerConfig};
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_projector::catalogue::AnyProjection;
use release_pilot_projector::metrics::ProjectorMetrics;
use release_pilot_projector::Projector;
use release_pilot_query_api::{QueryConfig, QueryState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ledger_cli::{default_signing_key, DatabaseArgs};

/// Where and how the stack runs.
#[derive(Debug, clap::Args)]
pub struct StackArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address of the command API.
    #[arg(long, env = "RELEASE_PILOT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the query API.
    #[arg(
        long,
        env = "RELEASE_PILOT_QUERY_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub query_listen: SocketAddr,
    /// NATS URL; without it the ledger is sealed and projected but not relayed.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// Data directory (holds the generated signing key).
    #[arg(long, env = "RELEASE_PILOT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Ed25519 signing key (PKCS#8 PEM); generated into the data directory when absent.
    #[arg(long, env = "RELEASE_PILOT_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// An admin token to accept; otherwise one is generated and printed once when no
    /// token exists.
    #[arg(long, env = "RELEASE_PILOT_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,
}

/// A running stack.
pub struct Stack {
    /// The database.
    pub pool: db::Db,
    /// The command API's address.
    pub command: SocketAddr,
    /// The query API's address.
    pub query: SocketAddr,
    /// The admin token generated at first start, to print once.
    pub new_admin_token: Option<String>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Stack {
    /// Starts the command API with the sealer (and relay), every projection, and the query
    /// API with its gauges and background verification.
    pub async fn start(args: &StackArgs) -> Result<Self, String> {
        let url = args.database.url_in(&args.data_dir);
        let key_path = args
            .signing_key
            .clone()
            .unwrap_or_else(|| default_signing_key(&args.data_dir));
        let (key, generated) = LedgerKey::load_or_generate(&key_path).map_err(|e| e.to_string())?;
        if generated {
            eprintln!("generated the ledger signing key at {}", key_path.display());
        }
        let pool = db::connect(&url, 48).await.map_err(|e| e.to_string())?;
        db::migrate(&pool).await.map_err(|e| e.to_string())?;
        let new_admin_token = TokenStore::new(pool.clone())
            .bootstrap(args.bootstrap_token.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        let (stop, shutdown) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(
            Sealer::new(pool.clone(), key.clone(), SealerConfig::default()).run(shutdown.clone()),
        ));
        if let (Some(_), None) = (&args.nats_url, pool.postgres()) {
            eprintln!("NATS_URL ignored: the JetStream relay runs with PostgreSQL");
        }
        if let (Some(nats), Some(postgres)) = (&args.nats_url, pool.postgres()) {
            let client = async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(nats)
                .await
                .map_err(|e| format!("nats {nats}: {e}"))?;
            let relay = Relay::new(
                postgres.clone(),
                async_nats::jetstream::new(client),
                RelayConfig::default(),
            );
            tasks.push(tokio::spawn(relay.run(shutdown.clone())));
        }

        let command_state = AppState::new(pool.clone(), CommandConfig::default());
        tasks.push(tokio::spawn(command_state.metrics.clone().watch(
            pool.clone(),
            Duration::from_secs(1),
            shutdown.clone(),
        )));
        let command_app = App::build(args.listen, command_state)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let command = command_app.local_addr().map_err(|e| e.to_string())?;
        tasks.push(serve(command_app.run(stopped(shutdown.clone()))));

        let mut projector_metrics = None;
        let query_state = QueryState::with_more_metrics(
            pool.clone(),
            QueryConfig {
                public_key: Some(key.verifying_key()),
                ..QueryConfig::default()
            },
            |registry| projector_metrics = Some(ProjectorMetrics::register(registry)),
        );
        let projector_metrics = projector_metrics.unwrap_or_default();
        for projection in AnyProjection::ALL {
            let projector = Projector::new(pool.clone(), projection, 1000)
                .with_metrics(projector_metrics.clone());
            tasks.push(tokio::spawn(
                projector.run(shutdown.clone(), Duration::from_millis(10)),
            ));
        }
        tasks.push(tokio::spawn(release_pilot_query_api::gauges::watch(
            query_state.clone(),
            Duration::from_secs(60),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(release_pilot_query_api::gauges::watch_chain(
            query_state.clone(),
            Duration::from_secs(600),
            shutdown.clone(),
        )));
        let query_app = release_pilot_query_api::App::build(args.query_listen, query_state)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.query_listen))?;
        let query = query_app.local_addr().map_err(|e| e.to_string())?;
        tasks.push(serve(query_app.run(stopped(shutdown))));
        Ok(Self {
            pool,
            command,
            query,
            new_admin_token,
            stop,
            tasks,
        })
    }

    /// Stops every component and waits for them (the sealer signs a final checkpoint).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.pool.close().await;
    }
}

async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopped| *stopped).await;
}

fn serve(
    server: impl std::future::Future<Output = std::io::Result<()>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%error, "HTTP server failed");
        }
    })
}

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeAllArgs {
    #[command(flatten)]
    stack: StackArgs,
}

/// Runs everything in one process until SIGTERM or Ctrl-C.
pub fn serve_all(args: ServeAllArgs) -> std::process::ExitCode {
    run_stack(&args.stack, |stack| async move {
        print_addresses(&stack);
        let (stop, mut stopped_rx) = watch::channel(false);
        tokio::spawn(crate::server_cli::shutdown_signal(stop));
        let _ = stopped_rx.wait_for(|s| *s).await;
        Ok(stack)
    })
}

/// Prints where the APIs are and, on first start, the admin token.
pub fn print_addresses(stack: &Stack) {
    println!("command API: http://{}", stack.command);
    println!("query API:   http://{}", stack.query);
    if let Some(token) = &stack.new_admin_token {
        println!("admin token (shown once, store it now): {token}");
    }
}

/// Starts the stack, runs `work` with it, then stops it.
pub fn run_stack<F, Fut>(args: &StackArgs, work: F) -> std::process::ExitCode
where
    F: FnOnce(Stack) -> Fut,
    Fut: std::future::Future<Output = Result<Stack, String>>,
{
    let runtime = match crate::ledger_cli::runtime() {
        Ok(runtime) => runtime,
        Err(e) => return crate::ledger_cli::fail(e),
    };
    let result: Result<(), String> = runtime.block_on(async {
        let stack = Stack::start(args).await?;
        let stack = work(stack).await?;
        stack.stop().await;
        Ok(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => crate::ledger_cli::fail(e),
    }
}
