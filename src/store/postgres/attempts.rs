//! PostgreSQL: campaign rows and the attempt lifecycle (see [`crate::store`]'s `attempts`).
//!
//! Several nodes share the database under READ COMMITTED. A claim locks the campaign row `FOR
//! SHARE` (an operator's pause or cancel, an UPDATE of that row, waits for it, and it sees any
//! pause committed before), locks the candidate contacts `FOR UPDATE SKIP LOCKED` (a contact
//! another node is claiming is skipped, never waited for, so two claims cannot deadlock), and then
//! moves each with the same conditional UPDATE as SQLite: a racer that got past the lock anyway
//! re-evaluates that WHERE on the latest row version and updates 0 rows, and the attempt row is
//! inserted only for a contact this transaction moved. Closing and answering are conditional on
//! the attempt's state in the same way, so only one closer of an attempt applies its next step.

use super::PgEngine;
use crate::core::account::AccountLimit;
use crate::core::{AttemptKey, Disposition, NextStep, Outcome};
use crate::store::attempts::{CampaignState, Claim, OpenAttempt};
use crate::store::{Claimed, PostCall, StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};
use std::collections::{BTreeMap, HashSet};

/// Locks the campaign row against a concurrent change of its control for the claim's transaction.
const LOCK_CAMPAIGN_SQL: &str = "SELECT control FROM campaigns WHERE id = $1 FOR SHARE";
/// Locks the contacts a claim may move; ones locked by another transaction are left out.
const LOCK_CONTACTS_SQL: &str = "SELECT id FROM contacts
    WHERE id = ANY($1) AND campaign_id = $2 AND status IN ('pending', 'scheduled')
    FOR UPDATE SKIP LOCKED";
/// Claims one contact: conditional on its status, due time, exact attempt count and no DNC entry.
const CLAIM_SQL: &str = "UPDATE contacts SET status = 'in_progress', attempts = attempts + 1, updated_at = $1,
    caller_id = COALESCE($2, caller_id)
    WHERE id = $3 AND campaign_id = $4 AND status IN ('pending', 'scheduled') AND next_attempt_at <= $5
    AND attempts = $6 AND attempts < $7
    AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.phone_e164 = contacts.phone_e164 AND d.scope IN ('global', $8))
    AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = contacts.campaign_id AND c.control = 'running')";
/// The attempt row of a claim, state `dialing`.
const INSERT_ATTEMPT_SQL: &str =
    "INSERT INTO attempts (campaign_id, contact_id, attempt, phone_e164, state, started_at, caller_id, lease_token)
    VALUES ($1, $2, $3, $4, 'dialing', $5, $6, $7)";
/// The trunk's call ids of placed attempts, one statement for the batch.
const DIALED_SQL: &str = "UPDATE attempts a SET call_id = u.call_id
    FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS u(contact_id, attempt, call_id)
    WHERE a.contact_id = u.contact_id AND a.attempt = u.attempt";
/// An answer.
const ANSWERED_SQL: &str = "UPDATE attempts SET state = 'answered', answered_at = $1
    WHERE contact_id = $2 AND attempt = $3 AND state = 'dialing'";
/// Closing an attempt, once.
const CLOSE_ATTEMPT_SQL: &str = "UPDATE attempts SET state = 'ended', ended_at = $1, outcome = $2, disposition = $3
    WHERE contact_id = $4 AND attempt = $5 AND state != 'ended'";
/// The policy's next step for the contact of a closed attempt.
const CLOSE_CONTACT_SQL: &str =
    "UPDATE contacts SET status = $1, disposition = $2, next_attempt_at = $3, last_outcome = $4,
    updated_at = $5 WHERE id = $6 AND status = 'in_progress'";

/// The writes of the dialing hot path, by name, for [`crate::store::Store::hot_query_plans`].
pub(in crate::store) const HOT_WRITES: &[(&str, &str)] = &[
    ("claim_lock_contacts", LOCK_CONTACTS_SQL),
    ("claim_contact", CLAIM_SQL),
    ("insert_attempt", INSERT_ATTEMPT_SQL),
    ("record_dialed_many", DIALED_SQL),
    ("record_answered", ANSWERED_SQL),
    ("close_attempt", CLOSE_ATTEMPT_SQL),
    ("close_contact", CLOSE_CONTACT_SQL),
    ("account_in_progress", crate::store::account_limits::IN_PROGRESS_SQL_PG),
];

impl PgEngine {
    pub(in crate::store) async fn activate_campaign(
        &self,
        id: &str,
        name: &str,
        file: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO campaigns (id, name, file, state, created_at, updated_at) VALUES ($1, $2, $3, 'active', $4, $5)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, file = excluded.file, state = 'active',
             updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(name)
        .bind(file)
        .bind(to_ms(now))
        .bind(to_ms(now))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn set_campaign_state(
        &self,
        id: &str,
        state: CampaignState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE campaigns SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(state.as_str())
            .bind(to_ms(now))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn claim_attempts(
        &self,
        campaign: &str,
        claims: &[Claim],
        max_attempts: u32,
        now: DateTime<Utc>,
        fence: Option<&crate::store::Fence>,
        limit: Option<&AccountLimit>,
    ) -> Result<Claimed, StoreError> {
        if claims.is_empty() {
            return Ok(Claimed::default());
        }
        let mut tx = self.pool().begin().await?;
        if let Some(f) = fence {
            // Locks the lease row FOR SHARE: a takeover's acquisition waits for this claim to
            // commit, so it then sees (and reconciles) every attempt claimed under the old token.
            super::leases::check_fence(&mut tx, campaign, f).await?;
        }
        // A pause committed before this point is seen by CLAIM_SQL's EXISTS (each statement reads
        // the latest commits); one issued after waits for this transaction to end.
        let control: Option<String> = sqlx::query_scalar(LOCK_CAMPAIGN_SQL)
            .bind(campaign)
            .fetch_optional(&mut *tx)
            .await?;
        if control.as_deref() != Some("running") {
            tx.commit().await?;
            return Ok(Claimed::default());
        }
        let ids: Vec<i64> = claims.iter().map(|c| c.key.contact).collect();
        let locked: HashSet<i64> = sqlx::query_scalar(LOCK_CONTACTS_SQL)
            .bind(&ids)
            .bind(campaign)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        // The account's row is locked last, by claims only, so claims of different campaigns
        // queue on it without a deadlock; the clock is read under that lock.
        let mut window = match limit {
            Some(l) => Some(super::account_limits::take(&mut tx, l, claims.len()).await?),
            None => None,
        };
        let room = window.as_ref().map_or(usize::MAX, |w| w.grant.granted as usize);
        let started_at = window.as_ref().map_or(to_ms(now), |w| w.at_ms);
        let mut claimed = Vec::with_capacity(claims.len().min(room));
        let mut considered = 0;
        for Claim { key, phone, caller_id } in claims {
            if claimed.len() >= room {
                break;
            }
            considered += 1;
            if !locked.contains(&key.contact) {
                continue;
            }
            let updated = sqlx::query(CLAIM_SQL)
                .bind(to_ms(now))
                .bind(caller_id)
                .bind(key.contact)
                .bind(campaign)
                .bind(to_ms(now))
                .bind(i64::from(key.attempt.saturating_sub(1)))
                .bind(i64::from(max_attempts))
                .bind(campaign)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() != 1 {
                continue;
            }
            sqlx::query(INSERT_ATTEMPT_SQL)
                .bind(campaign)
                .bind(key.contact)
                .bind(i64::from(key.attempt))
                .bind(phone)
                .bind(started_at)
                .bind(caller_id)
                .bind(fence.map(|f| f.token))
                .execute(&mut *tx)
                .await?;
            claimed.push(*key);
        }
        if let (Some(w), Some(l)) = (window.as_mut(), limit) {
            super::account_limits::store(&mut tx, l, w, claimed.len()).await?;
        }
        tx.commit().await?;
        Ok(Claimed::new(claimed, considered, claims.len(), window.as_ref()))
    }

    pub(in crate::store) async fn record_dialed_many(&self, placed: &[(AttemptKey, String)]) -> Result<(), StoreError> {
        // One UPDATE joins each row once: keep the last call id of a key given twice, as the
        // SQLite engine's statements in order leave it.
        let mut last: BTreeMap<AttemptKey, &str> = BTreeMap::new();
        for (key, call_id) in placed {
            last.insert(*key, call_id.as_str());
        }
        if last.is_empty() {
            return Ok(());
        }
        let contacts: Vec<i64> = last.keys().map(|k| k.contact).collect();
        let attempts: Vec<i64> = last.keys().map(|k| i64::from(k.attempt)).collect();
        let call_ids: Vec<String> = last.values().map(|c| c.to_string()).collect();
        sqlx::query(DIALED_SQL)
            .bind(contacts)
            .bind(attempts)
            .bind(call_ids)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn record_answered(&self, key: AttemptKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(ANSWERED_SQL)
            .bind(to_ms(at))
            .bind(key.contact)
            .bind(i64::from(key.attempt))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn close_attempt_with(
        &self,
        key: AttemptKey,
        outcome: Outcome,
        step: NextStep,
        ended_at: DateTime<Utc>,
        post: Option<&PostCall>,
        fences: &std::collections::HashMap<String, crate::store::Fence>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        super::leases::check_fence_of(&mut tx, key, fences).await?;
        let recorded = close_in(&mut tx, key, outcome, step, ended_at, post).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    pub(in crate::store) async fn open_attempts(&self, campaign: &str) -> Result<Vec<OpenAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.contact_id, a.attempt, a.call_id, a.started_at, a.phone_e164, a.voicemail_at, a.caller_id,
             c.first_name, c.last_name, c.email, c.custom_fields
             FROM attempts a JOIN contacts c ON c.id = a.contact_id
             WHERE a.campaign_id = $1 AND a.state != 'ended' ORDER BY a.id",
        )
        .bind(campaign)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OpenAttempt {
                    key: AttemptKey {
                        contact: r.try_get("contact_id")?,
                        attempt: attempt_number(r.try_get("attempt")?)?,
                    },
                    call_id: r.try_get("call_id")?,
                    started_at: from_ms(r.try_get("started_at")?),
                    phone_e164: r.try_get("phone_e164")?,
                    voicemail_sent: r.try_get::<Option<i64>, _>("voicemail_at")?.is_some(),
                    fields: contact_fields(r)?,
                    caller_id: r.try_get("caller_id")?,
                })
            })
            .collect()
    }

    pub(in crate::store) async fn remaining_contacts(
        &self,
        campaign: &str,
        max_attempts: u32,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM contacts WHERE campaign_id = $1
             AND (status = 'in_progress' OR (status IN ('pending', 'scheduled') AND attempts < $2))",
        )
        .bind(campaign)
        .bind(i64::from(max_attempts))
        .fetch_one(self.pool())
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(in crate::store) async fn exhaust_over_limit(
        &self,
        campaign: &str,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // A contact a claim is moving meanwhile is `in_progress` once this UPDATE gets its lock,
        // so it re-evaluates the status and leaves it.
        let r = sqlx::query(
            "UPDATE contacts SET status = 'exhausted', disposition = $1, updated_at = $2
             WHERE campaign_id = $3 AND status IN ('pending', 'scheduled') AND attempts >= $4",
        )
        .bind(Disposition::Exhausted.as_str())
        .bind(to_ms(now))
        .bind(campaign)
        .bind(i64::from(max_attempts))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }
}

/// Closes an attempt inside `tx` (see [`crate::store::Store::close_attempt_with`]); returns
/// whether a call record was written. Two closers of one attempt: the second waits for the
/// first's row lock, re-evaluates `state != 'ended'` and changes nothing.
pub(in crate::store) async fn close_in(
    tx: &mut Transaction<'_, Postgres>,
    key: AttemptKey,
    outcome: Outcome,
    step: NextStep,
    ended_at: DateTime<Utc>,
    post: Option<&PostCall>,
) -> Result<bool, StoreError> {
    let mut recorded = false;
    let closed = sqlx::query(CLOSE_ATTEMPT_SQL)
        .bind(to_ms(ended_at))
        .bind(outcome.as_str())
        .bind(step.disposition.as_str())
        .bind(key.contact)
        .bind(i64::from(key.attempt))
        .execute(&mut **tx)
        .await?;
    if closed.rows_affected() == 1 {
        let status = step.disposition.contact_status();
        let final_disposition = (!status.is_dialable()).then_some(step.disposition.as_str());
        sqlx::query(CLOSE_CONTACT_SQL)
            .bind(status.as_str())
            .bind(final_disposition)
            .bind(step.next_attempt_at.map(to_ms).unwrap_or(0))
            .bind(outcome.as_str())
            .bind(to_ms(ended_at))
            .bind(key.contact)
            .execute(&mut **tx)
            .await?;
        if let Some(post) = post {
            recorded = super::calls::insert_call_record(tx, key, post, ended_at).await?;
            if recorded {
                super::outbox::insert_jobs(tx, &post.call_jobs, ended_at).await?;
            }
            super::outbox::insert_jobs(tx, &post.jobs, ended_at).await?;
        }
    }
    Ok(recorded)
}

/// Records an answer inside `tx` (see [`crate::store::Store::record_answered`]).
pub(in crate::store) async fn answered_in(
    tx: &mut Transaction<'_, Postgres>,
    key: AttemptKey,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(ANSWERED_SQL)
        .bind(to_ms(at))
        .bind(key.contact)
        .bind(i64::from(key.attempt))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A stored attempt number or count (BIGINT) as the `u32` the core uses.
///
/// Errors: [`StoreError::Corrupt`] when it is negative or too large.
fn attempt_number(n: i64) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("attempt number {n} out of range")))
}

/// A contact's template variables from a row with its name, email and custom fields.
fn contact_fields(r: &PgRow) -> Result<BTreeMap<String, String>, StoreError> {
    let custom: String = r.try_get("custom_fields")?;
    crate::store::attempts::contact_fields(
        &custom,
        [
            ("first_name", r.try_get("first_name")?),
            ("last_name", r.try_get("last_name")?),
            ("email", r.try_get("email")?),
        ],
    )
}
