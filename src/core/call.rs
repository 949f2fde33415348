//! The call state machine: one call from dial to end, and the outcome it ends with.
//!
//! ```text
//! Dialing ──Answered(Human|Unknown), slot free──► Talking ──Ended──► human | callback_requested
//!    │                                              │  AmdVerdict(Machine), leave_message ─► Voicemail (slot freed)
//!    │                                              │  AmdVerdict(Machine), hangup ────────► MachineHangup (slot freed)
//!    │                                              └  AmdVerdict(Human|Unknown): stays Talking
//!    │     ──Answered(Human|Unknown), no slot───► SafeHarbor ─Ended─► abandoned
//!    │     ──Answered(Machine), leave_message───► Voicemail ──Ended──► voicemail_left (machine if cut short)
//!    │     ──Answered(Machine), hangup──────────► MachineHangup ─Ended─► machine
//!    └─Ended(no_answer|busy|failed)─► no_answer | busy | failed
//! ```
//!
//! Asynchronous AMD is the normal order with an AI agent: the answer (`Unknown`) connects the
//! agent at once, so a person never waits on detection, and the verdict follows. Only the first
//! verdict on a `Talking` call counts; a verdict on any other phase (still dialing, safe-harbor,
//! already a machine), a second verdict, or one for an ended call changes nothing.
//!
//! A person connected to an agent who hears no agent speech within [`AGENT_SPEECH_DEADLINE`] of
//! the answer is abandoned under FTC TSR 16 CFR 310.4(b)(4)(i) even though a slot was free
//! ([`Call::silence_abandons`]); the call still ends `human`, but counts as abandoned.

use super::policy::VoicemailAction;
use super::types::{AnswerKind, EndReason, Outcome};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

/// The longest a person connected to an agent may wait for the agent's first words after the
/// answer: 2 s (FTC TSR 16 CFR 310.4(b)(4)(i); Ofcom's abandoned-call definition uses the same 2 s).
pub const AGENT_SPEECH_DEADLINE: TimeDelta = TimeDelta::seconds(2);

/// Where a call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Placed, not yet answered.
    Dialing,
    /// A person is connected to an agent slot.
    Talking,
    /// A person answered with no free slot; the safe-harbor message is playing.
    SafeHarbor,
    /// A machine answered; the voicemail message is playing.
    Voicemail,
    /// A machine answered; the call is being hung up.
    MachineHangup,
}

/// What the trunk reports about a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// The far end is ringing.
    Ringing,
    /// Answered, with the AMD classification (`Unknown` when the verdict comes later).
    Answered(AnswerKind),
    /// The asynchronous AMD verdict of a call already answered (Twilio `AsyncAmd`, or the voice
    /// agent's own `answered_by`): a machine moves a connected call to the voicemail message or a
    /// hang-up; a person or `Unknown` keeps it.
    AmdVerdict(AnswerKind),
    /// The person asked to be called back later.
    CallbackRequested,
    /// The person asked not to be called again (trunk or agent event `opt_out`).
    OptOut,
    /// The person asked to be called back at this instant (UTC; the local time they named):
    /// the callback is scheduled then, moved into the calling window.
    CallbackRequestedAt(DateTime<Utc>),
    /// The voice agent first spoke at this instant (UTC). Only the first one counts.
    AgentSpoke(DateTime<Utc>),
    /// The call ended.
    Ended(EndReason),
}

/// What the driver must tell the trunk after an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerAction {
    /// Bridge the call to the agent.
    ConnectAgent,
    /// Play the safe-harbor message, then hang up (the call is abandoned).
    PlaySafeHarbor,
    /// Play the voicemail message after the beep, then hang up.
    LeaveVoicemail,
    /// Hang up now.
    Hangup,
}

/// One call in flight.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// 1-based attempt number of the contact.
    pub attempt: u32,
    /// Current phase.
    pub phase: Phase,
    /// When the dial was decided (UTC).
    pub dialed_at: DateTime<Utc>,
    /// When it was answered (UTC).
    pub answered_at: Option<DateTime<Utc>>,
    /// The person asked for a callback during the call.
    pub callback_requested: bool,
    /// The person opted out during the call: the contact ends `dnc`, whatever the outcome.
    pub opted_out: bool,
    /// The AMD verdict, once known: the kind of a synchronous answer other than `Unknown`, or
    /// the first asynchronous verdict.
    pub amd: Option<AnswerKind>,
    /// When the person asked to be called back (UTC), if they named a time.
    pub callback_at: Option<DateTime<Utc>>,
    /// When the agent first spoke (UTC), if it has.
    pub first_agent_speech_at: Option<DateTime<Utc>>,
    /// The call has been counted abandoned for the agent's silence (counted once).
    pub silence_counted: bool,
    /// The zones the contact's calling window is read in (for a callback at a named time).
    pub zones: Vec<Tz>,
}

impl Call {
    /// A call just placed.
    pub fn new(attempt: u32, now: DateTime<Utc>) -> Call {
        Call {
            attempt,
            phase: Phase::Dialing,
            dialed_at: now,
            answered_at: None,
            callback_requested: false,
            opted_out: false,
            amd: None,
            callback_at: None,
            first_agent_speech_at: None,
            silence_counted: false,
            zones: Vec::new(),
        }
    }

    /// Answer → first agent speech in milliseconds (0 when the speech is stamped before the
    /// answer), once the agent has spoken on an answered call.
    pub fn speech_latency_ms(&self) -> Option<i64> {
        let (a, s) = (self.answered_at?, self.first_agent_speech_at?);
        Some((s - a).num_milliseconds().max(0))
    }

    /// Whether the person on this call is abandoned for the agent's silence as of `now` (UTC):
    /// a call connected to an agent (`Talking`) whose agent first spoke more than
    /// [`AGENT_SPEECH_DEADLINE`] after the answer, or has not spoken and `now` is past that
    /// deadline (FTC TSR 16 CFR 310.4(b)(4)(i)).
    pub fn silence_abandons(&self, now: DateTime<Utc>) -> bool {
        let Some(answered) = self.answered_at else {
            return false;
        };
        if self.phase != Phase::Talking {
            return false;
        }
        let heard = self.first_agent_speech_at.unwrap_or(now);
        heard - answered > AGENT_SPEECH_DEADLINE
    }

    /// Whether this call counts as abandoned for the agent's silence when it ends at `now`
    /// (already counted, or [`Call::silence_abandons`] then).
    pub fn abandoned_for_silence(&self, now: DateTime<Utc>) -> bool {
        self.silence_counted || self.silence_abandons(now)
    }

    /// Handles an answer: moves to the next phase and returns the action for the trunk, or
    /// `None` when the call was already answered (a duplicate event changes nothing).
    /// A person (or an unclassified answer) takes a slot when `slot_free`; otherwise it is abandoned.
    pub fn answer(
        &mut self,
        kind: AnswerKind,
        slot_free: bool,
        voicemail: VoicemailAction,
        now: DateTime<Utc>,
    ) -> Option<AnswerAction> {
        if self.phase != Phase::Dialing {
            return None;
        }
        self.answered_at = Some(now);
        self.amd = (kind != AnswerKind::Unknown).then_some(kind);
        let (phase, action) = match (kind, voicemail) {
            (AnswerKind::Machine, VoicemailAction::LeaveMessage) => (Phase::Voicemail, AnswerAction::LeaveVoicemail),
            (AnswerKind::Machine, VoicemailAction::Hangup) => (Phase::MachineHangup, AnswerAction::Hangup),
            (AnswerKind::Human | AnswerKind::Unknown, _) if slot_free => (Phase::Talking, AnswerAction::ConnectAgent),
            (AnswerKind::Human | AnswerKind::Unknown, _) => (Phase::SafeHarbor, AnswerAction::PlaySafeHarbor),
        };
        self.phase = phase;
        Some(action)
    }

    /// Handles an asynchronous AMD verdict: on a `Talking` call with no verdict yet, a machine
    /// moves it to `Voicemail` (`LeaveVoicemail`) or `MachineHangup` (`Hangup`) per `voicemail`
    /// and returns that action; a person or `Unknown` is recorded and keeps the call (`None`).
    /// Any other phase, or a second verdict, changes nothing and returns `None`.
    pub fn verdict(&mut self, kind: AnswerKind, voicemail: VoicemailAction) -> Option<AnswerAction> {
        if self.phase != Phase::Talking || self.amd.is_some() {
            return None;
        }
        self.amd = Some(kind);
        if kind != AnswerKind::Machine {
            return None;
        }
        let (phase, action) = match voicemail {
            VoicemailAction::LeaveMessage => (Phase::Voicemail, AnswerAction::LeaveVoicemail),
            VoicemailAction::Hangup => (Phase::MachineHangup, AnswerAction::Hangup),
        };
        self.phase = phase;
        Some(action)
    }

    /// The outcome of this call when it ends for `reason`.
    pub fn outcome(&self, reason: EndReason) -> Outcome {
        match self.phase {
            Phase::Dialing => match reason {
                EndReason::NoAnswer => Outcome::NoAnswer,
                EndReason::Busy => Outcome::Busy,
                EndReason::Failed | EndReason::Hangup => Outcome::Failed,
            },
            Phase::Talking if self.callback_requested => Outcome::CallbackRequested,
            Phase::Talking => Outcome::Human,
            Phase::SafeHarbor => Outcome::Abandoned,
            Phase::Voicemail if reason == EndReason::Hangup => Outcome::VoicemailLeft,
            Phase::Voicemail | Phase::MachineHangup => Outcome::Machine,
        }
    }
}
