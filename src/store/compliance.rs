//! Compliance state in the store: deferring refused contacts, marking do-not-call contacts,
//! undoing a claim that the last DNC check stopped, the refusal audit counts, and the per-minute
//! abandonment history that seeds the core's ledger after a restart.

use super::{Store, StoreError, from_ms, to_ms};
use crate::core::{AttemptKey, ContactId, Disposition, RefusalReason};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::BTreeMap;

/// Human-answered and abandoned calls answered in one UTC minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbandonMinute {
    /// Start of the minute (UTC).
    pub minute: DateTime<Utc>,
    /// Calls answered by a person.
    pub human: u32,
    /// Of those, abandoned.
    pub abandoned: u32,
}

impl Store {
    /// Moves each contact's `next_attempt_at` to at least the given instant (UTC), for contacts a
    /// compliance rule refused until then. Contacts no longer dialable are left alone.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn defer_contacts(
        &self,
        until: &[(ContactId, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if until.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for (id, t) in until {
            sqlx::query(
                "UPDATE contacts SET status = 'scheduled', next_attempt_at = MAX(next_attempt_at, ?), updated_at = ?
                 WHERE id = ? AND status IN ('pending', 'scheduled')",
            )
            .bind(to_ms(*t))
            .bind(to_ms(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks dialable contacts as `dnc` (status and disposition): their number is on a list.
    /// Returns how many changed.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn mark_dnc(&self, ids: &[ContactId], now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.mark_final(ids, Disposition::Dnc, now).await
    }

    /// Marks dialable contacts `done` with disposition `no_consent`: they lack the consent the
    /// campaign requires. A re-import that changes their data makes them `pending` again.
    /// Returns how many changed.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn mark_no_consent(&self, ids: &[ContactId], now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.mark_final(ids, Disposition::NoConsent, now).await
    }

    /// Gives dialable contacts a final disposition and its status.
    async fn mark_final(
        &self,
        ids: &[ContactId],
        disposition: Disposition,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut n = 0;
        for id in ids {
            n += sqlx::query(
                "UPDATE contacts SET status = ?, disposition = ?, updated_at = ?
                 WHERE id = ? AND status IN ('pending', 'scheduled')",
            )
            .bind(disposition.contact_status().as_str())
            .bind(disposition.as_str())
            .bind(to_ms(now))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Undoes a claim that was never dialled because the number went on a DNC list between the
    /// claim and the dial: the attempt row is deleted, the attempt count lowered, and the contact
    /// marked `dnc`. Nothing happens unless the attempt is still `dialing` with no call id.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn release_claim_dnc(&self, key: AttemptKey, now: DateTime<Utc>) -> Result<bool, StoreError> {
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
                "UPDATE contacts SET status = 'dnc', disposition = ?, attempts = attempts - 1, updated_at = ?
                 WHERE id = ? AND status = 'in_progress'",
            )
            .bind(Disposition::Dnc.as_str())
            .bind(to_ms(now))
            .bind(key.contact)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(gone.rows_affected() == 1)
    }

    /// Adds refusal counts to `campaign`'s audit totals.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn add_refusals(
        &self,
        campaign: &str,
        counts: &BTreeMap<RefusalReason, u64>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for (reason, n) in counts.iter().filter(|(_, n)| **n > 0) {
            sqlx::query(
                "INSERT INTO compliance_refusals (campaign_id, reason, count, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (campaign_id, reason) DO UPDATE SET count = count + excluded.count, updated_at = excluded.updated_at",
            )
            .bind(campaign)
            .bind(reason.as_str())
            .bind(i64::try_from(*n).unwrap_or(i64::MAX))
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `campaign`'s refusal totals by reason (reasons never counted are absent).
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for an unknown reason.
    pub async fn refusal_counts(&self, campaign: &str) -> Result<BTreeMap<RefusalReason, u64>, StoreError> {
        let rows = sqlx::query("SELECT reason, count FROM compliance_refusals WHERE campaign_id = ?")
            .bind(campaign)
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let reason: String = r.try_get("reason")?;
                let reason = reason
                    .parse()
                    .map_err(|e: crate::core::types::UnknownVariant| StoreError::Corrupt(e.to_string()))?;
                Ok((reason, r.try_get::<i64, _>("count")?.max(0) as u64))
            })
            .collect()
    }

    /// Human-answered and abandoned attempts of `campaign` answered at or after `since`, per UTC
    /// minute, oldest first: the exact history the core's abandonment ledger holds (a call
    /// abandoned for the agent's silence counts in its answer's minute, as the core records it).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn abandon_minutes(
        &self,
        campaign: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<AbandonMinute>, StoreError> {
        let rows = sqlx::query(
            "SELECT answered_at / 60000 AS minute, COUNT(*) AS human,
               COALESCE(SUM(outcome = 'abandoned' OR speech_abandoned = 1), 0) AS abandoned
             FROM attempts WHERE campaign_id = ? AND answered_at >= ?
             AND outcome IN ('human', 'callback_requested', 'abandoned')
             GROUP BY minute ORDER BY minute",
        )
        .bind(campaign)
        .bind(to_ms(since))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let clamp = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
                Ok(AbandonMinute {
                    minute: from_ms(r.try_get::<i64, _>("minute")? * 60_000),
                    human: clamp(r.try_get("human")?),
                    abandoned: clamp(r.try_get("abandoned")?),
                })
            })
            .collect()
    }
}
