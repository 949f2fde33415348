//! One call's callbacks turned into one forward path of core events: [`CallTrack`] orders them
//! by `SequenceNumber`, drops duplicates, fills in events skipped by reordering (an answer
//! implies ringing, an AMD verdict implies the answer) and never reopens an ended call. Pure.

use super::callbacks::{CallStatus, end_reason};
use crate::core::{AnswerKind, CallEvent, EndReason};
use std::collections::BTreeSet;

/// One call's callbacks so far. [`CallTrack::apply`] turns each new callback into the core
/// events it implies, so that whatever order and however many times Twilio delivers them, the
/// core sees one forward path: `Ringing`, `Answered`, `Ended`, each at most once, nothing after
/// `Ended`. The answer is reported as `Answered(Unknown)`: with async AMD the person is
/// connected at once and the verdict follows on the AMD callback.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallTrack {
    rank: u8,
    rang: bool,
    answered: bool,
    ended: bool,
    seen: BTreeSet<u32>,
    cut_short: bool,
}

impl CallTrack {
    /// A call with no callback yet.
    pub fn new() -> CallTrack {
        CallTrack::default()
    }

    /// Whether the call has ended.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Whether the call was answered.
    pub fn is_answered(&self) -> bool {
        self.answered
    }

    /// The core events `status` (with its `SequenceNumber` and `SipResponseCode`) adds, in order:
    /// none for a duplicate (same sequence number), for a callback behind the call's progress
    /// (a late `ringing`), or for anything after the end. An answer implies ringing, and a
    /// `completed` call was answered, so events skipped by reordering are filled in.
    pub fn apply(
        &mut self,
        status: CallStatus,
        sequence: Option<u32>,
        sip_response_code: Option<u16>,
    ) -> Vec<CallEvent> {
        if let Some(seq) = sequence
            && !self.seen.insert(seq)
        {
            return Vec::new();
        }
        if self.ended || status.rank() <= self.rank {
            return Vec::new();
        }
        self.rank = status.rank();
        let mut out = Vec::new();
        let answers = matches!(status, CallStatus::InProgress | CallStatus::Completed);
        if (status == CallStatus::Ringing || answers) && !self.rang {
            self.rang = true;
            out.push(CallEvent::Ringing);
        }
        if answers && !self.answered {
            self.answered = true;
            out.push(CallEvent::Answered(AnswerKind::Unknown));
        }
        if let Some(mut reason) = end_reason(status, sip_response_code) {
            if self.cut_short && reason == EndReason::Hangup {
                reason = EndReason::Failed;
            }
            self.ended = true;
            out.push(CallEvent::Ended(reason));
        }
        out
    }
}

impl CallTrack {
    /// Marks the call's voicemail message as not played (a fax, a greeting not over): its
    /// normal end is then reported as `Ended(Failed)`, which the core reads as a voicemail cut
    /// short (`machine`), not `voicemail_left`.
    pub fn message_refused(&mut self) {
        self.cut_short = true;
    }

    /// The core events an AMD verdict of `kind` adds: `AmdVerdict(kind)`, after the `Ringing`
    /// and `Answered(Unknown)` it implies when their status callbacks have not arrived yet (a
    /// verdict means the call was answered); none once the call has ended. The hub passes only
    /// a call's first verdict.
    pub fn verdict(&mut self, kind: AnswerKind) -> Vec<CallEvent> {
        if self.ended {
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.rang {
            self.rang = true;
            out.push(CallEvent::Ringing);
        }
        if !self.answered {
            self.answered = true;
            out.push(CallEvent::Answered(AnswerKind::Unknown));
        }
        self.rank = self.rank.max(CallStatus::InProgress.rank());
        out.push(CallEvent::AmdVerdict(kind));
        out
    }
}
