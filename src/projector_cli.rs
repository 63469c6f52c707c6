//! `release-pilot projector` and `release-pilot replay`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use release_pilot_ledger::db;
use release_pilot_projector::catalogue::AnyProjection;
use release_pilot_projector::metrics::ProjectorMetrics;
use release_pilot_projector::replay::replay as replay_projection;
use release_pilot_projector::{Projection, Projector};
use tokio::sync::watch;

use crate::ledger_cli::DatabaseArgs;
use crate::server_cli::{shutdown_signal, with_database};

/// Arguments of `projector`.
#[derive(Debug, clap::Args)]
pub struct ProjectorArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Entries per projection transaction.
    #[arg(long, env = "RELEASE_PILOT_PROJECTOR_BATCH", default_value_t = 1000,
          value_parser = clap::value_parser!(i64).range(1..=100_000))]
    batch: i64,
    /// Where to serve Prometheus metrics (`/metrics`); not served when absent.
    #[arg(long, env = "RELEASE_PILOT_PROJECTOR_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

/// Runs every projection against the ledger until SIGTERM or Ctrl-C.
pub fn projector(args: ProjectorArgs) -> ExitCode {
    let batch = args.batch;
    let metrics_listen = args.metrics_listen;
    with_database(&args.database, |url| async move {
        let pool = db::connect(&url, 8).await.map_err(|e| e.to_string())?;
        db::migrate(&pool).await.map_err(|e| e.to_string())?;
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = ProjectorMetrics::register(&mut registry);
        let pool_gauges = release_pilot_http::metrics::PoolGauges::register(&mut registry);
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(pool_gauges.watch(pool.clone(), Duration::from_secs(1), shutdown.clone()));
        if let Some(listen) = metrics_listen {
            serve_metrics(listen, Arc::new(registry), shutdown.clone()).await?;
        }
        let poll = Duration::from_millis(10);
        let tasks: Vec<_> = AnyProjection::ALL
            .into_iter()
            .map(|projection| {
                let projector =
                    Projector::new(pool.clone(), projection, batch).with_metrics(metrics.clone());
                tokio::spawn(projector.run(shutdown.clone(), poll))
            })
            .collect();
        let names: Vec<&str> = AnyProjection::ALL.iter().map(|p| p.name()).collect();
        eprintln!("projecting the ledger into {}", names.join(", "));
        shutdown_signal(stop).await;
        for task in tasks {
            let _ = task.await;
        }
        Ok(())
    })
}

/// Serves `registry` as Prometheus text at `http://{listen}/metrics` until shutdown.
async fn serve_metrics(
    listen: SocketAddr,
    registry: Arc<prometheus_client::registry::Registry>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let app: axum::Router =
        release_pilot_http::metrics::route(move || release_pilot_http::metrics::encode(&registry));
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("projector metrics on http://{bound}/metrics");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stopped| *stopped).await;
            })
            .await;
    });
    Ok(())
}

/// Arguments of `replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The projection to rebuild, or `all`.
    #[arg(long, default_value = "all")]
    projection: String,
    /// Entries per transaction.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    batch: i64,
}

/// Rebuilds projections from ledger position 0 into fresh tables and swaps them in.
pub fn replay(args: ReplayArgs) -> ExitCode {
    let selected: Vec<AnyProjection> = if args.projection == "all" {
        AnyProjection::ALL.to_vec()
    } else {
        match AnyProjection::named(&args.projection) {
            Some(p) => vec![p],
            None => {
                let names: Vec<&str> = AnyProjection::ALL.iter().map(|p| p.name()).collect();
                return crate::ledger_cli::fail(format!(
                    "no projection named {:?}; choose one of {} or all",
                    args.projection,
                    names.join(", ")
                ));
            }
        }
    };
    let batch = args.batch;
    with_database(&args.database, |url| async move {
        let pool = db::connect(&url, 4).await.map_err(|e| e.to_string())?;
        db::migrate(&pool).await.map_err(|e| e.to_string())?;
        for projection in selected {
            let started = std::time::Instant::now();
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>20} [{bar:30}] {pos}/{len} entries {per_sec} eta {eta}",
                )
                .map_err(|e| e.to_string())?
                .progress_chars("=> "),
            );
            bar.set_prefix(projection.name());
            let done = replay_projection(&pool, projection, batch, |applied, head| {
                bar.set_length(u64::try_from(head.max(applied)).unwrap_or(0));
                bar.set_position(u64::try_from(applied).unwrap_or(0));
            })
            .await
            .map_err(|e| format!("{}: {e}", projection.name()))?;
            bar.finish_and_clear();
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{}: rebuilt from {} entries up to position {} in {seconds:.2}s ({:.0} entries/s) and swapped in",
                projection.name(),
                done.applied,
                done.position,
                done.applied as f64 / seconds.max(1e-9),
            );
        }
        Ok(())
    })
}
