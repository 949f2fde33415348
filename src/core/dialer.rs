//! The campaign core that both drivers run: it holds the calls in flight, decides which due
//! contacts to dial (pacing + calling window + attempt limit), and turns call events into
//! trunk actions and finished attempts (state machine + policy). Pure: `now` is passed in.

use super::call::{AnswerAction, Call, CallEvent, Phase};
use super::pacing::{PacingMode, SlotCounts, calls_to_start};
use super::policy::{NextStep, Policy};
use super::types::{AttemptKey, ContactId, ContactStatus, Outcome};
use super::window::CallingWindow;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

/// A campaign's rules as the core needs them; built from a validated campaign file.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Agent slots (`max_concurrent`).
    pub slots: u32,
    /// Pacing mode.
    pub mode: PacingMode,
    /// Retry, voicemail and callback policy (holds `max_attempts`).
    pub policy: Policy,
    /// Campaign period, legal hours and cron windows.
    pub window: CallingWindow,
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
    /// The zone its calling window is read in.
    pub timezone: Tz,
}

/// Why a candidate may not be dialled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its status allows no dial (in progress, done, exhausted).
    NotDialable,
    /// `next_attempt_at` is in the future.
    NotYetDue,
    /// `max_attempts` reached.
    AttemptLimit,
    /// Outside the campaign period, legal hours or every window, in the contact's local time.
    OutsideWindow,
    /// A call to this contact is already in flight.
    InFlight,
}

/// Checks every rule that makes a contact due at `now`, other than pacing.
pub fn check_due(rules: &Rules, c: &Candidate, now: DateTime<Utc>) -> Result<(), Refusal> {
    if !c.status.is_dialable() {
        Err(Refusal::NotDialable)
    } else if c.next_attempt_at > now {
        Err(Refusal::NotYetDue)
    } else if c.attempts >= rules.policy.retry.max_attempts {
        Err(Refusal::AttemptLimit)
    } else if !rules.window.is_open(now, c.timezone) {
        Err(Refusal::OutsideWindow)
    } else {
        Ok(())
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
}

impl Dialer {
    /// A core with no call in flight.
    pub fn new(rules: Rules) -> Dialer {
        Dialer {
            rules,
            calls: BTreeMap::new(),
        }
    }

    /// Replaces the rules (campaign file changed); calls in flight are kept.
    pub fn set_rules(&mut self, rules: Rules) {
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
                Phase::SafeHarbor | Phase::Voicemail | Phase::MachineHangup => c.unattended += 1,
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

    /// How many new calls pacing wants now, before candidates and the CPS budget are known.
    pub fn wanted(&self) -> u32 {
        calls_to_start(self.rules.mode, self.counts())
    }

    /// Picks contacts to dial now from `candidates`, in order, at most `min(wanted, budget)`, each passing
    /// [`check_due`] and not already in flight. The chosen calls are registered as `Dialing`.
    pub fn plan(&mut self, now: DateTime<Utc>, candidates: &[Candidate], budget: u32) -> Vec<AttemptKey> {
        let n = self.wanted().min(budget) as usize;
        let mut out = Vec::with_capacity(n);
        for c in candidates {
            if out.len() >= n {
                break;
            }
            if self.calls.contains_key(&c.contact) || check_due(&self.rules, c, now).is_err() {
                continue;
            }
            let key = AttemptKey {
                contact: c.contact,
                attempt: c.attempts + 1,
            };
            self.calls.insert(c.contact, Call::new(key.attempt, now));
            out.push(key);
        }
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
            CallEvent::Answered(kind) => call
                .answer(kind, slot_free, voicemail, now)
                .map(|action| vec![Decision::Answer { key, action }])
                .unwrap_or_default(),
            CallEvent::Ended(reason) => {
                let outcome = call.outcome(reason);
                self.calls.remove(&key.contact);
                let step = self.rules.policy.after_attempt(outcome, key.attempt, now);
                vec![Decision::Finish { key, outcome, step }]
            }
        }
    }
}
