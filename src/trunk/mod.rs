//! Telephony trunks behind one trait. An adapter places calls, carries out answer actions, and
//! reports call events on the channel it was built with. Adapters: `sim` (built in).

pub mod sim;

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
    pub detail: Option<Box<crate::analysis::record::CallDetail>>,
}

/// Errors from a trunk. `Unavailable` may succeed later; `Rejected` will not.
#[derive(Debug, thiserror::Error)]
pub enum TrunkError {
    /// The trunk could not be reached or is overloaded; retry later.
    #[error("trunk unavailable: {0}")]
    Unavailable(String),
    /// The trunk refused this request (bad number, unknown call).
    #[error("trunk rejected the request: {0}")]
    Rejected(String),
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

    /// Whether the trunk still holds a call started before a restart; `false` when it cannot know
    /// (the attempt is then closed as `unknown`).
    async fn is_live(&self, call_id: &str) -> bool;

    /// Sends a text message `body` to `to` (E.164) from `from` (E.164); returns the trunk's message id.
    ///
    /// Errors: [`TrunkError::Rejected`] when the adapter cannot send messages (the default).
    async fn sms(&self, from: &str, to: &str, body: &str) -> Result<String, TrunkError> {
        let _ = (from, to, body);
        Err(TrunkError::Rejected("this trunk does not send text messages".into()))
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
