//! SQLite: deferrals, DNC marks, refusal counts and abandonment minutes (see [`crate::store`]'s
//! `compliance`).

use super::SqliteEngine;
use crate::core::{AttemptKey, ContactId, Disposition, RefusalReason};
use crate::store::compliance::{AbandonMinute, abandon_minute, parse_reason};
use crate::store::{StoreError, to_ms};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::BTreeMap;

impl SqliteEngine {
    pub(in crate::store) async fn defer_contacts(
        &self,
        until: &[(ContactId, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
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

    pub(in crate::store) async fn mark_final(
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

    pub(in crate::store) async fn release_claim_dnc(
        &self,
        key: AttemptKey,
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

    pub(in crate::store) async fn add_refusals(
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

    pub(in crate::store) async fn refusal_counts(
        &self,
        campaign: &str,
    ) -> Result<BTreeMap<RefusalReason, u64>, StoreError> {
        let rows = sqlx::query("SELECT reason, count FROM compliance_refusals WHERE campaign_id = ?")
            .bind(campaign)
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let reason = parse_reason(&r.try_get::<String, _>("reason")?)?;
                Ok((reason, r.try_get::<i64, _>("count")?.max(0) as u64))
            })
            .collect()
    }

    pub(in crate::store) async fn abandon_minutes(
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
                Ok(abandon_minute(
                    r.try_get("minute")?,
                    r.try_get("human")?,
                    r.try_get("abandoned")?,
                ))
            })
            .collect()
    }
}
