//! Abandonment as the regulators measure it, over a simulated run: the US TSR measure (abandoned /
//! person-answered) and Ofcom's (AMD false positives count as abandoned calls), both as the core
//! sees them and, for Ofcom, with the false positives the simulator knows happened. Rolling rates
//! are evaluated at every person-answered call over the window ending at that answer, with the
//! core's own [`AbandonLedger`] so the windows are exactly those [`AbandonCap::headroom`] bounds.

use crate::core::compliance::{AbandonMeasure, OFCOM_WINDOW, TSR_WINDOW};
use crate::core::{AbandonCap, AbandonCounts, AbandonLedger};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// The worst window of one measure.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct WorstWindow {
    /// The worst rate, 0..1.
    pub rate: f64,
    /// Abandoned calls in that window (the Ofcom estimate is fractional).
    pub abandoned: f64,
    /// Person-answered calls in that window.
    pub answered: f64,
    /// Hours from the start of the run to the answer that closes that window.
    pub at_hours: f64,
    /// Person-answered calls at which the window ending there was over the cap.
    pub over_cap: u64,
    /// The most person-answered calls in any window that was over the cap (0 when none was).
    pub over_cap_most_answered: f64,
}

impl WorstWindow {
    fn offer(&mut self, m: AbandonMeasure, at_hours: f64, cap: f64) {
        let rate = m.rate();
        if rate > cap {
            self.over_cap += 1;
            self.over_cap_most_answered = self.over_cap_most_answered.max(m.answered);
        }
        if rate > self.rate {
            self.rate = rate;
            self.abandoned = m.abandoned;
            self.answered = m.answered;
            self.at_hours = at_hours;
        }
    }
}

/// One figure under each measure.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct ByMeasure<T> {
    /// US TSR (16 CFR 310.4(b)(4)(i)): abandoned / answered by a person, as AMD classified them.
    pub tsr: T,
    /// Ofcom with the persons AMD actually hung up on as machines counted as abandoned calls.
    pub ofcom_actual: T,
    /// Ofcom as the core estimates it: `human × r / (1 − r)` false positives at the configured rate `r`.
    pub ofcom_estimated: T,
}

/// Abandonment counters of a run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rolling {
    cap: Option<AbandonCap>,
    /// Person-answered (as classified) and abandoned calls: the core's own ledger, replayed.
    seen: AbandonLedger,
    /// The same plus the actual AMD false positives in both counts.
    actual: AbandonLedger,
    human: u64,
    abandoned: u64,
    false_positives: u64,
    worst_24h: ByMeasure<WorstWindow>,
    worst_30d: ByMeasure<WorstWindow>,
}

impl Rolling {
    /// Counters for a campaign whose cap (and configured AMD false-positive rate) is `cap`.
    pub(crate) fn new(cap: AbandonCap) -> Rolling {
        Rolling {
            cap: Some(cap),
            ..Rolling::default()
        }
    }

    /// A call classified as a person at `at` (`abandoned`: it found no free slot), `hours` into the run.
    pub(crate) fn person(&mut self, at: DateTime<Utc>, hours: f64, abandoned: bool) {
        self.human += 1;
        self.abandoned += u64::from(abandoned);
        self.seen.record(at, 1, u32::from(abandoned));
        self.actual.record(at, 1, u32::from(abandoned));
        self.evaluate(at, hours);
    }

    /// A person AMD took for a machine at `at`, `hours` into the run (Ofcom: an abandoned call).
    pub(crate) fn false_positive(&mut self, at: DateTime<Utc>, hours: f64) {
        self.false_positives += 1;
        self.actual.record(at, 1, 1);
        self.evaluate(at, hours);
    }

    fn evaluate(&mut self, at: DateTime<Utc>, hours: f64) {
        let cap = self.cap.map_or(f64::INFINITY, |c| c.cap);
        for (window, worst) in [(OFCOM_WINDOW, &mut self.worst_24h), (TSR_WINDOW, &mut self.worst_30d)] {
            let m = measures(self.cap, self.seen.counts(at, window), self.actual.counts(at, window));
            worst.tsr.offer(m.tsr, hours, cap);
            worst.ofcom_actual.offer(m.ofcom_actual, hours, cap);
            worst.ofcom_estimated.offer(m.ofcom_estimated, hours, cap);
        }
    }

    /// Person-answered calls (as classified), abandoned calls and actual AMD false positives of the run.
    pub(crate) fn totals(&self) -> (u64, u64, u64) {
        (self.human, self.abandoned, self.false_positives)
    }

    /// The rates over the whole run.
    pub(crate) fn run_rates(&self) -> ByMeasure<f64> {
        let seen = AbandonCounts {
            human: self.human,
            abandoned: self.abandoned,
        };
        let actual = AbandonCounts {
            human: self.human + self.false_positives,
            abandoned: self.abandoned + self.false_positives,
        };
        let m = measures(self.cap, seen, actual);
        ByMeasure {
            tsr: m.tsr.rate(),
            ofcom_actual: m.ofcom_actual.rate(),
            ofcom_estimated: m.ofcom_estimated.rate(),
        }
    }

    /// The worst rolling 24-hour windows.
    pub(crate) fn worst_24h(&self) -> ByMeasure<WorstWindow> {
        self.worst_24h
    }

    /// The worst rolling 30-day windows.
    pub(crate) fn worst_30d(&self) -> ByMeasure<WorstWindow> {
        self.worst_30d
    }
}

/// The three measures from the classified counts and the counts with actual false positives.
fn measures(cap: Option<AbandonCap>, seen: AbandonCounts, actual: AbandonCounts) -> ByMeasure<AbandonMeasure> {
    let raw = |c: AbandonCounts| AbandonMeasure {
        answered: c.human as f64,
        abandoned: c.abandoned as f64,
    };
    ByMeasure {
        tsr: AbandonCap::tsr(seen),
        ofcom_actual: raw(actual),
        ofcom_estimated: cap.map_or_else(|| raw(seen), |c| c.ofcom(seen)),
    }
}

/// Hours between `from` and `to`.
pub(crate) fn hours_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / Duration::hours(1).num_milliseconds() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::AbandonPolicy;
    use chrono::TimeZone;

    #[test]
    fn measures_and_windows() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 14, 0, 0).unwrap();
        let cap = AbandonCap {
            policy: AbandonPolicy::Both,
            cap: 0.03,
            amd_false_positive_rate: 0.02,
        };
        let mut r = Rolling::new(cap);
        for i in 0..98 {
            r.person(t0 + Duration::seconds(i), 0.0, i == 0);
        }
        r.false_positive(t0 + Duration::seconds(100), 0.0);
        r.false_positive(t0 + Duration::seconds(101), 0.0);
        let rates = r.run_rates();
        assert!((rates.tsr - 1.0 / 98.0).abs() < 1e-12);
        assert!((rates.ofcom_actual - 3.0 / 100.0).abs() < 1e-12);
        assert!((rates.ofcom_estimated - 3.0 / 100.0).abs() < 1e-9);
        // The very first answer was abandoned: 1 / 1 in its window, and over 3 % until 34 answers.
        assert_eq!(r.worst_24h().tsr.rate, 1.0);
        assert_eq!(r.worst_24h().tsr.over_cap, 33);
        assert_eq!(r.worst_24h().tsr.over_cap_most_answered, 33.0);
        // A day later the window holds only the new answer.
        let later = t0 + Duration::hours(25);
        r.person(later, 25.0, false);
        assert_eq!(r.seen.counts(later, OFCOM_WINDOW).human, 1);
        assert_eq!(r.seen.counts(later, TSR_WINDOW).human, 99);
    }
}
