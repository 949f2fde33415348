//! What a dial leaves in the store beyond the claim: a claim undone when the trunk provably
//! never created the call (the attempt is not counted), the outcome reason of an attempt the
//! trunk refused, and the instant a voicemail message was sent (for recovery after a crash).

use super::{Store, StoreError};
use crate::core::AttemptKey;
use chrono::{DateTime, Utc};

impl Store {
    /// Undoes a claim whose call the trunk provably never created (Twilio 429 / 20429, 503, an
    /// account limit), in one transaction: the attempt row is deleted, the attempt count lowered,
    /// and the contact made dialable again at `retry_at` (UTC; `pending` if it had no attempt
    /// before, `scheduled` otherwise). Nothing happens unless the attempt is still `dialing`
    /// with no call id; returns whether it was undone.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn release_claim(
        &self,
        key: AttemptKey,
        retry_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        on_engine!(self, release_claim(key, retry_at, now))
    }

    /// Records why `key` ended as it did (`twilio 21211: Invalid 'To' Phone Number`), shown by
    /// `dialerd export` as `outcome_reason`.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn set_outcome_reason(&self, key: AttemptKey, reason: &str) -> Result<(), StoreError> {
        on_engine!(self, set_outcome_reason(key, reason))
    }

    /// Records that the voicemail message of `key` is being sent at `at` (UTC), before the
    /// trunk is asked, so recovery after a crash knows the call got it.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn record_voicemail_sent(&self, key: AttemptKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        on_engine!(self, record_voicemail_sent(key, at))
    }
}
