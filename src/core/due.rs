//! Plan-time checks: a campaign's [`Rules`], a due [`Candidate`], and [`check_due`], which says
//! whether the candidate may be dialled now (status, DNC, attempt limits, gap, hold, holidays,
//! hours in every zone) or which [`Refusal`] stops it and until when. Pure: `now` is passed in.

use super::compliance::{AbandonCap, AttemptHistory, AttemptLimits};
use super::estimate::Priors;
use super::pacing::PacingConfig;
use super::policy::Policy;
use super::types::{ContactId, ContactStatus, RefusalReason};
use super::window::{CallingWindow, Closed};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A campaign's rules as the core needs them; built from a validated campaign file.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Agent slots (`max_concurrent`).
    pub slots: u32,
    /// Pacing mode and its settings.
    pub pacing: PacingConfig,
    /// Ring timeout in seconds.
    pub ring_timeout_s: f64,
    /// Prior beliefs for the estimators.
    pub priors: Priors,
    /// Retry, voicemail and callback policy (holds `max_attempts`).
    pub policy: Policy,
    /// Campaign period, legal hours, holidays and cron windows.
    pub window: CallingWindow,
    /// The abandonment cap (US TSR 30 days / Ofcom 24 hours).
    pub cap: AbandonCap,
    /// Per-day limit, minimum gap, and the hold after an abandoned call.
    pub limits: AttemptLimits,
}

/// A contact the store believes is due, as offered to [`Dialer::plan`].
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The contact.
    pub contact: ContactId,
    /// Attempts already made.
    pub attempts: u32,
    /// Current status.
    pub status: ContactStatus,
    /// Earliest instant of the next attempt (UTC).
    pub next_attempt_at: DateTime<Utc>,
    /// The zones its calling window is read in: one, or every zone its number may be in.
    pub zones: Vec<Tz>,
    /// The number is on the global or the campaign's do-not-call list (checked by the store).
    pub dnc: bool,
    /// Start instants (UTC) of its attempts in at least the last 48 hours.
    pub recent_attempts: Vec<DateTime<Utc>>,
    /// Start of its last attempt (UTC).
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// End of its last abandoned call (UTC).
    pub last_abandoned_at: Option<DateTime<Utc>>,
}

impl Candidate {
    /// A candidate with no attempt history and not on a DNC list.
    pub fn new(
        contact: ContactId,
        attempts: u32,
        status: ContactStatus,
        next_attempt_at: DateTime<Utc>,
        zones: Vec<Tz>,
    ) -> Candidate {
        Candidate {
            contact,
            attempts,
            status,
            next_attempt_at,
            zones,
            dnc: false,
            recent_attempts: Vec::new(),
            last_attempt_at: None,
            last_abandoned_at: None,
        }
    }
}

/// Why a candidate may not be dialled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its status allows no dial (in progress, done, exhausted, dnc).
    NotDialable,
    /// `next_attempt_at` is in the future.
    NotYetDue,
    /// A call to this contact is already in flight.
    InFlight,
    /// A compliance rule refuses it; `until` is the earliest instant (UTC) that rule could allow
    /// it, `None` when it never will (DNC, lifetime attempt limit, the campaign period is over).
    Compliance {
        /// The rule.
        reason: RefusalReason,
        /// When to look again.
        until: Option<DateTime<Utc>>,
    },
}

/// A candidate [`Dialer::plan`] refused for compliance, for the driver to persist and defer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The contact.
    pub contact: ContactId,
    /// The rule.
    pub reason: RefusalReason,
    /// When the rule could allow it (UTC); `None` for never.
    pub until: Option<DateTime<Utc>>,
}

/// Checks every rule that makes a contact due at `now`, other than pacing and the abandonment
/// cap: status, schedule, DNC, lifetime and per-day attempt limits, the 72-hour hold after an
/// abandoned call, the minimum gap, holidays and calling hours in **every** candidate zone.
pub fn check_due(rules: &Rules, c: &Candidate, now: DateTime<Utc>) -> Result<(), Refusal> {
    let refuse = |reason, until| Err(Refusal::Compliance { reason, until });
    if !c.status.is_dialable() {
        return Err(Refusal::NotDialable);
    }
    if c.next_attempt_at > now {
        return Err(Refusal::NotYetDue);
    }
    if c.dnc {
        return refuse(RefusalReason::Dnc, None);
    }
    if c.attempts >= rules.policy.retry.max_attempts {
        return refuse(RefusalReason::AttemptLimit, None);
    }
    let history = AttemptHistory {
        recent: &c.recent_attempts,
        last_attempt_at: c.last_attempt_at,
        last_abandoned_at: c.last_abandoned_at,
    };
    if let Err((reason, until)) = rules.limits.check(&history, &c.zones, now) {
        return refuse(reason, until);
    }
    match rules.window.closed_any(now, &c.zones) {
        None => Ok(()),
        Some(closed) => {
            let reason = match closed {
                Closed::Holiday => RefusalReason::Holiday,
                Closed::Hours => RefusalReason::OutsideHours,
            };
            refuse(reason, rules.window.next_open_all(now, &c.zones))
        }
    }
}
