//! PostgreSQL: what a dial leaves beyond the claim (see [`crate::store`]'s `dial_errors`).

use super::PgEngine;
use crate::core::AttemptKey;
use crate::store::{StoreError, to_ms};
use chrono::{DateTime, Utc};

impl PgEngine {
    pub(in crate::store) async fn release_claim(
        &self,
        key: AttemptKey,
        retry_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let gone = sqlx::query(
            "DELETE FROM attempts WHERE contact_id = $1 AND attempt = $2 AND state = 'dialing' AND call_id IS NULL",
        )
        .bind(key.contact)
        .bind(i64::from(key.attempt))
        .execute(&mut *tx)
        .await?;
        if gone.rows_affected() == 1 {
            sqlx::query(
                "UPDATE contacts SET status = CASE WHEN attempts - 1 = 0 THEN 'pending' ELSE 'scheduled' END,
                 attempts = attempts - 1, next_attempt_at = GREATEST(next_attempt_at, $1), updated_at = $2
                 WHERE id = $3 AND status = 'in_progress'",
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
        sqlx::query("UPDATE attempts SET outcome_reason = $1 WHERE contact_id = $2 AND attempt = $3")
            .bind(reason)
            .bind(key.contact)
            .bind(i64::from(key.attempt))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn record_voicemail_sent(
        &self,
        key: AttemptKey,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE attempts SET voicemail_at = $1 WHERE contact_id = $2 AND attempt = $3")
            .bind(to_ms(at))
            .bind(key.contact)
            .bind(i64::from(key.attempt))
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
