//! Twilio's status and AMD callbacks as data, and the pure rules that turn them into the core's
//! [`CallEvent`]s: the form fields (Twilio Voice "StatusCallback" and "AsyncAmdStatusCallback"
//! parameters), `CallStatus` + `SipResponseCode` → [`EndReason`], the `AnsweredBy` verdicts; and
//! re-exported from `track`, [`CallTrack`], which orders one call's callbacks by
//! `SequenceNumber`, drops duplicates by (`CallSid`, `SequenceNumber`) and never lets a late
//! event reopen an ended call.
//! No I/O: the listener parses, the hub delivers.

use crate::core::{AnswerAction, AnswerKind, AttemptKey, ContactId, EndReason, VoicemailAction};
use chrono::{DateTime, Utc};
use serde::Deserialize;

pub use super::track::CallTrack;

/// `CallStatus` of a status callback (Twilio Call resource "Call Status values").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    /// Waiting in Twilio's queue (the account's CPS).
    Queued,
    /// Twilio started dialing (the `initiated` event).
    Initiated,
    /// The far end is ringing.
    Ringing,
    /// Answered (the `answered` event).
    InProgress,
    /// Answered, then ended normally.
    Completed,
    /// The far end was busy.
    Busy,
    /// The call could not be placed or dropped.
    Failed,
    /// Not answered within `Timeout`.
    NoAnswer,
    /// Cancelled through the REST API while queued or ringing.
    Canceled,
}

impl CallStatus {
    /// How far along a call this status is: 0 queued/initiated, 1 ringing, 2 answered, 3 ended.
    /// A call only moves to a higher rank.
    pub fn rank(self) -> u8 {
        match self {
            CallStatus::Queued | CallStatus::Initiated => 0,
            CallStatus::Ringing => 1,
            CallStatus::InProgress => 2,
            CallStatus::Completed
            | CallStatus::Busy
            | CallStatus::Failed
            | CallStatus::NoAnswer
            | CallStatus::Canceled => 3,
        }
    }

    /// Whether the call is over.
    pub fn is_final(self) -> bool {
        self.rank() == 3
    }
}

/// The fields dialerd reads from a status callback form (Twilio "StatusCallback parameters";
/// other fields are ignored, though the signature covers them all).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatusCallback {
    /// The call (`CA…`).
    pub call_sid: String,
    /// Where the call stands.
    pub call_status: CallStatus,
    /// Order of this callback among the call's callbacks (0, 1, …); absent on legacy callbacks.
    #[serde(default)]
    pub sequence_number: Option<u32>,
    /// The SIP final response of a call that did not connect (486 busy, 480, 404, 603, …).
    #[serde(default)]
    pub sip_response_code: Option<u16>,
    /// The AMD verdict, when Twilio already had one.
    #[serde(default)]
    pub answered_by: Option<String>,
    /// Billed duration in seconds (final callbacks).
    #[serde(default)]
    pub call_duration: Option<u32>,
    /// Duration in minutes, rounded up (final callbacks).
    #[serde(default)]
    pub duration: Option<u32>,
    /// When Twilio emitted the event (RFC 2822, `Tue, 01 Dec 2026 20:00:00 +0000`).
    #[serde(default)]
    pub timestamp: Option<String>,
}

impl StatusCallback {
    /// The event's time: `Timestamp` when it parses, else `received`.
    pub fn at(&self, received: DateTime<Utc>) -> DateTime<Utc> {
        self.timestamp
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc2822(t).ok())
            .map_or(received, |t| t.with_timezone(&Utc))
    }
}

/// The fields of an async AMD callback (Twilio "AsyncAmdStatusCallback parameters").
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AmdCallback {
    /// The call (`CA…`).
    pub call_sid: String,
    /// The verdict.
    pub answered_by: AmdVerdict,
    /// How long detection took, in milliseconds.
    #[serde(default)]
    pub machine_detection_duration: Option<u32>,
}

/// The fields of a recording status callback (Twilio "RecordingStatusCallback parameters").
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordingCallback {
    /// The call recorded (`CA…`).
    pub call_sid: String,
    /// The recording (`RE…`).
    pub recording_sid: String,
    /// The recording resource's URL (media at this URL plus `.mp3` or `.wav`).
    pub recording_url: String,
    /// `in-progress`, `completed` or `absent`.
    pub recording_status: String,
}

/// Twilio's `AnsweredBy` verdict (Answering Machine Detection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmdVerdict {
    /// A person (`human`).
    Human,
    /// A machine, detected at the start of its greeting (`MachineDetection=Enable`).
    MachineStart,
    /// A machine whose greeting ended with a beep (`DetectMessageEnd`).
    MachineEndBeep,
    /// A machine whose greeting ended in silence (`DetectMessageEnd`).
    MachineEndSilence,
    /// A machine whose greeting ended otherwise (`DetectMessageEnd`).
    MachineEndOther,
    /// A fax machine.
    Fax,
    /// AMD could not tell.
    Unknown,
}

impl AmdVerdict {
    /// The core's answer kind: any machine (or fax) is `Machine`.
    pub fn answer_kind(self) -> AnswerKind {
        match self {
            AmdVerdict::Human => AnswerKind::Human,
            AmdVerdict::Unknown => AnswerKind::Unknown,
            AmdVerdict::MachineStart
            | AmdVerdict::MachineEndBeep
            | AmdVerdict::MachineEndSilence
            | AmdVerdict::MachineEndOther
            | AmdVerdict::Fax => AnswerKind::Machine,
        }
    }

    /// Whether the machine's greeting is over (`machine_end_beep`, `machine_end_silence`,
    /// `machine_end_other`), so a voicemail message played now is recorded.
    pub fn greeting_over(self) -> bool {
        matches!(
            self,
            AmdVerdict::MachineEndBeep | AmdVerdict::MachineEndSilence | AmdVerdict::MachineEndOther
        )
    }

    /// What to do with a call already connected to the agent when this verdict arrives:
    /// `None` keeps it with the agent (`human`, `unknown`); the voicemail message is left only
    /// after the end of a machine's greeting (`machine_end_*`) and when the campaign leaves one;
    /// a machine still greeting (`machine_start`) or a fax is hung up.
    pub fn action(self, voicemail: VoicemailAction) -> Option<AnswerAction> {
        match (self, voicemail) {
            (AmdVerdict::Human | AmdVerdict::Unknown, _) => None,
            (
                AmdVerdict::MachineEndBeep | AmdVerdict::MachineEndSilence | AmdVerdict::MachineEndOther,
                VoicemailAction::LeaveMessage,
            ) => Some(AnswerAction::LeaveVoicemail),
            _ => Some(AnswerAction::Hangup),
        }
    }
}

/// The attempt a callback belongs to, read from the callback URL's query (`campaign`,
/// `contact`, `attempt`), which dialerd wrote when it placed the call and Twilio signed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CallbackTarget {
    /// Campaign id.
    pub campaign: String,
    /// Contact id.
    pub contact: ContactId,
    /// 1-based attempt number.
    pub attempt: u32,
}

impl CallbackTarget {
    /// The attempt key.
    pub fn key(&self) -> AttemptKey {
        AttemptKey {
            contact: self.contact,
            attempt: self.attempt,
        }
    }
}

/// Why a call ended, from its final `CallStatus` and the `SipResponseCode` of a failed call
/// (RFC 3261 §21: 486 Busy Here, 600 Busy Everywhere and 603 Decline are a busy line; 408
/// Request Timeout, 480 Temporarily Unavailable and 487 Request Terminated went unanswered).
/// `None` for a status that is not final.
pub fn end_reason(status: CallStatus, sip_response_code: Option<u16>) -> Option<EndReason> {
    Some(match status {
        CallStatus::Completed => EndReason::Hangup,
        CallStatus::Busy => EndReason::Busy,
        CallStatus::NoAnswer | CallStatus::Canceled => EndReason::NoAnswer,
        CallStatus::Failed => match sip_response_code {
            Some(486 | 600 | 603) => EndReason::Busy,
            Some(408 | 480 | 487) => EndReason::NoAnswer,
            _ => EndReason::Failed,
        },
        CallStatus::Queued | CallStatus::Initiated | CallStatus::Ringing | CallStatus::InProgress => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Call, CallEvent, Outcome};
    use proptest::prelude::*;

    /// One delivered callback: status, `SequenceNumber`, `SipResponseCode`.
    type Step = (CallStatus, Option<u32>, Option<u16>);
    /// `AnsweredBy`, verdict, answer kind, action when leaving messages, action when hanging up.
    type AmdRow = (
        &'static str,
        AmdVerdict,
        AnswerKind,
        Option<AnswerAction>,
        Option<AnswerAction>,
    );

    #[test]
    fn end_reasons_by_status_and_sip_code() {
        use CallStatus::*;
        let table: &[(CallStatus, Option<u16>, Option<EndReason>)] = &[
            (Completed, None, Some(EndReason::Hangup)),
            (Busy, None, Some(EndReason::Busy)),
            (Busy, Some(486), Some(EndReason::Busy)),
            (NoAnswer, None, Some(EndReason::NoAnswer)),
            (NoAnswer, Some(487), Some(EndReason::NoAnswer)),
            (Canceled, None, Some(EndReason::NoAnswer)),
            (Failed, None, Some(EndReason::Failed)),
            (Failed, Some(404), Some(EndReason::Failed)),
            (Failed, Some(484), Some(EndReason::Failed)),
            (Failed, Some(503), Some(EndReason::Failed)),
            (Failed, Some(486), Some(EndReason::Busy)),
            (Failed, Some(600), Some(EndReason::Busy)),
            (Failed, Some(603), Some(EndReason::Busy)),
            (Failed, Some(408), Some(EndReason::NoAnswer)),
            (Failed, Some(480), Some(EndReason::NoAnswer)),
            (Failed, Some(487), Some(EndReason::NoAnswer)),
            (Queued, None, None),
            (Initiated, None, None),
            (Ringing, Some(180), None),
            (InProgress, None, None),
        ];
        for &(status, sip, want) in table {
            assert_eq!(end_reason(status, sip), want, "{status:?} {sip:?}");
        }
    }

    #[test]
    fn statuses_parse_from_twilio_s_spelling() {
        let form = "CallSid=CA1&CallStatus=no-answer&SequenceNumber=3&SipResponseCode=487&CallDuration=0\
                    &Timestamp=Tue%2C%2001%20Dec%202026%2021%3A00%3A00%20%2B0000&Extra=ignored";
        let cb: StatusCallback = serde_urlencoded::from_str(form).unwrap();
        assert_eq!(cb.call_status, CallStatus::NoAnswer);
        assert_eq!(
            (cb.sequence_number, cb.sip_response_code, cb.call_duration),
            (Some(3), Some(487), Some(0))
        );
        let at = cb.at(Utc::now());
        assert_eq!(at.to_rfc3339(), "2026-12-01T21:00:00+00:00");
        for s in [
            "queued",
            "initiated",
            "ringing",
            "in-progress",
            "completed",
            "busy",
            "failed",
            "canceled",
        ] {
            let cb: StatusCallback = serde_urlencoded::from_str(&format!("CallSid=CA1&CallStatus={s}")).unwrap();
            assert_eq!(cb.sequence_number, None);
        }
        assert!(serde_urlencoded::from_str::<StatusCallback>("CallSid=CA1&CallStatus=answered").is_err());
    }

    #[test]
    fn amd_verdicts_parse_and_act() {
        use AmdVerdict::*;
        use VoicemailAction::{Hangup as Hang, LeaveMessage as Leave};
        let table: &[AmdRow] = &[
            ("human", Human, AnswerKind::Human, None, None),
            ("unknown", Unknown, AnswerKind::Unknown, None, None),
            (
                "machine_start",
                MachineStart,
                AnswerKind::Machine,
                Some(AnswerAction::Hangup),
                Some(AnswerAction::Hangup),
            ),
            (
                "machine_end_beep",
                MachineEndBeep,
                AnswerKind::Machine,
                Some(AnswerAction::LeaveVoicemail),
                Some(AnswerAction::Hangup),
            ),
            (
                "machine_end_silence",
                MachineEndSilence,
                AnswerKind::Machine,
                Some(AnswerAction::LeaveVoicemail),
                Some(AnswerAction::Hangup),
            ),
            (
                "machine_end_other",
                MachineEndOther,
                AnswerKind::Machine,
                Some(AnswerAction::LeaveVoicemail),
                Some(AnswerAction::Hangup),
            ),
            (
                "fax",
                Fax,
                AnswerKind::Machine,
                Some(AnswerAction::Hangup),
                Some(AnswerAction::Hangup),
            ),
        ];
        for &(s, verdict, kind, leave, hang) in table {
            let cb: AmdCallback =
                serde_urlencoded::from_str(&format!("CallSid=CA1&AnsweredBy={s}&MachineDetectionDuration=2100"))
                    .unwrap();
            assert_eq!(cb.answered_by, verdict, "{s}");
            assert_eq!(cb.machine_detection_duration, Some(2100));
            assert_eq!(verdict.answer_kind(), kind, "{s}");
            assert_eq!(verdict.action(Leave), leave, "{s}");
            assert_eq!(verdict.action(Hang), hang, "{s}");
        }
        assert!(serde_urlencoded::from_str::<AmdCallback>("CallSid=CA1&AnsweredBy=robot").is_err());
    }

    fn run(track: &mut CallTrack, steps: &[Step]) -> Vec<CallEvent> {
        steps.iter().flat_map(|&(s, q, sip)| track.apply(s, q, sip)).collect()
    }

    #[test]
    fn call_track_table() {
        use CallEvent::{Answered, Ended, Ringing as R};
        use CallStatus::*;
        let a = Answered(AnswerKind::Unknown);
        let cases: &[(&[Step], &[CallEvent])] = &[
            // In order.
            (
                &[
                    (Initiated, Some(0), None),
                    (Ringing, Some(1), None),
                    (InProgress, Some(2), None),
                    (Completed, Some(3), None),
                ],
                &[R, a, Ended(EndReason::Hangup)],
            ),
            // Duplicates dropped.
            (
                &[
                    (Ringing, Some(1), None),
                    (Ringing, Some(1), None),
                    (Busy, Some(2), None),
                    (Busy, Some(2), None),
                ],
                &[R, Ended(EndReason::Busy)],
            ),
            // A late ringing never reopens an ended call.
            (
                &[
                    (NoAnswer, Some(2), None),
                    (Ringing, Some(1), None),
                    (Initiated, Some(0), None),
                ],
                &[Ended(EndReason::NoAnswer)],
            ),
            // Completed before in-progress: the answer is filled in, the late answer dropped.
            (
                &[
                    (Completed, Some(3), None),
                    (InProgress, Some(2), None),
                    (Ringing, Some(1), None),
                ],
                &[R, a, Ended(EndReason::Hangup)],
            ),
            // Answered before ringing: ringing is implied, the late one dropped.
            (
                &[
                    (InProgress, Some(2), None),
                    (Ringing, Some(1), None),
                    (Completed, Some(3), None),
                ],
                &[R, a, Ended(EndReason::Hangup)],
            ),
            // A failed call's SIP code decides its reason; a second final callback changes nothing.
            (
                &[
                    (Initiated, Some(0), None),
                    (Failed, Some(1), Some(486)),
                    (Completed, Some(2), None),
                ],
                &[Ended(EndReason::Busy)],
            ),
            // Legacy callbacks without a sequence number still only move forward.
            (
                &[
                    (Ringing, None, None),
                    (Ringing, None, None),
                    (Canceled, None, None),
                    (Ringing, None, None),
                ],
                &[R, Ended(EndReason::NoAnswer)],
            ),
        ];
        for (steps, want) in cases {
            let mut t = CallTrack::new();
            assert_eq!(run(&mut t, steps), *want, "{steps:?}");
            assert!(t.is_ended());
        }
    }

    /// Twilio's callback sequences for each way a call can go, numbered in order.
    fn script(kind: u8, sip: u16) -> Vec<Step> {
        use CallStatus::*;
        let statuses: &[CallStatus] = match kind % 6 {
            0 => &[Initiated, Ringing, InProgress, Completed],
            1 => &[Initiated, Ringing, Busy],
            2 => &[Initiated, Ringing, NoAnswer],
            3 => &[Initiated, Failed],
            4 => &[Initiated, Ringing, Canceled],
            _ => &[Queued, Initiated, Ringing, InProgress, Completed],
        };
        let sip = [None, Some(sip)];
        statuses
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, Some(i as u32), if s == Failed { sip[1] } else { sip[0] }))
            .collect()
    }

    /// The core's outcome of a call that sees `events` (a free slot, voicemail `hangup`).
    fn outcome(events: &[CallEvent]) -> Option<Outcome> {
        let now = Utc::now();
        let mut call = Call::new(1, now);
        for e in events {
            match *e {
                CallEvent::Answered(kind) => {
                    call.answer(kind, true, VoicemailAction::Hangup, now);
                }
                CallEvent::Ended(reason) => return Some(call.outcome(reason)),
                _ => {}
            }
        }
        None
    }

    proptest! {
        #[test]
        fn shuffled_and_duplicated_callbacks_give_the_in_order_outcome(
            kind in 0u8..6,
            sip in prop::sample::select(vec![404u16, 408, 480, 486, 487, 500, 503, 600, 603]),
            dups in prop::collection::vec(0usize..5, 0..8),
            seed in any::<u64>(),
        ) {
            let steps = script(kind, sip);
            let in_order = run(&mut CallTrack::new(), &steps);
            let mut delivered = steps.clone();
            for d in dups {
                delivered.push(steps[d % steps.len()]);
            }
            // A deterministic shuffle from the seed (Fisher–Yates on a xorshift).
            let mut x = seed | 1;
            for i in (1..delivered.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                delivered.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut track = CallTrack::new();
            let events = run(&mut track, &delivered);
            // Exactly one end, last; at most one ringing and one answer; the same outcome.
            prop_assert_eq!(events.iter().filter(|e| matches!(e, CallEvent::Ended(_))).count(), 1);
            prop_assert!(matches!(events.last(), Some(CallEvent::Ended(_))));
            prop_assert!(events.iter().filter(|e| **e == CallEvent::Ringing).count() <= 1);
            prop_assert!(events.iter().filter(|e| matches!(e, CallEvent::Answered(_))).count() <= 1);
            prop_assert_eq!(outcome(&events), outcome(&in_order));
            prop_assert_eq!(events.last(), in_order.last());
            // Nothing delivered afterwards reopens it.
            for &(s, q, c) in &steps {
                prop_assert!(track.apply(s, q.map(|q| q + 100), c).is_empty());
            }
        }

        #[test]
        fn lost_callbacks_before_the_final_one_change_nothing(kind in 0u8..6, keep in any::<u8>()) {
            let steps = script(kind, 486);
            let last = steps.len() - 1;
            let kept: Vec<_> = steps
                .iter()
                .enumerate()
                .filter(|(i, _)| *i == last || keep & (1 << i) != 0)
                .map(|(_, s)| *s)
                .collect();
            let full = run(&mut CallTrack::new(), &steps);
            let partial = run(&mut CallTrack::new(), &kept);
            prop_assert_eq!(outcome(&partial), outcome(&full));
        }
    }
}
