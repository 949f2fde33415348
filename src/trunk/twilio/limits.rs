//! The Twilio account's own limits, shared by every campaign of the daemon: calls per second
//! (`[twilio] calls_per_second`, Twilio's default for an account is 1): at most that many dials
//! in any rolling second, on the same sliding window as each campaign's budget
//! ([`crate::core::CpsWindow`] on a monotonic clock; a batch may go out at once, as Twilio takes
//! it, where a no-burst `governor` quota would refuse all but the first), and at most
//! `[twilio] max_concurrent` calls in progress, counted by the [`TwilioHub`] from dial to final
//! callback. A dial over either limit is refused before any
//! request as [`TrunkError::NotPlaced`], so the runner puts the contact back without counting an
//! attempt; each campaign's own limits apply on top.

use super::hub::TwilioHub;
use crate::core::CpsWindow;
use crate::trunk::TrunkError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a dial refused for the concurrency limit waits before the campaign tries again.
pub const CONCURRENCY_WAIT: Duration = Duration::from_millis(250);

/// The account's CPS and concurrency limits.
pub struct AccountLimits {
    cps: Mutex<CpsWindow>,
    started: Instant,
    max_concurrent: Option<u32>,
}

impl std::fmt::Debug for AccountLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountLimits")
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl AccountLimits {
    /// At most `cps` dials in any rolling second (0 is taken as 1) and, when set,
    /// `max_concurrent` calls in progress on the account.
    pub fn new(cps: u32, max_concurrent: Option<u32>) -> AccountLimits {
        AccountLimits {
            cps: Mutex::new(CpsWindow::new(cps)),
            started: Instant::now(),
            max_concurrent,
        }
    }

    /// Takes one dial from the account's budget, given the calls `hub` counts in progress.
    ///
    /// Errors: [`TrunkError::NotPlaced`] with how long to wait when a limit is full.
    pub fn admit(&self, hub: &TwilioHub) -> Result<(), TrunkError> {
        if let Some(max) = self.max_concurrent
            && hub.live_calls() >= max as usize
        {
            return Err(TrunkError::NotPlaced {
                reason: format!("the Twilio account's max_concurrent ({max}) calls are in progress"),
                retry_after: Some(CONCURRENCY_WAIT),
            });
        }
        let now = self.started.elapsed();
        let mut cps = self
            .cps
            .lock()
            .map_err(|_| TrunkError::Unavailable("the account's CPS window is poisoned".into()))?;
        if cps.take(1, now) == 1 {
            return Ok(());
        }
        Err(TrunkError::NotPlaced {
            reason: "the Twilio account's calls_per_second is used up".into(),
            retry_after: Some(cps.wait(now).max(Duration::from_millis(1))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cps_and_concurrency_refuse_as_not_placed() {
        let hub = TwilioHub::new();
        let limits = AccountLimits::new(1, Some(1));
        assert!(limits.admit(&hub).is_ok());
        let e = limits.admit(&hub).unwrap_err();
        assert!(
            matches!(e, TrunkError::NotPlaced { retry_after: Some(d), .. } if d <= Duration::from_secs(1)),
            "{e}"
        );
        hub.placed("CA1");
        let e = AccountLimits::new(100, Some(1)).admit(&hub).unwrap_err();
        assert!(
            matches!(e, TrunkError::NotPlaced { .. }) && e.to_string().contains("max_concurrent"),
            "{e}"
        );
        assert!(AccountLimits::new(100, None).admit(&hub).is_ok());
    }
}
