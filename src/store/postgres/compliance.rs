//! PostgreSQL: deferrals, DNC marks, refusal counts and abandonment minutes (see
//! [`crate::store`]'s `compliance`).

use super::PgEngine;
use crate::core::{AttemptKey, ContactId, Disposition, RefusalReason};
use crate::store::compliance::{AbandonMinute, abandon_minute, parse_reason};
use crate::store::{StoreError, to_ms};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::BTreeMap;

/// Defers the contacts of `$1` each to at least its instant in `$2` (a contact listed twice
/// gets the later instant, as SQLite's one UPDATE per pair gives). Under READ COMMITTED another
/// node may be claiming the same contacts: the rows are locked in id order first (so two nodes
/// deferring overlapping sets never deadlock), and a row a concurrent claim moved to
/// `in_progress` fails the status re-check after the lock and is left alone.
const DEFER_SQL: &str = "WITH u AS (
         SELECT id, MAX(t) AS t FROM unnest($1::bigint[], $2::bigint[]) AS x(id, t) GROUP BY id
     ), locked AS (
         SELECT id FROM contacts WHERE id = ANY($1) AND status IN ('pending', 'scheduled') ORDER BY id FOR UPDATE
     )
     UPDATE contacts SET status = 'scheduled', next_attempt_at = GREATEST(contacts.next_attempt_at, u.t), updated_at = $3
     FROM u, locked
     WHERE contacts.id = u.id AND contacts.id = locked.id AND contacts.status IN ('pending', 'scheduled')";

/// Gives the dialable contacts of `$1` a final status and disposition; locked in id order and
/// re-checked after the lock, as in [`DEFER_SQL`]. A contact listed twice changes (and counts)
/// once, as in SQLite.
const MARK_FINAL_SQL: &str = "WITH locked AS (
         SELECT id FROM contacts WHERE id = ANY($1) AND status IN ('pending', 'scheduled') ORDER BY id FOR UPDATE
     )
     UPDATE contacts SET status = $2, disposition = $3, updated_at = $4
     FROM locked
     WHERE contacts.id = locked.id AND contacts.status IN ('pending', 'scheduled')";

impl PgEngine {
    pub(in crate::store) async fn defer_contacts(
        &self,
        until: &[(ContactId, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let ids: Vec<i64> = until.iter().map(|(id, _)| *id).collect();
        let times: Vec<i64> = until.iter().map(|(_, t)| to_ms(*t)).collect();
        sqlx::query(DEFER_SQL)
            .bind(ids)
            .bind(times)
            .bind(to_ms(now))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn mark_final(
        &self,
        ids: &[ContactId],
        disposition: Disposition,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let r = sqlx::query(MARK_FINAL_SQL)
            .bind(ids)
            .bind(disposition.contact_status().as_str())
            .bind(disposition.as_str())
            .bind(to_ms(now))
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    pub(in crate::store) async fn release_claim_dnc(
        &self,
        key: AttemptKey,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // The DELETE's condition is re-checked once the row is locked, so if another node gave
        // the attempt a call id (or closed it) first, nothing is deleted and nothing is undone.
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
                "UPDATE contacts SET status = 'dnc', disposition = $1, attempts = attempts - 1, updated_at = $2
                 WHERE id = $3 AND status = 'in_progress'",
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
        // Each upsert adds to the stored row under its lock, so counts two nodes add at once
        // both land; the reasons go in one order (the map's), so two nodes never deadlock.
        let mut tx = self.pool().begin().await?;
        for (reason, n) in counts.iter().filter(|(_, n)| **n > 0) {
            sqlx::query(
                "INSERT INTO compliance_refusals (campaign_id, reason, count, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (campaign_id, reason) DO UPDATE
                 SET count = compliance_refusals.count + excluded.count, updated_at = excluded.updated_at",
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
        let rows = sqlx::query("SELECT reason, count FROM compliance_refusals WHERE campaign_id = $1")
            .bind(campaign)
            .fetch_all(self.pool())
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
        // SQLite sums the boolean itself (0 or 1); PostgreSQL needs it as an integer, and its
        // SUM of BIGINT is NUMERIC.
        let rows = sqlx::query(
            "SELECT answered_at / 60000 AS minute, COUNT(*) AS human,
               COALESCE(SUM(CASE WHEN outcome = 'abandoned' OR speech_abandoned = 1 THEN 1 ELSE 0 END), 0)::BIGINT
                 AS abandoned
             FROM attempts WHERE campaign_id = $1 AND answered_at >= $2
             AND outcome IN ('human', 'callback_requested', 'abandoned')
             GROUP BY minute ORDER BY minute",
        )
        .bind(campaign)
        .bind(to_ms(since))
        .fetch_all(self.pool())
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
