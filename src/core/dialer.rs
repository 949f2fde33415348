//! The campaign core that both drivers run: it holds the calls in flight, decides which due
//! contacts to dial (pacing, then [`check_due`] of `due.rs` on each), and turns call events into
//! trunk actions and finished attempts (state machine + policy). Pure: `now` is passed in.

use super::abandon::{AbandonCounts, AbandonLedger};
use super::call::{AnswerAction, Call, CallEvent, Phase};
use super::due::{Candidate, Refusal, Refused, Rules, check_due};
use super::estimate::Estimates;
use super::pacing::{Pacer, PacingInput, PacingMode, SlotCounts};
use super::policy::{NextStep, callback_time};
use super::types::{AnswerKind, AttemptKey, ContactId, Disposition, Outcome, RefusalReason};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

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
    /// Calls in flight by phase, kept as calls change phase (`slots` is read from the rules).
    tally: SlotCounts,
    scratch: (Vec<f64>, Vec<f64>),
    refusals: BTreeMap<RefusalReason, u64>,
    refused: Vec<Refused>,
}

/// An instant as (seconds since the epoch, nanoseconds), for [`secs_since`].
fn stamp(t: DateTime<Utc>) -> (i64, i64) {
    (t.timestamp(), i64::from(t.timestamp_subsec_nanos()))
}

/// Seconds from `a` to `b` in whole milliseconds, truncated (0 when `b` is earlier): the value of
/// `(b − a).num_milliseconds()`, from the instants' seconds and nanoseconds without building a
/// `TimeDelta` (the pacer asks it of every call in flight at every decision).
fn secs_since(a: (i64, i64), b: (i64, i64)) -> f64 {
    let ms = (b.0 - a.0)
        .saturating_mul(1000)
        .saturating_add((b.1 - a.1).div_euclid(1_000_000));
    (ms.max(0) as f64) / 1000.0
}

/// Seconds from `a` to `b`, as [`secs_since`].
fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    secs_since(stamp(a), stamp(b))
}

/// Moves `tally` by one call in `phase`, up (`add`) or down.
fn tally_phase(tally: &mut SlotCounts, phase: Phase, add: bool) {
    let n = match phase {
        Phase::Dialing => &mut tally.dialing,
        Phase::Talking => &mut tally.talking,
        Phase::SafeHarbor => &mut tally.safe_harbor,
        Phase::Voicemail | Phase::MachineHangup => &mut tally.machine,
    };
    *n = if add { *n + 1 } else { n.saturating_sub(1) };
}

impl Dialer {
    /// A core with no call in flight and estimators at their priors.
    pub fn new(rules: Rules) -> Dialer {
        Dialer {
            pacer: Pacer::new(rules.pacing),
            estimates: Estimates::new(&rules.priors),
            ledger: AbandonLedger::new(),
            tally: SlotCounts::default(),
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

    /// Slot and call counts now (kept up to date as calls change phase, so O(1)).
    pub fn counts(&self) -> SlotCounts {
        SlotCounts {
            slots: self.rules.slots,
            ..self.tally
        }
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
        let c = self.counts();
        let progressive = c.free().saturating_sub(c.dialing);
        // The abandonment cap, by construction: beyond progressive, dial only while every call
        // then ringing could be answered at once, abandon all that find no slot, and leave every
        // measure at or below the cap.
        let room = || {
            let worst_now = c.dialing.saturating_sub(c.free());
            self.rules.cap.headroom(&self.ledger, now).saturating_sub(worst_now)
        };
        let predictive = self.rules.pacing.mode == PacingMode::Predictive;
        // Predictive is told the most the cap could let through, plus one to tell "more" apart,
        // and only predictive reads the elapsed times of the calls in flight.
        let known_room = predictive.then(room);
        let accept = known_room.map_or(u32::MAX, |r| progressive.saturating_add(r).saturating_add(1));
        let (mut dialing, mut talking) = std::mem::take(&mut self.scratch);
        dialing.clear();
        talking.clear();
        if predictive {
            let at = stamp(now);
            for call in self.calls.values() {
                match call.phase {
                    Phase::Dialing => dialing.push(secs_since(stamp(call.dialed_at), at)),
                    Phase::Talking => talking.push(secs_since(stamp(call.answered_at.unwrap_or(call.dialed_at)), at)),
                    _ => {}
                }
            }
        }
        let input = PacingInput {
            now,
            counts: c,
            dialing_elapsed: &dialing,
            talking_elapsed: &talking,
            estimates: &self.estimates,
            measured: self.measured(now),
            ring_timeout_s: self.rules.ring_timeout_s,
            accept,
        };
        let mut n = self.pacer.calls_to_start(&input);
        self.scratch = (dialing, talking);
        if n > progressive {
            let room = known_room.unwrap_or_else(room);
            let allowed = progressive.saturating_add(room);
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
            let mut call = Call::new(key.attempt, now);
            call.zones.clone_from(&c.zones);
            self.calls.insert(c.contact, call);
            tally_phase(&mut self.tally, Phase::Dialing, true);
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
            tally_phase(&mut self.tally, Phase::Dialing, false);
        }
    }

    /// Ends a planned call the trunk refused for good (an invalid number): the attempt is
    /// `failed` and the contact is not dialled again (`invalid_number`). Nothing is learnt from
    /// it: no line rang. Returns the `Finish`, or nothing for an unknown or stale key.
    pub fn reject(&mut self, key: AttemptKey) -> Vec<Decision> {
        let Some(call) = self.calls.get(&key.contact).filter(|c| c.attempt == key.attempt) else {
            return Vec::new();
        };
        let phase = call.phase;
        self.calls.remove(&key.contact);
        tally_phase(&mut self.tally, phase, false);
        vec![Decision::Finish {
            key,
            outcome: Outcome::Failed,
            step: NextStep::done(Disposition::InvalidNumber),
        }]
    }

    /// Re-registers a call that the driver knows is in flight (restart with a trunk that still holds it).
    pub fn adopt(&mut self, key: AttemptKey, call: Call) {
        tally_phase(&mut self.tally, call.phase, true);
        let old = self.calls.insert(
            key.contact,
            Call {
                attempt: key.attempt,
                ..call
            },
        );
        if let Some(old) = old {
            tally_phase(&mut self.tally, old.phase, false);
        }
    }

    /// Counts a connected call answered at `answered_at` after `waited` seconds of ringing as
    /// person-answered, once its AMD verdict (or its end without one) says so: the abandonment
    /// ledger's denominator (16 CFR 310.4(b)(4)(i); Ofcom adds its estimated false positives on
    /// top) and the human answer-time fit. Counting late only lowers the headroom while the
    /// verdict is pending, so the cap still holds by construction.
    fn count_person(&mut self, answered_at: DateTime<Utc>, waited: f64) {
        self.estimates.human_answer.observe(waited);
        self.ledger.record(answered_at, 1, 0);
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
            CallEvent::CallbackRequestedAt(at) => {
                call.callback_requested = true;
                call.callback_at = Some(at);
                Vec::new()
            }
            CallEvent::AgentSpoke(at) => {
                if call.first_agent_speech_at.is_some() || call.answered_at.is_none() {
                    return Vec::new();
                }
                call.first_agent_speech_at = Some(at);
                // Late speech: abandoned under the 2 s rule, counted where the answer was; a
                // call whose AMD verdict is still due is counted once it is known to be a person.
                if !call.silence_counted
                    && call.amd.is_some()
                    && call.silence_abandons(at)
                    && let Some(answered) = call.answered_at
                {
                    call.silence_counted = true;
                    self.ledger.record(answered, 0, 1);
                    self.pacer.dropped(now);
                }
                Vec::new()
            }
            CallEvent::Answered(kind) => {
                let Some(action) = call.answer(kind, slot_free, voicemail, now) else {
                    return Vec::new();
                };
                tally_phase(&mut self.tally, Phase::Dialing, false);
                tally_phase(&mut self.tally, call.phase, true);
                let waited = secs(call.dialed_at, now);
                let abandoned = action == AnswerAction::PlaySafeHarbor;
                match kind {
                    AnswerKind::Machine => self.estimates.machine_answer.observe(waited),
                    // A connected answer AMD has not classified yet is counted once its verdict
                    // (or its end) says it was a person: see `count_person`.
                    AnswerKind::Unknown if !abandoned => {}
                    AnswerKind::Human | AnswerKind::Unknown => {
                        self.estimates.human_answer.observe(waited);
                        self.ledger.record(now, 1, u32::from(abandoned));
                        if abandoned {
                            self.pacer.dropped(now);
                        }
                    }
                }
                vec![Decision::Answer { key, action }]
            }
            CallEvent::AmdVerdict(kind) => {
                let before = call.phase;
                let pending = before == Phase::Talking && call.amd.is_none();
                let action = call.verdict(kind, voicemail);
                let (phase, dialed_at, answered_at) = (call.phase, call.dialed_at, call.answered_at);
                if !pending {
                    return Vec::new();
                }
                let answered_at = answered_at.unwrap_or(dialed_at);
                let waited = secs(dialed_at, answered_at);
                match action {
                    Some(action) => {
                        // A machine: it frees its agent slot and was never a person-answered call.
                        tally_phase(&mut self.tally, before, false);
                        tally_phase(&mut self.tally, phase, true);
                        self.estimates.machine_answer.observe(waited);
                        vec![Decision::Answer { key, action }]
                    }
                    None => {
                        self.count_person(answered_at, waited);
                        if let Some(call) = self.calls.get_mut(&key.contact)
                            && !call.silence_counted
                            && call.silence_abandons(now)
                        {
                            call.silence_counted = true;
                            self.ledger.record(answered_at, 0, 1);
                            self.pacer.dropped(now);
                        }
                        Vec::new()
                    }
                }
            }
            CallEvent::Ended(reason) => {
                // A person who never heard the agent within 2 s of the answer was abandoned.
                if !call.silence_counted
                    && call.silence_abandons(now)
                    && let Some(answered) = call.answered_at
                {
                    call.silence_counted = true;
                    self.ledger.record(answered, 0, 1);
                    self.pacer.dropped(now);
                }
                let outcome = call.outcome(reason);
                let (dialed_at, answered_at, phase) = (call.dialed_at, call.answered_at, call.phase);
                let call_opted_out = call.opted_out;
                let verdict_pending = phase == Phase::Talking && call.amd.is_none();
                let callback = call.callback_at.map(|at| (at, std::mem::take(&mut call.zones)));
                if verdict_pending {
                    // Connected with no verdict before the end: a person, as AMD `unknown` is.
                    let answered_at = answered_at.unwrap_or(dialed_at);
                    self.count_person(answered_at, secs(dialed_at, answered_at));
                }
                self.calls.remove(&key.contact);
                tally_phase(&mut self.tally, phase, false);
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
                    // A callback at the time the person named, inside the calling window.
                    if let (Some((at, zones)), Disposition::CallbackScheduled) = (callback, step.disposition) {
                        let earliest = gap.map_or(now, |g| g.max(now));
                        if let Some(t) = callback_time(&self.rules.window, &zones, at, earliest) {
                            step.next_attempt_at = Some(t);
                        }
                    }
                    step
                };
                vec![Decision::Finish { key, outcome, step }]
            }
        }
    }
}
