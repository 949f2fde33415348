//! A running campaign's ETA to the end of its list at the current pace, for `dialerd status`
//! and `GET /v1/campaigns`: the contacts still to finish divided by the rate at which contacts
//! reached a final disposition over the last [`ETA_WINDOW_SECS`] seconds.

use super::{Store, StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// How far back the pace is measured, in seconds (15 minutes).
pub const ETA_WINDOW_SECS: i64 = 15 * 60;

/// The pace is not trusted over less than this many seconds of dialing.
const MIN_OBSERVED_SECS: f64 = 10.0;

/// A campaign's ETA. The pace counts contacts that reached a final disposition (completed,
/// voicemail left, exhausted, DNC, invalid number) in the window; contacts whose retry is
/// scheduled further out than the ETA will take longer, so the ETA is a lower bound when many
/// retries are waiting.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Eta {
    /// Contacts not yet in a final status (pending, scheduled, in progress).
    pub remaining: u64,
    /// Contacts that reached a final disposition in the window.
    pub finished_in_window: u64,
    /// The seconds the pace was measured over: [`ETA_WINDOW_SECS`], or less when the campaign's
    /// first attempt is more recent.
    pub window_secs: f64,
    /// Contacts finished per minute at that pace.
    pub per_minute: f64,
    /// Seconds until the list is done at that pace; `None` when nothing finished in the window
    /// (window closed, paused, or just started) or nothing remains (then 0).
    pub seconds: Option<f64>,
    /// `now + seconds`, UTC.
    pub at: Option<DateTime<Utc>>,
}

/// The ETA at `now` of a list with `remaining` contacts left, `finished` of them finished over
/// the last `window_secs` seconds. Pure: no clock, no I/O.
pub fn estimate(remaining: u64, finished: u64, window_secs: f64, now: DateTime<Utc>) -> Eta {
    let per_minute = if window_secs > 0.0 {
        finished as f64 * 60.0 / window_secs
    } else {
        0.0
    };
    let seconds = if remaining == 0 {
        Some(0.0)
    } else if finished == 0 || window_secs < MIN_OBSERVED_SECS {
        None
    } else {
        Some(remaining as f64 * window_secs / finished as f64)
    };
    let at = seconds
        .and_then(|s| chrono::TimeDelta::try_milliseconds((s * 1000.0).round() as i64))
        .and_then(|d| now.checked_add_signed(d));
    Eta {
        remaining,
        finished_in_window: finished,
        window_secs,
        per_minute,
        seconds,
        at,
    }
}

/// Contacts not yet final, from a status count map (`pending`, `scheduled`, `in_progress`).
pub fn remaining_contacts(contacts: &BTreeMap<String, u64>) -> u64 {
    ["pending", "scheduled", "in_progress"]
        .iter()
        .filter_map(|s| contacts.get(*s))
        .sum()
}

/// The ETA at `now` from the engine's two figures: the contacts that finished at or after
/// `since_ms` (the window's start, ms) and the start of the campaign's first attempt (ms), which
/// shortens the window when it is more recent. Pure.
pub(super) fn from_window(
    remaining: u64,
    finished: i64,
    first_started: Option<i64>,
    since_ms: i64,
    now: DateTime<Utc>,
) -> Eta {
    let start = first_started.map_or(since_ms, |first| first.max(since_ms));
    let window_secs = (now - from_ms(start)).num_milliseconds().max(0) as f64 / 1000.0;
    estimate(remaining, finished.max(0) as u64, window_secs, now)
}

/// The start of the pace window ending at `now`, ms since the epoch.
pub(super) fn window_start_ms(now: DateTime<Utc>) -> i64 {
    to_ms(now) - ETA_WINDOW_SECS * 1000
}

impl Store {
    /// The ETA of `campaign` at `now` given its `remaining` contacts: the pace counts its
    /// attempts that ended in the last [`ETA_WINDOW_SECS`] seconds with a final disposition
    /// (`completed`, `voicemail_left`, `exhausted`, `dnc`, `invalid_number`).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn campaign_eta(&self, campaign: &str, remaining: u64, now: DateTime<Utc>) -> Result<Eta, StoreError> {
        on_engine!(self, campaign_eta(campaign, remaining, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T15:00:00Z").unwrap().to_utc()
    }

    #[test]
    fn remaining_over_the_pace() {
        // 90 finished in 15 minutes = 6 a minute; 300 left → 50 minutes.
        let e = estimate(300, 90, 900.0, now());
        assert_eq!(e.per_minute, 6.0);
        assert_eq!(e.seconds, Some(3000.0));
        assert_eq!(e.at, Some(now() + chrono::TimeDelta::minutes(50)));
    }

    #[test]
    fn no_pace_no_eta_and_nothing_left_is_now() {
        assert_eq!(estimate(10, 0, 900.0, now()).seconds, None);
        assert_eq!(estimate(10, 5, 3.0, now()).seconds, None, "under 10 s of dialing");
        let done = estimate(0, 0, 900.0, now());
        assert_eq!((done.seconds, done.at), (Some(0.0), Some(now())));
    }

    #[test]
    fn only_unfinished_statuses_remain() {
        let counts: BTreeMap<String, u64> = [
            ("pending", 4),
            ("scheduled", 3),
            ("in_progress", 2),
            ("done", 50),
            ("dnc", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(remaining_contacts(&counts), 9);
    }
}
