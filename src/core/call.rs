//! The call state machine: one call from dial to end, and the outcome it ends with.
//!
//! ```text
//! Dialing ──Answered(Human|Unknown), slot free──► Talking ──Ended──► human | callback_requested
//!    │     ──Answered(Human|Unknown), no slot───► SafeHarbor ─Ended─► abandoned
//!    │     ──Answered(Machine), leave_message───► Voicemail ──Ended──► voicemail_left (machine if cut short)
//!    │     ──Answered(Machine), hangup──────────► MachineHangup ─Ended─► machine
//!    └─Ended(no_answer|busy|failed)─► no_answer | busy | failed
//! ```

use super::policy::VoicemailAction;
use super::types::{AnswerKind, EndReason, Outcome};
use chrono::{DateTime, Utc};

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
    /// Answered, with the AMD classification.
    Answered(AnswerKind),
    /// The person asked to be called back later.
    CallbackRequested,
    /// The person asked not to be called again (trunk or agent event `opt_out`).
    OptOut,
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
        }
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
        let (phase, action) = match (kind, voicemail) {
            (AnswerKind::Machine, VoicemailAction::LeaveMessage) => (Phase::Voicemail, AnswerAction::LeaveVoicemail),
            (AnswerKind::Machine, VoicemailAction::Hangup) => (Phase::MachineHangup, AnswerAction::Hangup),
            (AnswerKind::Human | AnswerKind::Unknown, _) if slot_free => (Phase::Talking, AnswerAction::ConnectAgent),
            (AnswerKind::Human | AnswerKind::Unknown, _) => (Phase::SafeHarbor, AnswerAction::PlaySafeHarbor),
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
