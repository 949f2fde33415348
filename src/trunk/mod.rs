//! Telephony trunks behind one trait. An adapter places calls, carries out answer actions, and
//! reports call events on the channel it was built with. Adapters: `sim` (built in), `twilio`, `livekit`.

pub mod livekit;
pub mod sim;
pub mod twilio;

use crate::core::{AnswerAction, AttemptKey, CallEvent};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Everything a trunk needs to place one call.
#[derive(Clone, Debug)]
pub struct DialRequest {
    /// Campaign id, for the adapter's logs and callbacks.
    pub campaign: String,
    /// The attempt; every event for this call carries it back.
    pub key: AttemptKey,
    /// Number to call, E.164.
    pub to: String,
    /// Caller id, E.164.
    pub from: String,
    /// Voice agent that takes the call when it is connected.
    pub agent_id: String,
    /// Give up ringing after this long (≥ 15 s).
    pub ring_timeout: Duration,
    /// Rendered voicemail message, played after the beep on `LeaveVoicemail`.
    pub voicemail_message: Option<String>,
    /// Rendered safe-harbor message, played within 2 s of answer on `PlaySafeHarbor`
    /// (FTC TSR 16 CFR 310.4(b)(4)(iii)); carried with the dial so the adapter can play it without
    /// another round trip.
    pub safe_harbor_message: Option<String>,
}

/// A call event reported by a trunk.
#[derive(Clone, Debug)]
pub struct TrunkEvent {
    /// The attempt the event belongs to.
    pub key: AttemptKey,
    /// The trunk's id for the call.
    pub call_id: String,
    /// When it happened (UTC, trunk clock).
    pub at: DateTime<Utc>,
    /// What happened.
    pub event: CallEvent,
    /// The conversation of a connected call, carried on its `Ended` event (boxed: most events have none).
    pub detail: Option<Box<crate::call::CallDetail>>,
}

/// Errors from a trunk, in the classes the runner acts on differently.
#[derive(Debug, thiserror::Error)]
pub enum TrunkError {
    /// The trunk could not be reached or is overloaded and the call may or may not exist (a
    /// timeout, a 500): retry later; a failed dial is closed as `failed`, counting the attempt.
    #[error("trunk unavailable: {0}")]
    Unavailable(String),
    /// The trunk refused this request and will again (unknown call, a bad credential).
    #[error("trunk rejected the request: {0}")]
    Rejected(String),
    /// The call was provably never created and may be placed later (Twilio 429 / 20429, 503,
    /// the account's own CPS or concurrency limit): the claim is undone without counting an
    /// attempt and the campaign backs off for `retry_after` (the trunk's `Retry-After`) or its
    /// own backoff.
    #[error("trunk says not now: {reason}")]
    NotPlaced {
        /// Why (no credential, no URL).
        reason: String,
        /// How long the trunk asked to wait.
        retry_after: Option<Duration>,
    },
    /// The trunk will never place a call to this number (Twilio 21211 invalid `To`, 21214,
    /// 21215, 21216, 21217, other 4xx about the request): the attempt is closed `failed` with
    /// `reason` as its outcome reason, and the contact is not dialled again.
    #[error("trunk refused the number: {reason}")]
    Permanent {
        /// The trunk's error code, when it gave one (`21211`).
        code: Option<u32>,
        /// The attempt's outcome reason, e.g. `twilio 21211: Invalid 'To' Phone Number`.
        reason: String,
    },
}

/// What a trunk knows of a call placed before a restart, for the recovery at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// Still going (queued, ringing or answered): follow it to its end.
    Live {
        /// The trunk's id for the call (found by listing when none was stored).
        call_id: String,
        /// Whether it was answered (`in-progress`).
        answered: bool,
        /// Its AMD verdict so far, when it was answered and classified.
        amd: Option<crate::core::AnswerKind>,
    },
    /// Over: close the attempt with this outcome.
    Ended {
        /// The trunk's id for the call, when one was found.
        call_id: Option<String>,
        /// How it ended.
        reason: crate::core::EndReason,
        /// Whether it was answered before it ended.
        answered: bool,
        /// Its AMD verdict, when it had one.
        amd: Option<crate::core::AnswerKind>,
    },
    /// The trunk has no call for the attempt, and can prove it (Twilio: no call to the number
    /// created since the claim): the claim is undone without counting an attempt.
    NeverPlaced,
    /// The trunk cannot tell (no such call, the trunk unreachable, a trunk that keeps nothing):
    /// the attempt is closed `unknown`.
    Unknown,
}

/// An attempt left open by an earlier run, as the trunk is asked about it.
#[derive(Clone, Debug)]
pub struct OpenCall {
    /// The campaign.
    pub campaign: String,
    /// The attempt.
    pub key: AttemptKey,
    /// The trunk's call id, when the dial's answer was stored.
    pub call_id: Option<String>,
    /// The number dialled, E.164.
    pub to: String,
    /// When the attempt was claimed (UTC): no call for it can have started earlier.
    pub claimed_at: DateTime<Utc>,
    /// The contact's rendered voicemail message, for a live call that still needs it.
    pub voicemail_message: Option<String>,
    /// The contact's rendered safe-harbor message.
    pub safe_harbor_message: Option<String>,
}

/// A telephony trunk adapter.
#[async_trait]
pub trait Trunk: Send + Sync {
    /// Places a call and returns the trunk's call id. Events follow on the adapter's channel.
    ///
    /// Errors: [`TrunkError`]; no event follows a failed dial.
    async fn dial(&self, req: DialRequest) -> Result<String, TrunkError>;

    /// Carries out the core's decision for an answered call.
    ///
    /// Errors: [`TrunkError::Rejected`] when the call is unknown or already over.
    async fn act(&self, call_id: &str, action: AnswerAction) -> Result<(), TrunkError>;

    /// What became of a call placed before a restart: live (its events follow on the channel),
    /// ended with its real reason, or unknown (the attempt is then closed as `unknown`).
    async fn recover(&self, call: &OpenCall) -> Recovered;

    /// Sends a text message `body` to `to` (E.164) from `from` (E.164); returns the trunk's message id.
    ///
    /// Errors: [`TrunkError::Rejected`] when the adapter cannot send messages (the default).
    async fn sms(&self, from: &str, to: &str, body: &str) -> Result<String, TrunkError> {
        let _ = (from, to, body);
        Err(TrunkError::Rejected("this trunk does not send text messages".into()))
    }

    /// Which of `numbers` (E.164) the account may not present as caller ID, checked with the
    /// provider; `Ok(None)` when the provider offers no way to tell (the default: sim trunk).
    ///
    /// Errors: [`TrunkError`] when the provider cannot be asked (the caller decides what to do).
    async fn unowned_caller_ids(&self, numbers: &[String]) -> Result<Option<Vec<String>>, TrunkError> {
        let _ = numbers;
        Ok(None)
    }

    /// The account this trunk dials through and its limits shared by every node on the database
    /// (claims take them in the store, [`crate::store::Store::claim_attempts_limited`]); `None`
    /// when the account has none (the default).
    fn account_limit(&self) -> Option<crate::core::AccountLimit> {
        None
    }
}

/// The CPS quota for `cps` calls per second: one dial per `1/cps` seconds with no burst, so no
/// rolling second ever holds more than `cps` dials (a burst of `cps` would allow `2·cps − 1`).
pub fn cps_quota(cps: u32) -> governor::Quota {
    let cps = std::num::NonZeroU32::new(cps).unwrap_or(std::num::NonZeroU32::MIN);
    governor::Quota::with_period(Duration::from_secs(1) / cps.get())
        .unwrap_or_else(|| governor::Quota::per_second(cps))
        .allow_burst(std::num::NonZeroU32::MIN)
}
