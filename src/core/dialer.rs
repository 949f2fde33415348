//! The campaign core that both drivers run: it holds the calls in flight, decides which due
//! contacts to dial (pacing + calling window + attempt limit), and turns call events into
//! trunk actions and finished attempts (state machine + policy). Pure: `now` is passed in.

use super::abandon::{AbandonCounts, AbandonLedger};
use super::call::{AnswerAction, Call, CallEvent, Phase};
use super::compliance::{AbandonCap, AttemptHistory, AttemptLimits};
use super::estimate::{Estimates, Priors};
use super::pacing::{Pacer, PacingConfig, PacingInput, SlotCounts};
use super::policy::{NextStep, Policy};
use super::types::{AnswerKind, AttemptKey, ContactId, ContactStatus, Disposition, Outcome, RefusalReason};
use super::window::{CallingWindow, Closed};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

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

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Tell the trunk to act on an answered call.
    Answer {
        /// The call.
        key: AttemptKey,
        /// The action.
        action: AnswerAction,
    },
    /// The attempt is over: persist it and the contact's next step.
    Finish {
        /// The call.
        key: AttemptKey,
        /// How it ended.
        outcome: Outcome,
        /// What happens to the contact.
        step: NextStep,
    },
}

/// The pure campaign core. At most one call per contact is in flight: calls are keyed by contact.
#[derive(Clone, Debug)]
pub struct Dialer {
    rules: Rules,
    calls: BTreeMap<ContactId, Call>,
    pacer: Pacer,
    estimates: Estimates,
    ledger: AbandonLedger,
    scratch: (Vec<f64>, Vec<f64>),
    refusals: BTreeMap<RefusalReason, u64>,
    refused: Vec<Refused>,
}

/// Seconds from `a` to `b` (0 when `b` is earlier).
fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    ((b - a).num_milliseconds().max(0) as f64) / 1000.0
}

impl Dialer {
    /// A core with no call in flight and estimators at their priors.
    pub fn new(rules: Rules) -> Dialer {
        Dialer {
            pacer: Pacer::new(rules.pacing),
            estimates: Estimates::new(&rules.priors),
            ledger: AbandonLedger::new(),
            rules,
            calls: BTreeMap::new(),
            scratch: (Vec::new(), Vec::new()),
            refusals: BTreeMap::new(),
            refused: Vec::new(),
        }
    }

    /// Replaces the rules (campaign file changed); calls in flight, estimates and counts are kept.
    pub fn set_rules(&mut self, rules: Rules) {
        self.pacer.set_config(rules.pacing);
        self.rules = rules;
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Slot and call counts now.
    pub fn counts(&self) -> SlotCounts {
        let mut c = SlotCounts {
            slots: self.rules.slots,
            ..SlotCounts::default()
        };
        for call in self.calls.values() {
            match call.phase {
                Phase::Dialing => c.dialing += 1,
                Phase::Talking => c.talking += 1,
                Phase::SafeHarbor => c.safe_harbor += 1,
                Phase::Voicemail | Phase::MachineHangup => c.machine += 1,
            }
        }
        c
    }

    /// Calls in flight, any phase.
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }

    /// The call in flight for `contact`, if any.
    pub fn call(&self, contact: ContactId) -> Option<&Call> {
        self.calls.get(&contact)
    }

    /// The outcome and duration estimates.
    pub fn estimates(&self) -> &Estimates {
        &self.estimates
    }

    /// The current VICIdial dial level (meaningful in `vicidial-adaptive` mode).
    pub fn vicidial_level(&self) -> f64 {
        self.pacer.vicidial_level()
    }

    /// Measured abandonment over the `window` ending at `now`.
    pub fn abandonment(&self, now: DateTime<Utc>, window: Duration) -> AbandonCounts {
        self.ledger.counts(now, window)
    }

    /// Adds history from before this run (a restart): `human` answered, `abandoned` abandoned, at `at`.
    pub fn record_history(&mut self, at: DateTime<Utc>, human: u32, abandoned: u32) {
        self.ledger.record(at, human, abandoned);
    }

    /// Feeds the outcome estimator with an outcome from before this run.
    pub fn observe_history(&mut self, outcome: Outcome) {
        self.estimates.outcomes.observe(outcome);
    }

    /// The abandonment figure pacing answers to: the worse of the measures the campaign's policy
    /// applies (30-day TSR, 24-hour Ofcom with estimated AMD false positives), as counts.
    fn measured(&self, now: DateTime<Utc>) -> AbandonCounts {
        let (tsr, ofcom) = self.rules.cap.measures(&self.ledger, now);
        [tsr, ofcom]
            .into_iter()
            .flatten()
            .max_by(|a, b| a.rate().total_cmp(&b.rate()))
            .map_or(AbandonCounts::default(), |m| AbandonCounts {
                human: m.answered.round() as u64,
                abandoned: m.abandoned.round() as u64,
            })
    }

    /// The worst abandonment rate (0..1) among the measures the campaign's policy applies, at `now`.
    pub fn abandonment_rate(&self, now: DateTime<Utc>) -> f64 {
        self.rules.cap.worst_rate(&self.ledger, now)
    }

    /// Compliance refusals counted since this core was created, by reason.
    pub fn refusal_counts(&self) -> &BTreeMap<RefusalReason, u64> {
        &self.refusals
    }

    /// Takes the candidates refused for compliance since the last call, for the driver to defer.
    pub fn take_refused(&mut self) -> Vec<Refused> {
        std::mem::take(&mut self.refused)
    }

    /// Counts `n` refusals for `reason` (the driver's own last-moment checks, such as DNC just
    /// before the dial, are counted here too).
    pub fn count_refusal(&mut self, reason: RefusalReason, n: u64) {
        *self.refusals.entry(reason).or_default() += n;
    }

    /// How many new calls pacing wants at `now`, before candidates and the CPS budget are known.
    pub fn wanted(&mut self, now: DateTime<Utc>) -> u32 {
        let (mut dialing, mut talking) = std::mem::take(&mut self.scratch);
        dialing.clear();
        talking.clear();
        for call in self.calls.values() {
            match call.phase {
                Phase::Dialing => dialing.push(secs(call.dialed_at, now)),
                Phase::Talking => talking.push(secs(call.answered_at.unwrap_or(call.dialed_at), now)),
                _ => {}
            }
        }
        let input = PacingInput {
            now,
            counts: self.counts(),
            dialing_elapsed: &dialing,
            talking_elapsed: &talking,
            estimates: &self.estimates,
            measured: self.measured(now),
            ring_timeout_s: self.rules.ring_timeout_s,
        };
        let mut n = self.pacer.calls_to_start(&input);
        let c = input.counts;
        self.scratch = (dialing, talking);
        // The abandonment cap, by construction: beyond progressive, dial only while every call
        // then ringing could be answered at once, abandon all that find no slot, and leave every
        // measure at or below the cap.
        let progressive = c.free().saturating_sub(c.dialing);
        if n > progressive {
            let worst_now = c.dialing.saturating_sub(c.free());
            let room = self.rules.cap.headroom(&self.ledger, now).saturating_sub(worst_now);
            let allowed = c.free().saturating_sub(c.dialing).saturating_add(room);
            if n > allowed {
                // Once per decision: the same held-back dials are asked for again a second later.
                self.count_refusal(RefusalReason::AbandonCap, 1);
                n = allowed;
            }
        }
        n
    }

    /// Picks contacts to dial at `now` from `candidates`, in order, at most `limit` (the caller
    /// passes `min(wanted, CPS budget)`), each passing [`check_due`] and not already in flight.
    /// The chosen calls are registered as `Dialing`.
    pub fn plan(&mut self, now: DateTime<Utc>, candidates: &[Candidate], limit: u32) -> Vec<AttemptKey> {
        let n = limit as usize;
        let mut out = Vec::with_capacity(n.min(candidates.len()));
        for c in candidates {
            if out.len() >= n {
                break;
            }
            if self.calls.contains_key(&c.contact) {
                continue;
            }
            match check_due(&self.rules, c, now) {
                Ok(()) => {}
                Err(Refusal::Compliance { reason, until }) => {
                    self.count_refusal(reason, 1);
                    self.refused.push(Refused {
                        contact: c.contact,
                        reason,
                        until,
                    });
                    continue;
                }
                Err(_) => continue,
            }
            let key = AttemptKey {
                contact: c.contact,
                attempt: c.attempts + 1,
            };
            self.calls.insert(c.contact, Call::new(key.attempt, now));
            out.push(key);
        }
        self.pacer.placed(now, out.len() as u32);
        out
    }

    /// Forgets a planned call that was never placed (the store refused the claim).
    pub fn cancel(&mut self, key: AttemptKey) {
        if self
            .calls
            .get(&key.contact)
            .is_some_and(|c| c.attempt == key.attempt && c.phase == Phase::Dialing)
        {
            self.calls.remove(&key.contact);
        }
    }

    /// Re-registers a call that the driver knows is in flight (restart with a trunk that still holds it).
    pub fn adopt(&mut self, key: AttemptKey, call: Call) {
        self.calls.insert(
            key.contact,
            Call {
                attempt: key.attempt,
                ..call
            },
        );
    }

    /// Applies a trunk event to the call `key`. Events for unknown or stale calls are ignored.
    pub fn on_event(&mut self, now: DateTime<Utc>, key: AttemptKey, event: CallEvent) -> Vec<Decision> {
        let slot_free = self.counts().free() > 0;
        let voicemail = self.rules.policy.voicemail;
        let Some(call) = self.calls.get_mut(&key.contact).filter(|c| c.attempt == key.attempt) else {
            return Vec::new();
        };
        match event {
            CallEvent::Ringing => Vec::new(),
            CallEvent::CallbackRequested => {
                call.callback_requested = true;
                Vec::new()
            }
            CallEvent::OptOut => {
                call.opted_out = true;
                Vec::new()
            }
            CallEvent::Answered(kind) => {
                let Some(action) = call.answer(kind, slot_free, voicemail, now) else {
                    return Vec::new();
                };
                let waited = secs(call.dialed_at, now);
                match kind {
                    AnswerKind::Machine => self.estimates.machine_answer.observe(waited),
                    AnswerKind::Human | AnswerKind::Unknown => {
                        self.estimates.human_answer.observe(waited);
                        let abandoned = action == AnswerAction::PlaySafeHarbor;
                        self.ledger.record(now, 1, u32::from(abandoned));
                        if abandoned {
                            self.pacer.dropped(now);
                        }
                    }
                }
                vec![Decision::Answer { key, action }]
            }
            CallEvent::Ended(reason) => {
                let outcome = call.outcome(reason);
                let (dialed_at, answered_at, phase) = (call.dialed_at, call.answered_at, call.phase);
                let call_opted_out = call.opted_out;
                self.calls.remove(&key.contact);
                self.estimates.outcomes.observe(outcome);
                match phase {
                    Phase::Talking => self.estimates.talk.observe(secs(answered_at.unwrap_or(dialed_at), now)),
                    Phase::Dialing if matches!(outcome, Outcome::Busy | Outcome::Failed) => {
                        self.estimates.early_end.observe(secs(dialed_at, now))
                    }
                    _ => {}
                }
                let step = if call_opted_out {
                    NextStep::done(Disposition::Dnc)
                } else {
                    let mut step = self.rules.policy.after_attempt(outcome, key.attempt, now);
                    // Schedule no earlier than the gap and the abandon hold would allow anyway.
                    let limits = self.rules.limits;
                    let hold = limits
                        .abandon_hold
                        .filter(|_| outcome == Outcome::Abandoned)
                        .map(|h| now + h);
                    let gap = limits.min_gap.map(|g| dialed_at + g);
                    step.next_attempt_at = step
                        .next_attempt_at
                        .map(|t| t.max(hold.unwrap_or(t)).max(gap.unwrap_or(t)));
                    step
                };
                vec![Decision::Finish { key, outcome, step }]
            }
        }
    }
}
