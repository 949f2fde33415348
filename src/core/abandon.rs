//! Abandonment accounting: human-answered and abandoned calls in one-minute buckets, summed over
//! rolling windows. The abandonment rate is abandoned / human-answered, the FTC TSR measure
//! (16 CFR 310.4(b)(4)(i): at most 3% per campaign over 30 days) and Ofcom's (24 hours).

use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;

/// Counts for one minute (UTC, minutes since the epoch), with running totals up to and including
/// it, so a window's counts are two lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    minute: i64,
    human: u32,
    abandoned: u32,
    cum_human: u64,
    cum_abandoned: u64,
}

/// Rolling abandonment counts. Keeps at most 30 days of one-minute buckets; a window's counts
/// take a binary search (O(log n)), so the pacer can ask every tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AbandonLedger {
    buckets: VecDeque<Bucket>,
}

/// Human-answered and abandoned counts over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AbandonCounts {
    /// Calls answered by a person (connected or abandoned).
    pub human: u64,
    /// Of those, calls abandoned (no free agent slot).
    pub abandoned: u64,
}

impl AbandonCounts {
    /// abandoned / human, 0 when no person answered.
    pub fn rate(&self) -> f64 {
        if self.human == 0 {
            0.0
        } else {
            self.abandoned as f64 / self.human as f64
        }
    }
}

/// The longest window kept: 30 days.
pub const MAX_WINDOW: Duration = Duration::days(30);

impl AbandonLedger {
    /// An empty ledger.
    pub fn new() -> AbandonLedger {
        AbandonLedger::default()
    }

    /// Records `human` answered calls of which `abandoned` were abandoned, at `at`.
    /// Out-of-order records older than the newest bucket are added to the newest bucket.
    pub fn record(&mut self, at: DateTime<Utc>, human: u32, abandoned: u32) {
        let minute = at.timestamp().div_euclid(60);
        match self.buckets.back_mut() {
            Some(b) if b.minute >= minute => {
                b.human += human;
                b.abandoned += abandoned;
                b.cum_human += u64::from(human);
                b.cum_abandoned += u64::from(abandoned);
            }
            last => {
                let (h, a) = last.map_or((0, 0), |b| (b.cum_human, b.cum_abandoned));
                self.buckets.push_back(Bucket {
                    minute,
                    human,
                    abandoned,
                    cum_human: h + u64::from(human),
                    cum_abandoned: a + u64::from(abandoned),
                })
            }
        }
        // Two minutes beyond 30 days, for the cap's boundary minute.
        let oldest = minute - MAX_WINDOW.num_minutes() - 2;
        while self.buckets.front().is_some_and(|b| b.minute <= oldest) {
            self.buckets.pop_front();
        }
    }

    /// Counts over the `window` ending at `now` (at most 30 days): the buckets after the minute
    /// that contains `now − window`.
    pub fn counts(&self, now: DateTime<Utc>, window: Duration) -> AbandonCounts {
        let from = (now - window).timestamp().div_euclid(60);
        let Some(last) = self.buckets.back() else {
            return AbandonCounts::default();
        };
        let i = self.buckets.partition_point(|b| b.minute <= from);
        let (h0, a0) = match i {
            0 => {
                let first = &self.buckets[0];
                (
                    first.cum_human - u64::from(first.human),
                    first.cum_abandoned - u64::from(first.abandoned),
                )
            }
            i => (self.buckets[i - 1].cum_human, self.buckets[i - 1].cum_abandoned),
        };
        AbandonCounts {
            human: last.cum_human - h0,
            abandoned: last.cum_abandoned - a0,
        }
    }
}

/// The 24-hour and 30-day counts at each of `points` (ascending, UTC), from per-minute counts
/// `(minute start, human, abandoned)` ascending: what the ledger would have said at each point,
/// for a chart of abandonment over time. A minute counts at a point once it has started.
pub fn rolling_series(
    minutes: &[(DateTime<Utc>, u32, u32)],
    points: &[DateTime<Utc>],
) -> Vec<(AbandonCounts, AbandonCounts)> {
    let mut ledger = AbandonLedger::new();
    let mut next = minutes.iter().peekable();
    points
        .iter()
        .map(|&at| {
            while let Some(&&(m, h, a)) = next.peek() {
                if m > at {
                    break;
                }
                ledger.record(m, h, a);
                next.next();
            }
            (ledger.counts(at, Duration::hours(24)), ledger.counts(at, MAX_WINDOW))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_windows() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut l = AbandonLedger::new();
        l.record(t0, 100, 5);
        l.record(t0 + Duration::hours(25), 100, 1);
        let now = t0 + Duration::hours(25);
        assert_eq!(
            l.counts(now, Duration::hours(24)),
            AbandonCounts {
                human: 100,
                abandoned: 1
            }
        );
        assert_eq!(
            l.counts(now, Duration::days(30)),
            AbandonCounts {
                human: 200,
                abandoned: 6
            }
        );
        assert!((l.counts(now, Duration::days(30)).rate() - 0.03).abs() < 1e-12);
        l.record(t0 + Duration::days(31), 10, 0);
        assert_eq!(l.counts(t0 + Duration::days(31), Duration::days(30)).human, 110);
    }

    #[test]
    fn series_says_at_each_point_what_the_ledger_said_then() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let minutes = [
            (t0, 100, 5),
            (t0 + Duration::hours(2), 50, 0),
            (t0 + Duration::hours(26), 10, 1),
        ];
        let points: Vec<_> = (0..=27).map(|h| t0 + Duration::hours(h)).collect();
        let s = rolling_series(&minutes, &points);
        assert_eq!(s.len(), 28);
        let c = |h, a| AbandonCounts { human: h, abandoned: a };
        assert_eq!(s[0], (c(100, 5), c(100, 5)));
        assert_eq!(s[1], (c(100, 5), c(100, 5)));
        assert_eq!(s[2], (c(150, 5), c(150, 5)));
        // Hour 25: the first minute has left the 24-hour window, not the 30-day one.
        assert_eq!(s[25], (c(50, 0), c(150, 5)));
        // Hour 26: the window starts after the minute at hour 2, as the ledger's own does.
        assert_eq!(s[26], (c(10, 1), c(160, 6)));
        assert_eq!(s[27].1, c(160, 6));
        assert!(rolling_series(&[], &points).iter().all(|p| *p == (c(0, 0), c(0, 0))));
    }
}
