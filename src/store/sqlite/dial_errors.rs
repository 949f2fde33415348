//! SQLite: what a dial leaves beyond the claim (see [`crate::store`]'s `dial_errors`).

use super::SqliteEngine;
use crate::core::AttemptKey;
use crate::store::{StoreError, to_ms};
use chrono::{DateTime, Utc};

impl SqliteEngine {
    pub(in crate::store) async fn release_claim(
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

    pub(in crate::store) async fn set_outcome_reason(&self, key: AttemptKey, reason: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE attempts SET outcome_reason = ? WHERE contact_id = ? AND attempt = ?")
            .bind(reason)
            .bind(key.contact)
            .bind(key.attempt)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn record_voicemail_sent(
        &self,
        key: AttemptKey,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE attempts SET voicemail_at = ? WHERE contact_id = ? AND attempt = ?")
            .bind(to_ms(at))
            .bind(key.contact)
            .bind(key.attempt)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
