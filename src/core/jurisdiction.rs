//! State and provincial calling rules on top of the federal ones: hours by local weekday, days
//! with no calls (state holidays), and a cap on calls to one person in any rolling 24 hours.
//! [`StateRules`] is a table of [`StateRule`]s by ISO 3166-2 code (built from the shipped
//! `jurisdictions.toml` and the operator's overrides by `campaign::state_rules_file`);
//! [`StateRules::check`] says whether a contact in some jurisdictions and zones may be dialled at
//! an instant and, if not, which rule stops it and when every rule next allows it. A contact with
//! several jurisdictions (its state column, its postal code and its area code may disagree) is
//! held to **every** one of them at once, read in **every** zone of its number. Pure: `now` is
//! passed in.

use super::types::RefusalReason;
use super::window::LegalHours;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::BTreeSet;
use std::fmt;

/// An ISO 3166-2 subdivision code (`US-FL`, `CA-ON`) or an ISO 3166-1 country code (`CA`, `JM`),
/// upper case, at most 6 bytes. A rule for a country (`CA`) applies to each of its subdivisions.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JurisdictionCode {
    len: u8,
    bytes: [u8; 6],
}

impl JurisdictionCode {
    /// Parses `XX` or `XX-YYY` (letters and digits, case-insensitive; stored upper case).
    /// `None` for anything else.
    pub fn parse(s: &str) -> Option<JurisdictionCode> {
        let s = s.trim();
        let (country, sub) = match s.split_once('-') {
            Some((c, r)) => (c, Some(r)),
            None => (s, None),
        };
        let ok_country = country.len() == 2 && country.bytes().all(|b| b.is_ascii_alphabetic());
        let ok_sub = sub.is_none_or(|r| (1..=3).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !ok_country || !ok_sub || s.len() > 6 {
            return None;
        }
        let mut bytes = [0u8; 6];
        for (i, b) in s.bytes().enumerate() {
            bytes[i] = b.to_ascii_uppercase();
        }
        Some(JurisdictionCode {
            len: s.len() as u8,
            bytes,
        })
    }

    /// The code as text (`US-FL`).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// The country part (`US` of `US-FL`); the code itself for a country.
    pub fn country(&self) -> JurisdictionCode {
        let mut c = *self;
        c.len = 2;
        c.bytes[2..].fill(0);
        c
    }
}

impl fmt::Display for JurisdictionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for JurisdictionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_str())
    }
}

/// One jurisdiction's calling rules, in the called person's local time.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRule {
    /// Whom it applies to: a subdivision, or a whole country.
    pub code: JurisdictionCode,
    /// Its name (`Florida`).
    pub name: String,
    /// The statute or rule it comes from, as cited in the data file.
    pub statute: String,
    /// The day the entry was last checked against its source.
    pub checked: NaiveDate,
    /// What is uncertain or simplified about the entry, when anything is.
    pub note: Option<String>,
    /// Allowed hours per local weekday, Monday first (`Weekday::num_days_from_monday`); `None`
    /// means no call may start that day.
    pub hours: [Option<LegalHours>; 7],
    /// Local dates on which no call may start (state holidays).
    pub holidays: BTreeSet<NaiveDate>,
    /// Most call attempts to one person in any rolling 24 hours, when capped.
    pub max_calls_24h: Option<u32>,
}

/// Why one rule refuses an instant, before it is mapped to a [`RefusalReason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Hours,
    Day,
    Cap,
}

impl Stop {
    fn reason(self) -> RefusalReason {
        match self {
            Stop::Hours => RefusalReason::StateHours,
            Stop::Day => RefusalReason::StateDay,
            Stop::Cap => RefusalReason::StateCap,
        }
    }
}

const DAY: i64 = 86_400;

impl StateRule {
    /// Whether the day or the hour stops a dial starting at `now` in zone `tz`.
    fn time_stop(&self, tz: Tz, now: DateTime<Utc>) -> Option<Stop> {
        let local = now.with_timezone(&tz);
        let date = local.date_naive();
        if self.holidays.contains(&date) {
            return Some(Stop::Day);
        }
        match self.hours[date.weekday().num_days_from_monday() as usize] {
            None => Some(Stop::Day),
            Some(h) if !h.contains(local.time()) => Some(Stop::Hours),
            Some(_) => None,
        }
    }

    /// Attempts started in the 24 hours before `now` (`recent` sorted oldest first), and when the
    /// cap next allows one, if it stops a dial at `now`.
    fn cap_until(&self, recent: &[DateTime<Utc>], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cap = self.max_calls_24h? as usize;
        let window: Vec<DateTime<Utc>> = recent
            .iter()
            .copied()
            .filter(|t| *t > now - Duration::hours(24) && *t <= now)
            .collect();
        if window.len() < cap {
            return None;
        }
        // Dropping the oldest `len - cap + 1` brings the count under the cap.
        Some(window[window.len() - cap] + Duration::hours(24))
    }

    /// The instants (UTC) at which this rule's allowed hours open in `tz`, on the 16 local days
    /// from `from`'s.
    fn openings(&self, tz: Tz, from: DateTime<Utc>, out: &mut Vec<DateTime<Utc>>) {
        let first = from.with_timezone(&tz).date_naive();
        for k in 0..16 {
            let Some(date) = first.checked_add_signed(Duration::days(k)) else {
                break;
            };
            if self.holidays.contains(&date) {
                continue;
            }
            let Some(h) = self.hours[date.weekday().num_days_from_monday() as usize] else {
                continue;
            };
            // Walk forward over a DST gap: the first local minute at or after the opening.
            let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
            for step in 0..=120 {
                let local = midnight + Duration::seconds(i64::from(h.start_secs) + step * 60);
                if let Some(t) = tz.from_local_datetime(&local).earliest() {
                    out.push(t.with_timezone(&Utc));
                    break;
                }
            }
        }
    }
}

/// Every shipped and operator-given jurisdiction rule, by code.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateRules {
    rules: Vec<StateRule>,
}

impl StateRules {
    /// A table holding `rules`; a later rule with the code of an earlier one replaces it (how an
    /// operator's file overrides a shipped entry).
    pub fn new(rules: Vec<StateRule>) -> StateRules {
        let mut out: Vec<StateRule> = Vec::with_capacity(rules.len());
        for r in rules {
            match out.iter_mut().find(|o| o.code == r.code) {
                Some(o) => *o = r,
                None => out.push(r),
            }
        }
        out.sort_by_key(|r| r.code);
        StateRules { rules: out }
    }

    /// The rules, sorted by code.
    pub fn rules(&self) -> &[StateRule] {
        &self.rules
    }

    /// True when the table has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule for exactly `code`.
    pub fn get(&self, code: JurisdictionCode) -> Option<&StateRule> {
        self.rules
            .binary_search_by_key(&code, |r| r.code)
            .ok()
            .map(|i| &self.rules[i])
    }

    /// The rules that apply to a contact in `codes`: each code's own and its country's.
    pub fn applicable(&self, codes: &[JurisdictionCode]) -> Vec<&StateRule> {
        let mut out: Vec<&StateRule> = Vec::new();
        for c in codes {
            for k in [*c, c.country()] {
                if let Some(r) = self.get(k)
                    && !out.iter().any(|o| o.code == r.code)
                {
                    out.push(r);
                }
            }
        }
        out
    }

    /// Checks a dial starting at `now` to a contact in `codes` whose number may be in `zones`,
    /// with `recent` the start instants of its attempts (at least the last 24 hours, oldest
    /// first). Every applicable rule is read in every zone. On refusal, the reason of the first
    /// rule that stops it (`state_day`, `state_hours`, `state_cap`) and the earliest instant at
    /// which every rule allows a dial (searched over the next 16 local days; `None` when none
    /// does, for example a rule with no allowed day).
    pub fn check(
        &self,
        codes: &[JurisdictionCode],
        zones: &[Tz],
        recent: &[DateTime<Utc>],
        now: DateTime<Utc>,
    ) -> Result<(), (RefusalReason, Option<DateTime<Utc>>)> {
        if self.rules.is_empty() || codes.is_empty() {
            return Ok(());
        }
        let rules = self.applicable(codes);
        match first_stop(&rules, zones, recent, now) {
            None => Ok(()),
            Some(stop) => Err((stop.reason(), next_allowed(&rules, zones, recent, now))),
        }
    }

    /// Every reason the applicable rules refuse a dial at `now` (each at most once), for
    /// `dialerd preflight`; empty when they allow it.
    pub fn all_reasons(
        &self,
        codes: &[JurisdictionCode],
        zones: &[Tz],
        recent: &[DateTime<Utc>],
        now: DateTime<Utc>,
    ) -> Vec<RefusalReason> {
        let mut out = Vec::new();
        for r in self.applicable(codes) {
            let stops = zones
                .iter()
                .filter_map(|z| r.time_stop(*z, now))
                .chain(r.cap_until(recent, now).map(|_| Stop::Cap));
            for s in stops {
                if !out.contains(&s.reason()) {
                    out.push(s.reason());
                }
            }
        }
        out
    }
}

/// The first stop of any rule at `now`, days before hours before the cap.
fn first_stop(rules: &[&StateRule], zones: &[Tz], recent: &[DateTime<Utc>], now: DateTime<Utc>) -> Option<Stop> {
    let mut hours = false;
    for r in rules {
        for z in zones {
            match r.time_stop(*z, now) {
                Some(Stop::Day) => return Some(Stop::Day),
                Some(_) => hours = true,
                None => {}
            }
        }
    }
    if hours {
        return Some(Stop::Hours);
    }
    rules
        .iter()
        .any(|r| r.cap_until(recent, now).is_some())
        .then_some(Stop::Cap)
}

/// The earliest instant at or after `now` that every rule allows in every zone. The allowed set
/// is an intersection of unions of intervals, so its first instant is `now`, the opening of some
/// rule's hours in some zone, or the moment a cap lets one more call through: only those are tried.
fn next_allowed(
    rules: &[&StateRule],
    zones: &[Tz],
    recent: &[DateTime<Utc>],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut tries = vec![now];
    for r in rules {
        for z in zones {
            r.openings(*z, now, &mut tries);
        }
    }
    tries.extend(recent.iter().map(|t| *t + Duration::hours(24)));
    tries.retain(|t| *t >= now && *t < now + Duration::seconds(16 * DAY));
    tries.sort_unstable();
    tries.dedup();
    tries
        .into_iter()
        .find(|t| first_stop(rules, zones, recent, *t).is_none())
}
