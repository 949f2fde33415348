//! Calling windows: when a contact may be dialled, read in the contact's local time.
//! A dial is allowed only inside the campaign period (`start_at` ≤ now < `end_at`, UTC),
//! inside legal hours (default 08:00–21:00 local, the US TSR limit of 16 CFR 310.4(c)),
//! on a local date that is not one of the campaign's holidays, and inside a minute that one of
//! the campaign's `cron` windows matches. A contact whose number maps to several zones may be
//! dialled only when every candidate zone is open ([`CallingWindow::is_open_all`]).

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use cron::Schedule;
use std::collections::BTreeSet;
use std::str::FromStr;

/// Legal calling hours as `[start, end)` in seconds after local midnight (0..=86400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegalHours {
    /// First second of the day at which a dial may start.
    pub start_secs: u32,
    /// First second of the day at which no dial may start (86400 = midnight at the end of the day).
    pub end_secs: u32,
}

/// Error from [`LegalHours::parse`] and [`CallingWindow::new`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WindowError {
    /// Not of the form `HH:MM-HH:MM` with start before end.
    #[error("legal hours `{0}` must look like `08:00-21:00`, with the start before the end")]
    LegalHours(String),
    /// A `cron` expression did not parse.
    #[error("window `{expr}` is not a valid cron expression (sec min hour dom mon dow): {reason}")]
    Cron {
        /// The expression as written.
        expr: String,
        /// The cron crate's message.
        reason: String,
    },
}

impl LegalHours {
    /// 08:00–21:00 local: FTC Telemarketing Sales Rule, 16 CFR 310.4(c), and the TCPA, 47 CFR 64.1200(c)(1).
    pub const DEFAULT: LegalHours = LegalHours {
        start_secs: 8 * 3600,
        end_secs: 21 * 3600,
    };

    /// Parses `"HH:MM-HH:MM"`; `24:00` is allowed as the end.
    ///
    /// Errors: [`WindowError::LegalHours`] when malformed or when start is not before end.
    pub fn parse(s: &str) -> Result<LegalHours, WindowError> {
        let err = || WindowError::LegalHours(s.to_string());
        let (a, b) = s.split_once('-').ok_or_else(err)?;
        let secs = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 3600 + m * 60)
        };
        let (start_secs, end_secs) = (secs(a).ok_or_else(err)?, secs(b).ok_or_else(err)?);
        if start_secs >= end_secs {
            return Err(err());
        }
        Ok(LegalHours { start_secs, end_secs })
    }

    /// True when these hours lie within `other` (they only narrow it).
    pub fn within(&self, other: &LegalHours) -> bool {
        self.start_secs >= other.start_secs && self.end_secs <= other.end_secs
    }

    /// True when a dial may start at local time-of-day `t`.
    pub fn contains(&self, t: NaiveTime) -> bool {
        let s = t.num_seconds_from_midnight();
        s >= self.start_secs && s < self.end_secs
    }
}

/// Why a window is closed at an instant, in one zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Before `start_at` or at/after `end_at`, outside legal hours, or in no cron window.
    Hours,
    /// The local date is a holiday.
    Holiday,
}

/// A campaign's calling rules in time: period, legal hours, holidays and cron windows.
#[derive(Clone, Debug)]
pub struct CallingWindow {
    windows: Vec<Schedule>,
    legal: LegalHours,
    holidays: BTreeSet<NaiveDate>,
    start_at: Option<DateTime<Utc>>,
    end_at: Option<DateTime<Utc>>,
}

/// How far ahead [`CallingWindow::next_open`] searches before giving up (about three years of days).
const MAX_SEARCH_STEPS: usize = 2400;

impl CallingWindow {
    /// Builds a window from `cron` expressions (empty = legal hours only), legal hours and
    /// the optional campaign period (UTC).
    ///
    /// Errors: [`WindowError::Cron`] naming the first expression that does not parse.
    pub fn new(
        windows: &[String],
        legal: LegalHours,
        start_at: Option<DateTime<Utc>>,
        end_at: Option<DateTime<Utc>>,
    ) -> Result<CallingWindow, WindowError> {
        let windows = windows
            .iter()
            .map(|w| {
                Schedule::from_str(w).map_err(|e| WindowError::Cron {
                    expr: w.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CallingWindow {
            windows,
            legal,
            holidays: BTreeSet::new(),
            start_at,
            end_at,
        })
    }

    /// A window with no cron expression: legal hours and the campaign period only. Infallible.
    pub fn legal_only(
        legal: LegalHours,
        start_at: Option<DateTime<Utc>>,
        end_at: Option<DateTime<Utc>>,
    ) -> CallingWindow {
        CallingWindow {
            windows: Vec::new(),
            legal,
            holidays: BTreeSet::new(),
            start_at,
            end_at,
        }
    }

    /// The same window with `holidays`: local dates (in each contact's zone) on which no dial starts.
    pub fn with_holidays(mut self, holidays: impl IntoIterator<Item = NaiveDate>) -> CallingWindow {
        self.holidays = holidays.into_iter().collect();
        self
    }

    /// The holidays in force (local dates).
    pub fn holidays(&self) -> &BTreeSet<NaiveDate> {
        &self.holidays
    }

    /// The legal hours in force.
    pub fn legal_hours(&self) -> LegalHours {
        self.legal
    }

    /// True when the campaign period has ended at `now` (no dial will ever be allowed again).
    pub fn is_over(&self, now: DateTime<Utc>) -> bool {
        self.end_at.is_some_and(|end| now >= end)
    }

    /// True when a dial to a contact in zone `tz` may start at `now` (UTC).
    pub fn is_open(&self, now: DateTime<Utc>, tz: Tz) -> bool {
        self.closed(now, tz).is_none()
    }

    /// Why no dial to a contact in zone `tz` may start at `now` (UTC), or `None` when one may.
    /// A holiday is reported before the hours.
    pub fn closed(&self, now: DateTime<Utc>, tz: Tz) -> Option<Closed> {
        let local = now.with_timezone(&tz);
        if self.holidays.contains(&local.date_naive()) {
            return Some(Closed::Holiday);
        }
        let open = !(self.start_at.is_some_and(|s| now < s) || self.is_over(now))
            && self.legal.contains(local.time())
            && self.minute_matches(local);
        (!open).then_some(Closed::Hours)
    }

    /// True when a dial may start at `now` in **every** zone of `zones` (a number that maps to
    /// several zones is dialled only when all of them are open). False for an empty list.
    pub fn is_open_all(&self, now: DateTime<Utc>, zones: &[Tz]) -> bool {
        !zones.is_empty() && zones.iter().all(|&z| self.is_open(now, z))
    }

    /// Why a dial may not start at `now` in some zone of `zones` (holiday first), or `None`.
    /// An empty list is closed ([`Closed::Hours`]).
    pub fn closed_any(&self, now: DateTime<Utc>, zones: &[Tz]) -> Option<Closed> {
        if zones.is_empty() {
            return Some(Closed::Hours);
        }
        let mut worst = None;
        for &z in zones {
            match self.closed(now, z) {
                Some(Closed::Holiday) => return Some(Closed::Holiday),
                Some(c) => worst = Some(c),
                None => {}
            }
        }
        worst
    }

    /// The earliest instant at or after `after` at which [`Self::is_open_all`] holds, or `None`
    /// when there is none within the search horizon (see [`Self::next_open`]).
    pub fn next_open_all(&self, after: DateTime<Utc>, zones: &[Tz]) -> Option<DateTime<Utc>> {
        let (&first, rest) = zones.split_first()?;
        let mut t = self.next_open(after, first)?;
        for _ in 0..MAX_SEARCH_STEPS {
            let mut moved = false;
            for &z in rest.iter().chain(std::iter::once(&first)) {
                let n = self.next_open(t, z)?;
                if n > t {
                    t = n;
                    moved = true;
                }
            }
            if !moved {
                return Some(t);
            }
        }
        None
    }

    /// True when some cron window matches the local minute that contains `local`.
    fn minute_matches(&self, local: DateTime<Tz>) -> bool {
        if self.windows.is_empty() {
            return true;
        }
        let minute_start =
            local - Duration::seconds(local.second().into()) - Duration::nanoseconds(local.nanosecond().into());
        let probe = minute_start - Duration::nanoseconds(1);
        let minute_end = minute_start + Duration::seconds(60);
        self.windows
            .iter()
            .any(|s| s.after(&probe).next().is_some_and(|m| m < minute_end))
    }

    /// The earliest instant at or after `after` at which [`Self::is_open`] holds for zone `tz`,
    /// or `None` when the campaign period ends first or no window matches within about three years.
    pub fn next_open(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut t = match self.start_at {
            Some(s) if s > after => s,
            _ => after,
        };
        for _ in 0..MAX_SEARCH_STEPS {
            if self.is_over(t) {
                return None;
            }
            if self.is_open(t, tz) {
                return Some(t);
            }
            let local = t.with_timezone(&tz);
            t = if self.holidays.contains(&local.date_naive()) {
                self.next_day_start(local)?
            } else if !self.legal.contains(local.time()) {
                self.next_legal_start(local)?
            } else {
                let next = self.windows.iter().filter_map(|s| s.after(&local).next()).min()?;
                let next = next.with_timezone(&Utc);
                let floor =
                    next - Duration::seconds(next.second().into()) - Duration::nanoseconds(next.nanosecond().into());
                if floor > t { floor } else { next }
            };
        }
        None
    }

    /// Legal start on the local day after `local`'s (skipping a holiday).
    fn next_day_start(&self, local: DateTime<Tz>) -> Option<DateTime<Utc>> {
        self.legal_start_on(local.timezone(), local.date_naive().succ_opt()?)
    }

    /// The next instant after `local` at which legal hours begin, resolving DST gaps forward.
    fn next_legal_start(&self, local: DateTime<Tz>) -> Option<DateTime<Utc>> {
        let mut day = local.date_naive();
        if local.time().num_seconds_from_midnight() >= self.legal.start_secs {
            day = day.succ_opt()?;
        }
        self.legal_start_on(local.timezone(), day)
    }

    /// The instant legal hours begin on local date `day` in `tz`.
    fn legal_start_on(&self, tz: Tz, day: NaiveDate) -> Option<DateTime<Utc>> {
        let start = NaiveTime::from_num_seconds_from_midnight_opt(self.legal.start_secs, 0)?;
        let naive = day.and_time(start);
        // A start that falls in a DST gap does not exist locally; the first instant after the gap does.
        (0..=4)
            .find_map(|h| tz.from_local_datetime(&(naive + Duration::minutes(30 * h))).earliest())
            .map(|d| d.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::{New_York, Phoenix};
    use chrono_tz::Australia::Lord_Howe;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn legal_hours_edges() {
        let w = CallingWindow::new(&[], LegalHours::DEFAULT, None, None).unwrap();
        // 2026-07-01 is EDT (UTC-4): 20:59:59 local = 00:59:59Z next day.
        assert!(w.is_open(utc("2026-07-02T00:59:59Z"), New_York));
        assert!(!w.is_open(utc("2026-07-02T01:00:00Z"), New_York));
        assert!(!w.is_open(utc("2026-07-01T11:59:59Z"), New_York));
        assert!(w.is_open(utc("2026-07-01T12:00:00Z"), New_York));
    }

    #[test]
    fn parse_legal_hours() {
        assert_eq!(LegalHours::parse("08:00-21:00").unwrap(), LegalHours::DEFAULT);
        assert_eq!(LegalHours::parse("00:00-24:00").unwrap().end_secs, 86400);
        assert!(LegalHours::parse("21:00-08:00").is_err());
        assert!(LegalHours::parse("8-21").is_err());
        assert!(LegalHours::parse("08:00-24:30").is_err());
    }

    #[test]
    fn cron_window_in_local_time() {
        let windows = vec!["0 * 9-11,13-19 * * Mon-Fri".to_string()];
        let w = CallingWindow::new(&windows, LegalHours::DEFAULT, None, None).unwrap();
        // Monday 2026-03-02 10:30 in New York (EST, UTC-5) is 15:30Z.
        assert!(w.is_open(utc("2026-03-02T15:30:42Z"), New_York));
        // 12:30 local: lunch gap.
        assert!(!w.is_open(utc("2026-03-02T17:30:00Z"), New_York));
        // Same instant in Phoenix (UTC-7) is 08:30 local: outside 9-11.
        assert!(!w.is_open(utc("2026-03-02T15:30:42Z"), Phoenix));
        // Saturday.
        assert!(!w.is_open(utc("2026-03-07T15:30:00Z"), New_York));
    }

    #[test]
    fn next_open_across_dst_start() {
        // US DST starts Sunday 2026-03-08; Monday 09:00 EDT is 13:00Z (it was 14:00Z the week before).
        let windows = vec!["0 * 9-11 * * Mon-Fri".to_string()];
        let w = CallingWindow::new(&windows, LegalHours::DEFAULT, None, None).unwrap();
        let next = w.next_open(utc("2026-03-06T17:00:00Z"), New_York).unwrap();
        assert_eq!(next, utc("2026-03-09T13:00:00Z"));
        let before = w.next_open(utc("2026-02-27T17:00:00Z"), New_York).unwrap();
        assert_eq!(before, utc("2026-03-02T14:00:00Z"));
        // Phoenix has no DST: 09:00 MST is 16:00Z on both Mondays.
        assert_eq!(
            w.next_open(utc("2026-03-06T23:00:00Z"), Phoenix).unwrap(),
            utc("2026-03-09T16:00:00Z")
        );
    }

    #[test]
    fn lord_howe_half_hour_shift() {
        // Lord Howe is UTC+11 in summer, UTC+10:30 in winter; DST ends 2026-04-05 02:00 local.
        let w = CallingWindow::new(&[], LegalHours::DEFAULT, None, None).unwrap();
        // 2026-04-03: 08:00 local (+11) = 21:00Z on 04-02.
        assert_eq!(
            w.next_open(utc("2026-04-02T12:00:00Z"), Lord_Howe).unwrap(),
            utc("2026-04-02T21:00:00Z")
        );
        // 2026-04-07: 08:00 local (+10:30) = 21:30Z on 04-06.
        assert_eq!(
            w.next_open(utc("2026-04-06T12:00:00Z"), Lord_Howe).unwrap(),
            utc("2026-04-06T21:30:00Z")
        );
    }

    #[test]
    fn period_is_honoured() {
        let w = CallingWindow::new(
            &[],
            LegalHours::parse("00:00-24:00").unwrap(),
            Some(utc("2026-12-01T08:00:00Z")),
            Some(utc("2026-12-20T00:00:00Z")),
        )
        .unwrap();
        assert!(!w.is_open(utc("2026-11-30T12:00:00Z"), New_York));
        assert_eq!(
            w.next_open(utc("2026-11-30T12:00:00Z"), New_York).unwrap(),
            utc("2026-12-01T08:00:00Z")
        );
        assert!(!w.is_open(utc("2026-12-20T00:00:00Z"), New_York));
        assert!(w.next_open(utc("2026-12-20T00:00:00Z"), New_York).is_none());
    }
}
