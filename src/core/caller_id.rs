//! Caller-ID pools: which of a campaign's numbers presents each call, and the health of each
//! number. Local presence picks a pool number in the contact's NANP area code, else one in a
//! jurisdiction (state or province) of the contact, else the campaign's default; a retry keeps
//! the number its contact saw, so a callback reaches it. Each number's answer rate and
//! short-call rate are kept over a rolling window; a number whose answer rate falls well below
//! the rest of the pool's (the sign of a "spam likely" label) is rested for a while, and a
//! per-number cap bounds its dials in any rolling 24 hours. Pure: every call takes `now`.

use super::jurisdiction::JurisdictionCode;
use super::jurisdiction_map::area_code_jurisdiction;
use super::types::ContactId;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// A number of a pool, with what local presence matches it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolNumber {
    /// The number, E.164.
    pub e164: String,
    /// Its NANP area code (`+1 NPA …`); `None` outside North America.
    pub area_code: Option<u16>,
    /// The state or province of that area code (libphonenumber's geocoding data).
    pub jurisdiction: Option<JurisdictionCode>,
}

impl PoolNumber {
    /// Reads the area code and its jurisdiction off an E.164 number.
    pub fn new(e164: &str) -> PoolNumber {
        PoolNumber {
            e164: e164.to_string(),
            area_code: area_code(e164),
            jurisdiction: area_code_jurisdiction(e164),
        }
    }
}

/// The NANP area code of an E.164 number (`+1` and ten digits); `None` for anything else.
pub fn area_code(e164: &str) -> Option<u16> {
    let digits = e164.strip_prefix("+1")?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.get(..3)?.parse().ok()
}

/// When a number is rested, and the cap on its dials.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthPolicy {
    /// The rolling window answer and short-call rates are measured over.
    pub window: TimeDelta,
    /// Ended calls a number, and the rest of the pool, need in the window before it is judged.
    pub min_calls: u32,
    /// A number is rested when its answer rate is below this share (0..1) of the rest of the pool's.
    pub rest_below: f64,
    /// How long a rested number is kept off new contacts.
    pub rest_for: TimeDelta,
    /// Most dials from one pool number in any rolling 24 hours; `None` for no cap.
    pub daily_cap: Option<u32>,
    /// An answered call shorter than this many seconds counts as a short call.
    pub short_call_s: f64,
}

impl Default for HealthPolicy {
    fn default() -> HealthPolicy {
        HealthPolicy {
            window: TimeDelta::hours(6),
            min_calls: 30,
            rest_below: 0.5,
            rest_for: TimeDelta::hours(4),
            daily_cap: None,
            short_call_s: 10.0,
        }
    }
}

/// A campaign's caller IDs.
#[derive(Clone, Debug, PartialEq)]
pub struct CallerIdPool {
    /// The number of last resort, E.164: used when no pool number fits; never rested or capped.
    pub default: String,
    /// The pool, in file order, without duplicates and without the default.
    pub numbers: Vec<PoolNumber>,
    /// Health and cap rules.
    pub health: HealthPolicy,
}

impl CallerIdPool {
    /// A pool of just `default` (the single `caller_id = "+1…"` form).
    pub fn single(default: &str) -> CallerIdPool {
        CallerIdPool {
            default: default.to_string(),
            numbers: Vec::new(),
            health: HealthPolicy::default(),
        }
    }

    /// Whether `number` is the default or in the pool.
    pub fn contains(&self, number: &str) -> bool {
        number == self.default || self.numbers.iter().any(|n| n.e164 == number)
    }

    /// Every number: the default first, then the pool.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.default.as_str()).chain(self.numbers.iter().map(|n| n.e164.as_str()))
    }
}

/// Why a number was picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PickReason {
    /// The number this contact was called from before.
    Retry,
    /// A pool number in the contact's area code.
    AreaCode,
    /// A pool number in one of the contact's jurisdictions.
    State,
    /// The campaign's default.
    Default,
}

/// What to present on a dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Present `number`.
    Use {
        /// The caller ID, E.164.
        number: String,
        /// Why it was chosen.
        reason: PickReason,
    },
    /// The contact's own number is at its daily cap: dial it no earlier than `until` (UTC).
    Wait {
        /// The number it keeps.
        number: String,
        /// When the oldest dial in its 24 hours leaves the count.
        until: DateTime<Utc>,
    },
}

/// Ended calls of one minute, for the rates.
#[derive(Clone, Copy, Debug, Default)]
struct EndMinute {
    minute: i64,
    calls: u32,
    answered: u32,
    short: u32,
}

/// One number's history, bounded whatever the dial rate: dials and ends are counted per minute
/// (at most a day's and a window's minutes), and only the last `daily_cap` dial instants are
/// kept, which is all the cap needs.
#[derive(Clone, Debug, Default)]
struct NumberState {
    /// Dials per minute (Unix minute, count), oldest first, over the last 24 hours.
    dial_minutes: VecDeque<(i64, u32)>,
    /// Sum of `dial_minutes`.
    dials: u32,
    /// The last `daily_cap` dial instants, oldest first.
    last_dials: VecDeque<DateTime<Utc>>,
    /// Ended calls per minute over the health window, oldest first.
    ends: VecDeque<EndMinute>,
    rested_until: Option<DateTime<Utc>>,
}

fn minute(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

/// Whether the whole minute `m` is at or before `t`: only then are its counts forgotten, so a
/// count by minutes is never below the exact one.
fn minute_before(m: i64, t: DateTime<Utc>) -> bool {
    (m + 1) * 60 <= t.timestamp()
}

/// A change in a number's health, for the log and the store.
#[derive(Clone, Debug, PartialEq)]
pub enum HealthChange {
    /// `number` is rested until `until` (UTC): its answer rate over the window was
    /// `answer_rate` against the rest of the pool's `pool_rate` (both 0..1).
    Rested {
        /// The number.
        number: String,
        /// End of the rest (UTC).
        until: DateTime<Utc>,
        /// Its answer rate, 0..1.
        answer_rate: f64,
        /// The rest of the pool's, 0..1.
        pool_rate: f64,
        /// Its ended calls in the window.
        calls: u32,
    },
    /// `number`'s rest is over; its rates start again from nothing.
    Resumed {
        /// The number.
        number: String,
    },
}

/// One number's figures, for `dialerd status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumberStats {
    /// The number, E.164.
    pub number: String,
    /// Dials in the last 24 hours.
    pub dials_24h: u32,
    /// Ended calls in the window.
    pub calls: u32,
    /// Answered / ended in the window, 0..1; `None` without calls.
    pub answer_rate: Option<f64>,
    /// Short answered calls / answered in the window, 0..1; `None` without answers.
    pub short_call_rate: Option<f64>,
    /// End of its rest (UTC), when rested.
    pub rested_until: Option<DateTime<Utc>>,
}

/// The health of a pool's numbers: dials for the cap, ended calls for the rates, rests.
#[derive(Clone, Debug)]
pub struct PoolHealth {
    policy: HealthPolicy,
    numbers: BTreeMap<String, NumberState>,
}

fn rate(num: u32, den: u32) -> Option<f64> {
    (den > 0).then(|| f64::from(num) / f64::from(den))
}

impl PoolHealth {
    /// No history.
    pub fn new(policy: HealthPolicy) -> PoolHealth {
        PoolHealth {
            policy,
            numbers: BTreeMap::new(),
        }
    }

    /// The rules it applies.
    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    fn forget_old(&mut self, now: DateTime<Utc>) {
        let day = now - TimeDelta::hours(24);
        let window = now - self.policy.window;
        for st in self.numbers.values_mut() {
            while let Some(&(m, n)) = st.dial_minutes.front()
                && minute_before(m, day)
            {
                st.dial_minutes.pop_front();
                st.dials -= n;
            }
            while st.ends.front().is_some_and(|e| minute_before(e.minute, window)) {
                st.ends.pop_front();
            }
        }
    }

    /// A dial from `number` at `at` (UTC).
    pub fn record_dial(&mut self, number: &str, at: DateTime<Utc>) {
        let cap = self.policy.daily_cap.map_or(0, |c| c as usize);
        let st = self.numbers.entry(number.to_string()).or_default();
        let m = minute(at);
        let i = st.dial_minutes.partition_point(|(x, _)| *x < m);
        match st.dial_minutes.get_mut(i) {
            Some((x, n)) if *x == m => *n += 1,
            _ => st.dial_minutes.insert(i, (m, 1)),
        }
        st.dials += 1;
        if cap > 0 {
            let i = st.last_dials.partition_point(|t| *t <= at);
            st.last_dials.insert(i, at);
            while st.last_dials.len() > cap {
                st.last_dials.pop_front();
            }
        }
    }

    /// A call from `number` ended at `at` (UTC), answered by a person or a machine at
    /// `answered_at` (UTC) or never; an answered call shorter than `short_call_s` is short.
    pub fn record_end(&mut self, number: &str, at: DateTime<Utc>, answered_at: Option<DateTime<Utc>>) {
        let answered = answered_at.is_some();
        let short = answered_at
            .is_some_and(|a| ((at - a).num_milliseconds().max(0) as f64 / 1000.0) < self.policy.short_call_s);
        let st = self.numbers.entry(number.to_string()).or_default();
        let m = minute(at);
        let i = st.ends.partition_point(|e| e.minute < m);
        if st.ends.get(i).is_none_or(|e| e.minute != m) {
            st.ends.insert(
                i,
                EndMinute {
                    minute: m,
                    ..EndMinute::default()
                },
            );
        }
        if let Some(e) = st.ends.get_mut(i) {
            e.calls += 1;
            e.answered += u32::from(answered);
            e.short += u32::from(short);
        }
    }

    /// Rests `number` until `until` (a rest read back from the store after a restart).
    pub fn restore_rest(&mut self, number: &str, until: DateTime<Utc>) {
        self.numbers.entry(number.to_string()).or_default().rested_until = Some(until);
    }

    /// Whether `number` is rested at `now`.
    pub fn is_rested(&self, number: &str, now: DateTime<Utc>) -> bool {
        self.numbers
            .get(number)
            .and_then(|s| s.rested_until)
            .is_some_and(|t| t > now)
    }

    /// Dials from `number` in the 24 hours before `now`, counted by whole minutes: a dial in the
    /// minute that is leaving the day still counts, so the count is never below the exact one.
    pub fn dials_24h(&self, number: &str, now: DateTime<Utc>) -> u32 {
        let (day, end) = (now - TimeDelta::hours(24), minute(now));
        self.numbers.get(number).map_or(0, |st| {
            let old: u32 = st
                .dial_minutes
                .iter()
                .take_while(|(m, _)| minute_before(*m, day))
                .map(|(_, n)| n)
                .sum();
            let ahead: u32 = st
                .dial_minutes
                .iter()
                .rev()
                .take_while(|(m, _)| *m > end)
                .map(|(_, n)| n)
                .sum();
            st.dials - old - ahead
        })
    }

    /// When `number`, at its cap at `now`, may dial again (UTC): when the oldest of its last
    /// `daily_cap` dials leaves the 24 hours. `None` when it is under its cap or has none.
    pub fn cap_frees_at(&self, number: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cap = self.policy.daily_cap? as usize;
        let st = self.numbers.get(number)?;
        let day = now - TimeDelta::hours(24);
        let mut inside = st.last_dials.iter().filter(|t| **t > day && **t <= now);
        let oldest = *inside.next()?;
        (1 + inside.count() >= cap).then(|| oldest + TimeDelta::hours(24))
    }

    fn counts(&self, number: &str) -> (u32, u32, u32) {
        self.numbers.get(number).map_or((0, 0, 0), |st| {
            st.ends
                .iter()
                .fold((0, 0, 0), |(c, a, sh), e| (c + e.calls, a + e.answered, sh + e.short))
        })
    }

    /// Ends rests that are over and rests pool numbers whose answer rate over the window is below
    /// `rest_below` × the rest of the pool's (each side with at least `min_calls` ended calls).
    /// The default is judged with the pool but never rested. Returns what changed.
    pub fn review(&mut self, pool: &CallerIdPool, now: DateTime<Utc>) -> Vec<HealthChange> {
        self.forget_old(now);
        let mut changes = Vec::new();
        for (number, s) in &mut self.numbers {
            if s.rested_until.is_some_and(|t| t <= now) {
                s.rested_until = None;
                // What led to the rest is not held against it again.
                s.ends.clear();
                changes.push(HealthChange::Resumed { number: number.clone() });
            }
        }
        let total = pool.all().fold((0u32, 0u32), |(c, a), n| {
            let (calls, answered, _) = self.counts(n);
            (c + calls, a + answered)
        });
        let min = self.policy.min_calls.max(1);
        for n in &pool.numbers {
            if self.is_rested(&n.e164, now) {
                continue;
            }
            let (calls, answered, _) = self.counts(&n.e164);
            let (others_calls, others_answered) = (total.0 - calls, total.1 - answered);
            if calls < min || others_calls < min {
                continue;
            }
            let (Some(own), Some(others)) = (rate(answered, calls), rate(others_answered, others_calls)) else {
                continue;
            };
            if own < self.policy.rest_below * others {
                let until = now + self.policy.rest_for;
                self.restore_rest(&n.e164, until);
                changes.push(HealthChange::Rested {
                    number: n.e164.clone(),
                    until,
                    answer_rate: own,
                    pool_rate: others,
                    calls,
                });
            }
        }
        changes
    }

    /// Every number's figures at `now`, the default first.
    pub fn stats(&self, pool: &CallerIdPool, now: DateTime<Utc>) -> Vec<NumberStats> {
        pool.all()
            .map(|n| {
                let (calls, answered, short) = self.counts(n);
                NumberStats {
                    number: n.to_string(),
                    dials_24h: self.dials_24h(n, now),
                    calls,
                    answer_rate: rate(answered, calls),
                    short_call_rate: rate(short, answered),
                    rested_until: self.numbers.get(n).and_then(|s| s.rested_until).filter(|t| *t > now),
                }
            })
            .collect()
    }
}

/// A stable spread of contacts over equal candidates (SplitMix64 of the id).
fn spread(contact: ContactId) -> u64 {
    let mut z = (contact as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Picks the caller ID for a dial of `contact` (number `phone`, jurisdictions `jurisdictions`)
/// at `now`. `previous` is the number it was called from before: kept while it is still the
/// default or in the pool, even when rested (the contact knows it), and waited for when at its
/// cap. Otherwise: the least-dialled usable (not rested, under its cap) pool number in the
/// contact's area code, else in one of its jurisdictions, else the default.
pub fn pick(
    pool: &CallerIdPool,
    health: &PoolHealth,
    contact: ContactId,
    phone: &str,
    jurisdictions: &[JurisdictionCode],
    previous: Option<&str>,
    now: DateTime<Utc>,
) -> Pick {
    if let Some(p) = previous.filter(|p| pool.contains(p)) {
        if p != pool.default
            && let Some(until) = health.cap_frees_at(p, now)
        {
            return Pick::Wait {
                number: p.to_string(),
                until,
            };
        }
        return Pick::Use {
            number: p.to_string(),
            reason: PickReason::Retry,
        };
    }
    let usable = |n: &&PoolNumber| !health.is_rested(&n.e164, now) && health.cap_frees_at(&n.e164, now).is_none();
    let best = |matching: Vec<&PoolNumber>| {
        matching
            .into_iter()
            .min_by_key(|n| {
                let tie = spread(contact)
                    ^ spread(
                        n.e164
                            .bytes()
                            .fold(0i64, |h, b| h.wrapping_mul(31).wrapping_add(i64::from(b))),
                    );
                (health.dials_24h(&n.e164, now), tie)
            })
            .map(|n| n.e164.clone())
    };
    let code = area_code(phone);
    let local: Vec<&PoolNumber> = pool
        .numbers
        .iter()
        .filter(|n| code.is_some() && n.area_code == code)
        .filter(usable)
        .collect();
    if let Some(number) = best(local) {
        return Pick::Use {
            number,
            reason: PickReason::AreaCode,
        };
    }
    let state: Vec<&PoolNumber> = pool
        .numbers
        .iter()
        .filter(|n| n.jurisdiction.is_some_and(|j| jurisdictions.contains(&j)))
        .filter(usable)
        .collect();
    if let Some(number) = best(state) {
        return Pick::Use {
            number,
            reason: PickReason::State,
        };
    }
    Pick::Use {
        number: pool.default.clone(),
        reason: PickReason::Default,
    }
}
