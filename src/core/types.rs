//! Domain vocabulary shared by every layer: contact ids, attempt keys, call outcomes,
//! contact statuses and dispositions. Plain data, no behaviour beyond string forms.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Row id of a contact in the store (unique across campaigns).
pub type ContactId = i64;

/// Identifies one dial: the contact and its 1-based attempt number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttemptKey {
    /// The contact dialled.
    pub contact: ContactId,
    /// 1-based attempt number over the contact's lifetime.
    pub attempt: u32,
}

impl fmt::Display for AttemptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.contact, self.attempt)
    }
}

/// Error returned when a stored string names no known variant.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownVariant {
    /// Which enum was being parsed ("outcome", "status", ...).
    pub kind: &'static str,
    /// The string that did not match.
    pub value: String,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $kind:literal { $($(#[$vm:meta])* $var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The snake_case form used in storage, logs and exports.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$var),)+
                    _ => Err(UnknownVariant { kind: $kind, value: s.to_string() }),
                }
            }
        }
    };
}

string_enum! {
    /// How one call attempt ended.
    Outcome, "outcome" {
        /// A person answered and was connected to an agent slot.
        Human => "human",
        /// A person answered, talked, and asked to be called back later.
        CallbackRequested => "callback_requested",
        /// An answering machine took the call and the voicemail message was played after the beep.
        VoicemailLeft => "voicemail_left",
        /// An answering machine took the call and it was hung up (voicemail action `hangup`).
        Machine => "machine",
        /// Rang until `ring_timeout` without an answer.
        NoAnswer => "no_answer",
        /// The line was busy.
        Busy => "busy",
        /// The network or trunk could not place the call.
        Failed => "failed",
        /// A person answered but no agent slot was free: the safe-harbor message played.
        Abandoned => "abandoned",
        /// The attempt was left open by a crash; what happened is not known. Counts as an attempt.
        Unknown => "unknown",
    }
}

string_enum! {
    /// Where a contact stands in its campaign.
    ContactStatus, "contact status" {
        /// Imported, never dialled.
        Pending => "pending",
        /// Waiting for `next_attempt_at` (a retry or a callback).
        Scheduled => "scheduled",
        /// An attempt is open: the contact is being dialled or is on a call.
        InProgress => "in_progress",
        /// Finished with a final disposition.
        Done => "done",
        /// `max_attempts` reached without a final disposition.
        Exhausted => "exhausted",
        /// On a do-not-call list (global or the campaign's), or opted out during a call: never dialled again.
        Dnc => "dnc",
    }
}

impl ContactStatus {
    /// True for statuses from which a dial may still happen (now or later).
    pub fn is_dialable(self) -> bool {
        matches!(self, ContactStatus::Pending | ContactStatus::Scheduled)
    }
}

string_enum! {
    /// What an attempt decided for its contact; the last one is the contact's disposition.
    Disposition, "disposition" {
        /// A person was reached and the conversation ended normally.
        Completed => "completed",
        /// The voicemail message was left; no further attempt.
        VoicemailLeft => "voicemail_left",
        /// Another attempt is scheduled after the retry delay for the outcome.
        RetryScheduled => "retry_scheduled",
        /// The contact asked for a callback; another attempt is scheduled after the callback delay.
        CallbackScheduled => "callback_scheduled",
        /// No attempt left under `max_attempts`.
        Exhausted => "exhausted",
        /// The number is on a do-not-call list, or the person opted out during the call.
        Dnc => "dnc",
        /// The trunk will never call this number (Twilio 21211 invalid `To`, 21217 not a valid
        /// number, …): no further attempt.
        InvalidNumber => "invalid_number",
        /// The contact lacks the consent the campaign requires (`[compliance] consent`): never
        /// dialled. A re-import that changes the contact's data looks at it again.
        NoConsent => "no_consent",
    }
}

impl Disposition {
    /// The contact status this disposition leaves the contact in.
    pub fn contact_status(self) -> ContactStatus {
        match self {
            Disposition::Completed
            | Disposition::VoicemailLeft
            | Disposition::InvalidNumber
            | Disposition::NoConsent => ContactStatus::Done,
            Disposition::RetryScheduled | Disposition::CallbackScheduled => ContactStatus::Scheduled,
            Disposition::Exhausted => ContactStatus::Exhausted,
            Disposition::Dnc => ContactStatus::Dnc,
        }
    }
}

string_enum! {
    /// Why a dial was refused for compliance; counted per campaign and shown by `dialerd status`.
    RefusalReason, "refusal reason" {
        /// Outside the campaign period, legal hours (16 CFR 310.4(c)) or every calling window, in
        /// some candidate zone of the contact.
        OutsideHours => "outside_hours",
        /// The contact's local date is one of the campaign's holidays.
        Holiday => "holiday",
        /// The number is on the global or the campaign's do-not-call list.
        Dnc => "dnc",
        /// Dials beyond progressive held back because they could push abandonment over the cap
        /// (16 CFR 310.4(b)(4)(i), Ofcom); counted once per pacing decision that was held back.
        AbandonCap => "abandon_cap",
        /// `max_attempts` over the lifetime or `max_attempts_per_day` in the contact's local day reached.
        AttemptLimit => "attempt_limit",
        /// Less than `min_gap` since the contact's last attempt.
        MinGap => "min_gap",
        /// The contact's last call was abandoned less than 72 hours ago (modes that can abandon).
        RecentAbandon => "recent_abandon",
        /// Outside a state's or province's hours for the contact's local weekday (a jurisdiction
        /// rule from `jurisdictions.toml`, for example Fla. Stat. 501.616(6)).
        StateHours => "state_hours",
        /// A day on which a jurisdiction of the contact allows no call (a Sunday, a state holiday).
        StateDay => "state_day",
        /// A jurisdiction's cap on calls to one person in a rolling 24 hours is reached.
        StateCap => "state_cap",
        /// The contact lacks the consent the campaign requires (`[compliance] consent`; an AI
        /// voice is an artificial voice under the TCPA, 47 U.S.C. 227(b), FCC 24-17).
        NoConsent => "no_consent",
        /// The caller ID this contact was called from before is at its cap of dials in a rolling
        /// 24 hours (`[caller_id] daily_cap`); the retry waits for it rather than change number.
        CallerIdCap => "caller_id_cap",
    }
}

/// What answered the call, as classified by the trunk's answering-machine detection (AMD).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    /// A person.
    Human,
    /// An answering machine or voicemail box.
    Machine,
    /// AMD could not tell; treated as a person so nobody is hung up on.
    Unknown,
}

/// Why a call ended before or after answer, as reported by the trunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Ended after answer (either side hung up, or the message finished).
    Hangup,
    /// Not answered within the ring timeout.
    NoAnswer,
    /// Busy signal.
    Busy,
    /// The call could not be placed or dropped in the network.
    Failed,
}
