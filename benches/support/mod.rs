//! What the benchmarks share: a fixed-duration load loop with per-operation latencies,
//! and a table row with a ratio against a baseline measured in the same run.

#![allow(dead_code)] // Each bench uses part of it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The result of one measurement.
pub struct Measured {
    /// Operations per second.
    pub rate: f64,
    /// Latencies of every operation, sorted.
    pub latencies: Vec<Duration>,
}

impl Measured {
    /// The latency at quantile `q` (0-1).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[index]
    }
}

/// Seconds each measurement runs (`BENCH_SECONDS`, default 5).
pub fn seconds() -> Duration {
    let s = std::env::var("BENCH_SECONDS")
        .or_else(|_| std::env::var("LEDGER_BENCH_SECONDS"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    Duration::from_secs(s)
}

/// Runs `workers` loops of `op(worker, n)` for [`seconds`]; returns the rate and latencies.
pub async fn measure<F, Fut>(workers: usize, op: F) -> Measured
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (done, op) = (done.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                let began = Instant::now();
                op(worker, n).await;
                latencies.push(began.elapsed());
                n += 1;
            }
            latencies
        }));
    }
    tokio::time::sleep(seconds()).await;
    done.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("worker"));
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    Measured { rate, latencies }
}

/// Prints a table row: the rate and its ratio to a baseline.
pub fn row(name: &str, rate: f64, baseline: Option<(&str, f64)>) {
    match baseline {
        Some((label, base)) => println!("| {name} | {rate:.0} | {:.2} × {label} |", rate / base),
        None => println!("| {name} | {rate:.0} | baseline |"),
    }
}
