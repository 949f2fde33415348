//! Plan-time checks: a campaign's [`Rules`], a due [`Candidate`], and [`check_due`], which says
//! whether the candidate may be dialled now (status, DNC, consent, attempt limits, gap, hold,
//! holidays, hours in every zone, state rules) or which [`Refusal`] stops it and until when;
//! [`all_refusals`] lists every rule that stops it, for `dialerd preflight`. Pure: `now` is
//! passed in.

use super::compliance::{AbandonCap, AttemptHistory, AttemptLimits};
use super::estimate::Priors;
use super::jurisdiction::{JurisdictionCode, StateRules};
use super::pacing::PacingConfig;
use super::policy::Policy;
use super::types::{ContactId, ContactStatus, RefusalReason};
use super::window::{CallingWindow, Closed};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::sync::Arc;

/// The kind of consent a contact gave to be called, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConsentKind {
    /// Prior express consent (47 U.S.C. 227(b)(1)(A)/(B)).
    Express,
    /// Prior express written consent (47 CFR 64.1200(f)(9)), needed for telemarketing.
    Written,
}

impl ConsentKind {
    /// Parses `express` or `written` (case-insensitive).
    pub fn parse(s: &str) -> Option<ConsentKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "express" => Some(ConsentKind::Express),
            "written" => Some(ConsentKind::Written),
            _ => None,
        }
    }

    /// `express` or `written`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentKind::Express => "express",
            ConsentKind::Written => "written",
        }
    }
}

/// A contact's consent evidence as the core needs it: its kind and when it was given (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consent {
    /// Express or written.
    pub kind: ConsentKind,
    /// When the consent was given (UTC); evidence dated after the dial does not count.
    pub at: DateTime<Utc>,
}

/// Whether a campaign's calls need consent, and of which kind (`[compliance] consent`). Calls
/// with an AI-generated voice are calls with an "artificial or prerecorded voice" under the TCPA
/// (FCC Declaratory Ruling FCC 24-17, February 2024; 47 U.S.C. 227(b)).
pub type ConsentRequirement = Option<ConsentKind>;

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
    /// State and provincial rules (hours by weekday, holidays, rolling 24-hour caps); empty
    /// when the campaign turns them off (sim trunk only).
    pub state_rules: Arc<StateRules>,
    /// The consent every contact must have given (`None`: no consent needed).
    pub consent: ConsentRequirement,
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
    /// Every jurisdiction it is in (state column, postal code, area code), sorted.
    pub jurisdictions: Vec<JurisdictionCode>,
    /// Its consent evidence, when the list has one.
    pub consent: Option<Consent>,
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
            jurisdictions: Vec::new(),
            consent: None,
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

/// True when `consent` meets `required` at `now`: of the required kind or stronger, and given
/// at or before `now`.
pub fn consent_ok(required: ConsentRequirement, consent: Option<Consent>, now: DateTime<Utc>) -> bool {
    match required {
        None => true,
        Some(kind) => consent.is_some_and(|c| c.kind >= kind && c.at <= now),
    }
}

/// Checks every rule that makes a contact due at `now`, other than pacing and the abandonment
/// cap: status, schedule, DNC, consent, lifetime and per-day attempt limits, the 72-hour hold
/// after an abandoned call, the minimum gap, holidays and calling hours in **every** candidate
/// zone, then the rules of **every** jurisdiction the contact is in.
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
    if !consent_ok(rules.consent, c.consent, now) {
        return refuse(RefusalReason::NoConsent, None);
    }
    if c.attempts >= rules.policy.retry.max_attempts {
        return refuse(RefusalReason::AttemptLimit, None);
    }
    if let Err((reason, until)) = rules.limits.check(&history(c), &c.zones, now) {
        return refuse(reason, until);
    }
    if let Some(closed) = rules.window.closed_any(now, &c.zones) {
        return refuse(closed_reason(closed), rules.window.next_open_all(now, &c.zones));
    }
    match rules
        .state_rules
        .check(&c.jurisdictions, &c.zones, &c.recent_attempts, now)
    {
        Ok(()) => Ok(()),
        Err((reason, until)) => refuse(reason, until),
    }
}

/// Every compliance rule that refuses the candidate at `now`, each with the instant that rule
/// alone could allow it (`None`: never), in the order [`check_due`] tries them; empty when it may
/// be dialled (status and schedule are not compliance rules and are left out). For `dialerd
/// preflight`, which reports every reason, not only the first.
pub fn all_refusals(rules: &Rules, c: &Candidate, now: DateTime<Utc>) -> Vec<(RefusalReason, Option<DateTime<Utc>>)> {
    let mut out = Vec::new();
    if c.dnc {
        out.push((RefusalReason::Dnc, None));
    }
    if !consent_ok(rules.consent, c.consent, now) {
        out.push((RefusalReason::NoConsent, None));
    }
    if c.attempts >= rules.policy.retry.max_attempts {
        out.push((RefusalReason::AttemptLimit, None));
    }
    if let Err((reason, until)) = rules.limits.check(&history(c), &c.zones, now) {
        out.push((reason, until));
    }
    if let Some(closed) = rules.window.closed_any(now, &c.zones) {
        out.push((closed_reason(closed), rules.window.next_open_all(now, &c.zones)));
    }
    if let Err((_, until)) = rules
        .state_rules
        .check(&c.jurisdictions, &c.zones, &c.recent_attempts, now)
    {
        for reason in rules
            .state_rules
            .all_reasons(&c.jurisdictions, &c.zones, &c.recent_attempts, now)
        {
            out.push((reason, until));
        }
    }
    out
}

fn history(c: &Candidate) -> AttemptHistory<'_> {
    AttemptHistory {
        recent: &c.recent_attempts,
        last_attempt_at: c.last_attempt_at,
        last_abandoned_at: c.last_abandoned_at,
    }
}

fn closed_reason(closed: Closed) -> RefusalReason {
    match closed {
        Closed::Holiday => RefusalReason::Holiday,
        Closed::Hours => RefusalReason::OutsideHours,
    }
}
