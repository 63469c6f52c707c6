//! How the sealer and the relay pace their loops: straight on while batches come back
//! full, the poll interval when idle, a pause while another instance holds the role, and
//! a doubling back-off (up to 5 s) after errors, which are logged.

use std::time::Duration;

use tokio::sync::watch;

use crate::error::LedgerError;

/// The longest back-off after repeated errors.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a standby checks whether the active instance is gone.
const STANDBY_RETRY: Duration = Duration::from_millis(500);

/// The pace of one loop.
#[derive(Debug)]
pub(crate) struct Pace {
    poll: Duration,
    batch_size: i64,
    backoff: Duration,
    role: &'static str,
}

impl Pace {
    /// A loop that polls every `poll` and works in batches of `batch_size`.
    pub(crate) fn new(role: &'static str, poll: Duration, batch_size: i64) -> Self {
        Self {
            poll,
            batch_size,
            backoff: poll,
            role,
        }
    }

    /// How long to wait after a batch that did `result`.
    pub(crate) fn after(&mut self, result: &Result<usize, LedgerError>) -> Duration {
        match result {
            Ok(done) => {
                self.backoff = self.poll;
                if i64::try_from(*done).unwrap_or(i64::MAX) >= self.batch_size {
                    Duration::ZERO
                } else {
                    self.poll
                }
            }
            Err(LedgerError::Busy) => STANDBY_RETRY,
            Err(error) => {
                tracing::warn!(%error, role = self.role, "batch failed; retrying");
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                self.backoff
            }
        }
    }
}

/// Sleeps for `wait`, waking early when `shutdown` changes.
pub(crate) async fn pause(wait: Duration, shutdown: &mut watch::Receiver<bool>) {
    if wait.is_zero() {
        return;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = shutdown.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_batches_go_straight_on_and_errors_back_off_up_to_a_limit() {
        let mut pace = Pace::new("test", Duration::from_millis(10), 100);
        assert_eq!(pace.after(&Ok(100)), Duration::ZERO);
        assert_eq!(pace.after(&Ok(3)), Duration::from_millis(10));
        assert_eq!(pace.after(&Err(LedgerError::Busy)), STANDBY_RETRY);
        let error = || Err(LedgerError::Nats("down".into()));
        assert_eq!(pace.after(&error()), Duration::from_millis(20));
        assert_eq!(pace.after(&error()), Duration::from_millis(40));
        for _ in 0..20 {
            pace.after(&error());
        }
        assert_eq!(pace.after(&error()), MAX_BACKOFF);
        assert_eq!(
            pace.after(&Ok(0)),
            Duration::from_millis(10),
            "success resets"
        );
    }
}
