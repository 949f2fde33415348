//! The calls-per-second budget as a sliding window: at most `limit` dials in any rolling second.
//! Pure: the driver passes a monotonic `now` (time since its own start) in.
//!
//! A no-burst token bucket (GCRA with a burst of one) also never puts more than `limit` dials in a
//! rolling second, but a driver that wakes late loses the slot it missed for good, so a daemon
//! whose event loop is busy dials below its CPS. The window keeps the same bound exactly and lets
//! a late driver catch up within the second.

use std::collections::VecDeque;
use std::time::Duration;

/// The window's length: carriers and Twilio state CPS per second.
const WINDOW: Duration = Duration::from_secs(1);

/// Start times of the dials of the last second, oldest first.
#[derive(Clone, Debug)]
pub struct CpsWindow {
    limit: usize,
    recent: VecDeque<Duration>,
}

impl CpsWindow {
    /// A window allowing `calls_per_second` dials (at least 1) in any rolling second.
    pub fn new(calls_per_second: u32) -> CpsWindow {
        let limit = (calls_per_second as usize).max(1);
        CpsWindow {
            limit,
            recent: VecDeque::with_capacity(limit),
        }
    }

    /// The dials allowed per rolling second.
    pub fn limit(&self) -> u32 {
        u32::try_from(self.limit).unwrap_or(u32::MAX)
    }

    fn expire(&mut self, now: Duration) {
        while self.recent.front().is_some_and(|t| now.saturating_sub(*t) >= WINDOW) {
            self.recent.pop_front();
        }
    }

    /// Takes up to `n` dials at `now` (a monotonic offset, never decreasing between calls) and
    /// returns how many were granted: none once the last second already holds `limit`.
    pub fn take(&mut self, n: u32, now: Duration) -> u32 {
        self.expire(now);
        let free = self.limit.saturating_sub(self.recent.len());
        let granted = free.min(n as usize);
        self.recent.extend(std::iter::repeat_n(now, granted));
        u32::try_from(granted).unwrap_or(u32::MAX)
    }

    /// Gives back `n` dials granted at `now` but not placed (the core planned fewer).
    pub fn give_back(&mut self, n: u32) {
        for _ in 0..n {
            self.recent.pop_back();
        }
    }

    /// How long after `now` the next dial is allowed: zero while the window has room.
    pub fn wait(&mut self, now: Duration) -> Duration {
        self.expire(now);
        if self.recent.len() < self.limit {
            return Duration::ZERO;
        }
        self.recent
            .front()
            .map_or(Duration::ZERO, |t| (*t + WINDOW).saturating_sub(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_late_driver_catches_up_within_the_second() {
        let mut w = CpsWindow::new(10);
        assert_eq!(w.take(4, Duration::ZERO), 4);
        // Nothing for 900 ms, then the rest of the second's budget at once.
        assert_eq!(w.take(20, Duration::from_millis(900)), 6);
        assert_eq!(w.take(1, Duration::from_millis(950)), 0);
        assert_eq!(w.wait(Duration::from_millis(950)), Duration::from_millis(50));
        // The first four leave the window at 1 s.
        assert_eq!(w.take(20, Duration::from_millis(1000)), 4);
        w.give_back(2);
        assert_eq!(w.take(20, Duration::from_millis(1000)), 2);
    }

    proptest! {
        /// Whatever the driver asks for and whenever, no rolling second holds more than the limit,
        /// and a request is refused only when the last second is full.
        #[test]
        fn no_rolling_second_holds_more_than_the_limit(
            cps in 1u32..50,
            steps in proptest::collection::vec((0u64..400, 0u32..30), 1..200),
        ) {
            let mut w = CpsWindow::new(cps);
            let mut now = Duration::ZERO;
            let mut dials: Vec<Duration> = Vec::new();
            for (gap_ms, want) in steps {
                now += Duration::from_millis(gap_ms);
                let in_last_second = dials.iter().filter(|t| now.saturating_sub(**t) < WINDOW).count() as u32;
                let got = w.take(want, now);
                prop_assert_eq!(got, want.min(cps - in_last_second));
                dials.extend(std::iter::repeat_n(now, got as usize));
            }
            for (i, t) in dials.iter().enumerate() {
                let within = dials[i..].iter().filter(|u| u.saturating_sub(*t) < WINDOW).count() as u32;
                prop_assert!(within <= cps, "{} dials in the second from {:?}", within, t);
            }
        }
    }
}
