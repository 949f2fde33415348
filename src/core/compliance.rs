//! Compliance rules that are not about the clock face: the abandonment cap (US TSR over 30 days,
//! UK Ofcom over 24 hours), attempt limits per local day, the gap between attempts, and the
//! 72-hour hold after an abandoned call. Pure: counts and instants are passed in.
//!
//! The abandonment cap holds **by construction**: a dial beyond what progressive pacing would
//! place is allowed only while, if every call then ringing were answered by a person at once and
//! every one that found no free agent slot were abandoned, the measured rate would still be at
//! or below the cap ([`AbandonCap::headroom`]).

use super::abandon::{AbandonCounts, AbandonLedger};
use super::types::RefusalReason;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// Which regulator's abandonment measure a campaign answers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AbandonPolicy {
    /// FTC Telemarketing Sales Rule, 16 CFR 310.4(b)(4)(i): abandoned / answered by a person, per
    /// campaign, over 30 days.
    UsTsr,
    /// Ofcom's persistent-misuse policy (2016 statement, §A1.45 ff.): over 24 hours, and AMD false
    /// positives (a person hung up on as a machine) count as abandoned calls.
    UkOfcom,
    /// Both measures; the tighter one binds.
    #[default]
    Both,
}

impl AbandonPolicy {
    /// The campaign-file form: `us_tsr`, `uk_ofcom` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            AbandonPolicy::UsTsr => "us_tsr",
            AbandonPolicy::UkOfcom => "uk_ofcom",
            AbandonPolicy::Both => "both",
        }
    }

    /// Parses the campaign-file form; `None` for anything else.
    pub fn parse(s: &str) -> Option<AbandonPolicy> {
        match s {
            "us_tsr" => Some(AbandonPolicy::UsTsr),
            "uk_ofcom" => Some(AbandonPolicy::UkOfcom),
            "both" => Some(AbandonPolicy::Both),
            _ => None,
        }
    }

    /// True when the 30-day TSR measure applies.
    pub fn tsr(self) -> bool {
        matches!(self, AbandonPolicy::UsTsr | AbandonPolicy::Both)
    }

    /// True when the 24-hour Ofcom measure applies.
    pub fn ofcom(self) -> bool {
        matches!(self, AbandonPolicy::UkOfcom | AbandonPolicy::Both)
    }
}

/// The abandonment cap of a campaign.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AbandonCap {
    /// Which measure(s) apply.
    pub policy: AbandonPolicy,
    /// The cap as a rate in 0..1 (3% = 0.03 under both rules).
    pub cap: f64,
    /// The AMD false-positive rate in 0..1: the share of persons AMD classifies as machines.
    /// Ofcom counts those calls as abandoned; they are estimated as `human × r / (1 − r)`.
    pub amd_false_positive_rate: f64,
}

/// One measure of abandonment over its window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AbandonMeasure {
    /// Person-answered calls in the window (plus estimated AMD false positives under Ofcom).
    pub answered: f64,
    /// Abandoned calls in the window (plus estimated AMD false positives under Ofcom).
    pub abandoned: f64,
}

impl AbandonMeasure {
    /// abandoned / answered, 0 when nothing was answered.
    pub fn rate(&self) -> f64 {
        if self.answered <= 0.0 {
            0.0
        } else {
            self.abandoned / self.answered
        }
    }
}

/// The 30-day window of the TSR (16 CFR 310.4(b)(4)(i)).
pub const TSR_WINDOW: Duration = Duration::days(30);
/// The 24-hour window Ofcom measures over.
pub const OFCOM_WINDOW: Duration = Duration::hours(24);
/// Answers older than the window minus this margin are not counted as headroom, so an answer that
/// leaves the window while a call placed now is still ringing cannot lift the rate over the cap.
const SLIDE_MARGIN: Duration = Duration::minutes(5);

impl AbandonCap {
    /// The default: both measures, 3%, no AMD false positives.
    pub const DEFAULT: AbandonCap = AbandonCap {
        policy: AbandonPolicy::Both,
        cap: 0.03,
        amd_false_positive_rate: 0.0,
    };

    /// The US TSR measure from raw counts (30 days).
    pub fn tsr(counts: AbandonCounts) -> AbandonMeasure {
        AbandonMeasure {
            answered: counts.human as f64,
            abandoned: counts.abandoned as f64,
        }
    }

    /// The Ofcom measure from raw counts (24 hours): estimated AMD false positives are added to
    /// both the answered and the abandoned calls.
    pub fn ofcom(&self, counts: AbandonCounts) -> AbandonMeasure {
        let r = self.amd_false_positive_rate.clamp(0.0, 0.99);
        let fp = counts.human as f64 * r / (1.0 - r);
        AbandonMeasure {
            answered: counts.human as f64 + fp,
            abandoned: counts.abandoned as f64 + fp,
        }
    }

    /// The measures that apply at `now`: (30-day TSR, 24-hour Ofcom), each `None` when not in force.
    pub fn measures(
        &self,
        ledger: &AbandonLedger,
        now: DateTime<Utc>,
    ) -> (Option<AbandonMeasure>, Option<AbandonMeasure>) {
        let tsr = self.policy.tsr().then(|| Self::tsr(ledger.counts(now, TSR_WINDOW)));
        let ofcom = self
            .policy
            .ofcom()
            .then(|| self.ofcom(ledger.counts(now, OFCOM_WINDOW)));
        (tsr, ofcom)
    }

    /// The worst rate of the measures in force at `now` (0..1).
    pub fn worst_rate(&self, ledger: &AbandonLedger, now: DateTime<Utc>) -> f64 {
        let (a, b) = self.measures(ledger, now);
        a.map_or(0.0, |m| m.rate()).max(b.map_or(0.0, |m| m.rate()))
    }

    /// How many more calls may be abandoned from now on, in the worst case, with every measure in
    /// force still at or below the cap: the largest `w` with `(A + w) / (H + w) ≤ cap`, i.e.
    /// `w = (cap·H − A) / (1 − cap)`, floored at 0. Answers near the far edge of a window are not
    /// counted in `H`; abandons are counted a minute beyond it.
    pub fn headroom(&self, ledger: &AbandonLedger, now: DateTime<Utc>) -> u32 {
        let cap = self.cap.clamp(0.0, 0.99);
        let room = |human: f64, abandoned: f64| ((cap * human - abandoned) / (1.0 - cap)).max(0.0);
        let mut w = f64::INFINITY;
        for (on, window) in [(self.policy.tsr(), TSR_WINDOW), (self.policy.ofcom(), OFCOM_WINDOW)] {
            if !on {
                continue;
            }
            // The ledger's one-minute buckets: abandons are counted a minute beyond the window,
            // so an abandon in the boundary minute is never missed.
            let full = ledger.counts(now, window + Duration::minutes(1));
            let near = ledger.counts(now, window - SLIDE_MARGIN);
            let counts = AbandonCounts {
                human: near.human,
                abandoned: full.abandoned,
            };
            let m = if window == OFCOM_WINDOW {
                self.ofcom(counts)
            } else {
                Self::tsr(counts)
            };
            w = w.min(room(m.answered, m.abandoned));
        }
        if w.is_finite() {
            w.floor().min(f64::from(u32::MAX)) as u32
        } else {
            u32::MAX
        }
    }
}

/// Per-contact attempt limits beyond the lifetime `max_attempts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AttemptLimits {
    /// Attempts allowed in one local day of the contact (in every candidate zone).
    pub max_per_day: Option<u32>,
    /// Least time between the start of one attempt and the start of the next.
    pub min_gap: Option<Duration>,
    /// No dial within this time of an abandoned call (72 hours unless the mode is progressive).
    pub abandon_hold: Option<Duration>,
}

/// 72 hours: a contact whose call was abandoned is not called again sooner (modes that can abandon).
pub const ABANDON_HOLD: Duration = Duration::hours(72);

/// What the attempt-limit rules need to know of one contact.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttemptHistory<'a> {
    /// Start instants (UTC) of the contact's attempts over at least the last 48 hours.
    pub recent: &'a [DateTime<Utc>],
    /// Start of the contact's last attempt (UTC), if any.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// End of the contact's last abandoned call (UTC), if any.
    pub last_abandoned_at: Option<DateTime<Utc>>,
}

impl AttemptLimits {
    /// Checks the per-day limit, the minimum gap and the abandon hold at `now` for a contact whose
    /// zones are `zones`. On refusal, returns the reason and the earliest instant the same rule
    /// could allow the dial (UTC).
    pub fn check(
        &self,
        h: &AttemptHistory<'_>,
        zones: &[Tz],
        now: DateTime<Utc>,
    ) -> Result<(), (RefusalReason, Option<DateTime<Utc>>)> {
        if let (Some(hold), Some(at)) = (self.abandon_hold, h.last_abandoned_at)
            && now < at + hold
        {
            return Err((RefusalReason::RecentAbandon, Some(at + hold)));
        }
        if let (Some(gap), Some(at)) = (self.min_gap, h.last_attempt_at)
            && now < at + gap
        {
            return Err((RefusalReason::MinGap, Some(at + gap)));
        }
        if let Some(max) = self.max_per_day {
            let mut until: Option<DateTime<Utc>> = None;
            for &z in zones {
                let today = now.with_timezone(&z).date_naive();
                let made = h
                    .recent
                    .iter()
                    .filter(|t| t.with_timezone(&z).date_naive() == today)
                    .count();
                if made >= max as usize {
                    let next = next_local_midnight(z, today);
                    until = Some(until.map_or(next, |u: DateTime<Utc>| u.max(next)));
                }
            }
            if let Some(u) = until {
                return Err((RefusalReason::AttemptLimit, Some(u)));
            }
        }
        Ok(())
    }
}

/// The first instant of the local day after `day` in `tz` (UTC), skipping a midnight DST gap.
fn next_local_midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let next = day.succ_opt().unwrap_or(day);
    (0..=4)
        .find_map(|h| {
            let naive = next.and_hms_opt(0, 0, 0)? + Duration::minutes(30 * h);
            tz.from_local_datetime(&naive).earliest()
        })
        .map_or_else(|| DateTime::<Utc>::MAX_UTC, |d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::{Los_Angeles, New_York};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn headroom_is_the_worst_case_bound() {
        let now = utc("2026-12-01T15:00:00Z");
        let mut l = AbandonLedger::new();
        l.record(now - Duration::hours(1), 1000, 20);
        let cap = AbandonCap::DEFAULT;
        // (0.03·1000 − 20) / 0.97 = 10.3 → 10; (20 + 10) / (1000 + 10) ≤ 3%, (20 + 11) / 1011 > 3%.
        let w = f64::from(cap.headroom(&l, now));
        assert_eq!(w, 10.0);
        // The bound is tight: w more abandons stay at the cap, one more would pass it.
        assert!((20.0 + w) / (1000.0 + w) <= cap.cap);
        assert!((21.0 + w) / (1001.0 + w) > cap.cap);
        // Nothing answered yet: no headroom at all, so only progressive dials happen.
        assert_eq!(cap.headroom(&AbandonLedger::new(), now), 0);
        // Over the cap: none.
        l.record(now, 0, 20);
        assert_eq!(cap.headroom(&l, now), 0);
    }

    #[test]
    fn windows_differ_by_policy() {
        let now = utc("2026-12-10T15:00:00Z");
        let mut l = AbandonLedger::new();
        // Two days ago, many clean answers; today, a bad hour.
        l.record(now - Duration::days(2), 10_000, 0);
        l.record(now - Duration::hours(1), 100, 3);
        let tsr = AbandonCap {
            policy: AbandonPolicy::UsTsr,
            ..AbandonCap::DEFAULT
        };
        let ofcom = AbandonCap {
            policy: AbandonPolicy::UkOfcom,
            ..AbandonCap::DEFAULT
        };
        assert!(tsr.headroom(&l, now) > 250);
        assert_eq!(ofcom.headroom(&l, now), 0);
        assert_eq!(AbandonCap::DEFAULT.headroom(&l, now), 0);
        assert!((ofcom.worst_rate(&l, now) - 0.03).abs() < 1e-9);
    }

    #[test]
    fn ofcom_counts_amd_false_positives() {
        let cap = AbandonCap {
            policy: AbandonPolicy::UkOfcom,
            cap: 0.03,
            amd_false_positive_rate: 0.02,
        };
        let m = cap.ofcom(AbandonCounts {
            human: 980,
            abandoned: 0,
        });
        // 980 detected persons are 98% of 1000; 20 were hung up on as machines.
        assert!((m.answered - 1000.0).abs() < 1e-9 && (m.abandoned - 20.0).abs() < 1e-9);
        assert!((m.rate() - 0.02).abs() < 1e-12);
    }

    #[test]
    fn per_day_limit_counts_the_local_day() {
        let limits = AttemptLimits {
            max_per_day: Some(2),
            ..AttemptLimits::default()
        };
        // 2026-12-01 local in New York: 14:00Z and 20:00Z are 09:00 and 15:00 EST.
        let recent = [utc("2026-12-01T14:00:00Z"), utc("2026-12-01T20:00:00Z")];
        let h = AttemptHistory {
            recent: &recent,
            last_attempt_at: Some(recent[1]),
            last_abandoned_at: None,
        };
        let now = utc("2026-12-01T22:00:00Z");
        assert_eq!(
            limits.check(&h, &[New_York], now),
            Err((RefusalReason::AttemptLimit, Some(utc("2026-12-02T05:00:00Z"))))
        );
        // In Los Angeles 14:00Z was 06:00 on the same date too; the later midnight binds.
        assert_eq!(
            limits.check(&h, &[New_York, Los_Angeles], now),
            Err((RefusalReason::AttemptLimit, Some(utc("2026-12-02T08:00:00Z"))))
        );
        // Next local day in New York: allowed.
        assert_eq!(limits.check(&h, &[New_York], utc("2026-12-02T05:00:00Z")), Ok(()));
    }

    #[test]
    fn gap_and_abandon_hold() {
        let at = utc("2026-12-01T15:00:00Z");
        let limits = AttemptLimits {
            max_per_day: None,
            min_gap: Some(Duration::hours(4)),
            abandon_hold: Some(ABANDON_HOLD),
        };
        let h = AttemptHistory {
            recent: &[at],
            last_attempt_at: Some(at),
            last_abandoned_at: Some(at),
        };
        let z = [New_York];
        assert_eq!(
            limits.check(&h, &z, at + Duration::hours(71)),
            Err((RefusalReason::RecentAbandon, Some(at + Duration::hours(72))))
        );
        assert_eq!(limits.check(&h, &z, at + Duration::hours(72)), Ok(()));
        let h = AttemptHistory {
            last_abandoned_at: None,
            ..h
        };
        assert_eq!(
            limits.check(&h, &z, at + Duration::hours(3)),
            Err((RefusalReason::MinGap, Some(at + Duration::hours(4))))
        );
        assert_eq!(limits.check(&h, &z, at + Duration::hours(4)), Ok(()));
    }
}
