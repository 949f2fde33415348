//! What a dial leaves in the store beyond the claim: a claim undone when the trunk provably
//! never created the call (the attempt is not counted), the outcome reason of an attempt the
//! trunk refused, and the instant a voicemail message was sent (for recovery after a crash).

use super::{Store, StoreError, to_ms};
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
        let mut tx = self.pool().begin().await?;
        let gone = sqlx::query(
            "DELETE FROM attempts WHERE contact_id = ? AND attempt = ? AND state = 'dialing' AND call_id IS NULL",
        )
        .bind(key.contact)
        .bind(key.attempt)
        .execute(&mut *tx)
        .await?;
        if gone.rows_affected() == 1 {
            sqlx::query(
                "UPDATE contacts SET status = CASE WHEN attempts - 1 = 0 THEN 'pending' ELSE 'scheduled' END,
                 attempts = attempts - 1, next_attempt_at = MAX(next_attempt_at, ?), updated_at = ?
                 WHERE id = ? AND status = 'in_progress'",
            )
            .bind(to_ms(retry_at))
            .bind(to_ms(now))
            .bind(key.contact)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(gone.rows_affected() == 1)
    }

    /// Records why `key` ended as it did (`twilio 21211: Invalid 'To' Phone Number`), shown by
    /// `dialerd export` as `outcome_reason`.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn set_outcome_reason(&self, key: AttemptKey, reason: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE attempts SET outcome_reason = ? WHERE contact_id = ? AND attempt = ?")
            .bind(reason)
            .bind(key.contact)
            .bind(key.attempt)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records that the voicemail message of `key` is being sent at `at` (UTC), before the
    /// trunk is asked, so recovery after a crash knows the call got it.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn record_voicemail_sent(&self, key: AttemptKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE attempts SET voicemail_at = ? WHERE contact_id = ? AND attempt = ?")
            .bind(to_ms(at))
            .bind(key.contact)
            .bind(key.attempt)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
