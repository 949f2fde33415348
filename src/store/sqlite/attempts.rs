//! SQLite: campaign rows and the attempt lifecycle (see [`crate::store`]'s `attempts`).

use super::SqliteEngine;
use crate::core::account::AccountLimit;
use crate::core::{AttemptKey, Disposition, NextStep, Outcome};
use crate::store::attempts::{CampaignState, Claim, DueContact, OpenAttempt, parse_status, recent_attempts};
use crate::store::{Claimed, PostCall, StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use std::collections::BTreeMap;

/// Claims one contact: conditional on its status, due time, exact attempt count and no DNC entry.
const CLAIM_SQL: &str = "UPDATE contacts SET status = 'in_progress', attempts = attempts + 1, updated_at = ?,
    caller_id = COALESCE(?, caller_id)
    WHERE id = ? AND campaign_id = ? AND status IN ('pending', 'scheduled') AND next_attempt_at <= ? AND attempts = ?
    AND attempts < ?
    AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.phone_e164 = contacts.phone_e164 AND d.scope IN ('global', ?))
    AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = contacts.campaign_id AND c.control = 'running')";
/// The attempt row of a claim, state `dialing`.
const INSERT_ATTEMPT_SQL: &str =
    "INSERT INTO attempts (campaign_id, contact_id, attempt, phone_e164, state, started_at, caller_id, lease_token)
    VALUES (?, ?, ?, ?, 'dialing', ?, ?, ?)";
/// The trunk's call id of a placed attempt.
const DIALED_SQL: &str = "UPDATE attempts SET call_id = ? WHERE contact_id = ? AND attempt = ?";
/// An answer.
const ANSWERED_SQL: &str = "UPDATE attempts SET state = 'answered', answered_at = ? WHERE contact_id = ? AND attempt = ? AND state = 'dialing'";
/// Closing an attempt, once.
const CLOSE_ATTEMPT_SQL: &str = "UPDATE attempts SET state = 'ended', ended_at = ?, outcome = ?, disposition = ?
    WHERE contact_id = ? AND attempt = ? AND state != 'ended'";
/// The policy's next step for the contact of a closed attempt.
const CLOSE_CONTACT_SQL: &str =
    "UPDATE contacts SET status = ?, disposition = ?, next_attempt_at = ?, last_outcome = ?,
    updated_at = ? WHERE id = ? AND status = 'in_progress'";

/// The writes of the dialing hot path, by name, for [`crate::store::Store::hot_query_plans`].
pub(in crate::store) const HOT_WRITES: &[(&str, &str)] = &[
    ("claim_contact", CLAIM_SQL),
    ("insert_attempt", INSERT_ATTEMPT_SQL),
    ("record_dialed_many", DIALED_SQL),
    ("record_answered", ANSWERED_SQL),
    ("close_attempt", CLOSE_ATTEMPT_SQL),
    ("close_contact", CLOSE_CONTACT_SQL),
    (
        "account_in_progress",
        crate::store::account_limits::IN_PROGRESS_SQL_SQLITE,
    ),
];

impl SqliteEngine {
    pub(in crate::store) async fn activate_campaign(
        &self,
        id: &str,
        name: &str,
        file: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO campaigns (id, name, file, state, created_at, updated_at) VALUES (?, ?, ?, 'active', ?, ?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, file = excluded.file, state = 'active', updated_at = excluded.updated_at",
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
        sqlx::query("UPDATE campaigns SET state = ?, updated_at = ? WHERE id = ?")
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
        let mut tx = self.pool().begin().await?;
        if let Some(f) = fence {
            super::leases::check_fence(&mut tx, campaign, f).await?;
        }
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
            let updated = sqlx::query(CLAIM_SQL)
                .bind(to_ms(now))
                .bind(caller_id)
                .bind(key.contact)
                .bind(campaign)
                .bind(to_ms(now))
                .bind(key.attempt.saturating_sub(1))
                .bind(max_attempts)
                .bind(campaign)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() != 1 {
                continue;
            }
            sqlx::query(INSERT_ATTEMPT_SQL)
                .bind(campaign)
                .bind(key.contact)
                .bind(key.attempt)
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
        if placed.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for (key, call_id) in placed {
            sqlx::query(DIALED_SQL)
                .bind(call_id)
                .bind(key.contact)
                .bind(key.attempt)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn record_answered(&self, key: AttemptKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(ANSWERED_SQL)
            .bind(to_ms(at))
            .bind(key.contact)
            .bind(key.attempt)
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
             WHERE a.campaign_id = ? AND a.state != 'ended' ORDER BY a.id",
        )
        .bind(campaign)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OpenAttempt {
                    key: AttemptKey {
                        contact: r.try_get("contact_id")?,
                        attempt: r.try_get("attempt")?,
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
            "SELECT COUNT(*) FROM contacts WHERE campaign_id = ?
             AND (status = 'in_progress' OR (status IN ('pending', 'scheduled') AND attempts < ?))",
        )
        .bind(campaign)
        .bind(max_attempts)
        .fetch_one(self.pool())
        .await?;
        Ok(n.max(0) as u64)
    }

    pub(in crate::store) async fn exhaust_over_limit(
        &self,
        campaign: &str,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE contacts SET status = 'exhausted', disposition = ?, updated_at = ?
             WHERE campaign_id = ? AND status IN ('pending', 'scheduled') AND attempts >= ?",
        )
        .bind(Disposition::Exhausted.as_str())
        .bind(to_ms(now))
        .bind(campaign)
        .bind(max_attempts)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }
}

/// Closes an attempt inside `tx` (see [`crate::store::Store::close_attempt_with`]); returns
/// whether a call record was written.
pub(in crate::store) async fn close_in(
    tx: &mut Transaction<'_, Sqlite>,
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
        .bind(key.attempt)
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
    tx: &mut Transaction<'_, Sqlite>,
    key: AttemptKey,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(ANSWERED_SQL)
        .bind(to_ms(at))
        .bind(key.contact)
        .bind(key.attempt)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A contact's template variables from a row with its name, email and custom fields.
fn contact_fields(r: &SqliteRow) -> Result<BTreeMap<String, String>, StoreError> {
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

/// A [`DueContact`] from a row of the hopper's details query (its contact columns, `dnc`,
/// `recent` as comma-separated milliseconds, `last_attempt_at`, `last_abandoned_at`).
pub(in crate::store) fn due_contact(r: &SqliteRow) -> Result<DueContact, StoreError> {
    let status: String = r.try_get("status")?;
    let fields = contact_fields(r)?;
    Ok(DueContact {
        id: r.try_get("id")?,
        phone_e164: r.try_get("phone_e164")?,
        attempts: r.try_get("attempts")?,
        status: parse_status(&status)?,
        next_attempt_at: from_ms(r.try_get("next_attempt_at")?),
        timezone: r.try_get("timezone")?,
        dnc: r.try_get::<i64, _>("dnc")? != 0,
        recent_attempts: recent_attempts(r.try_get::<Option<String>, _>("recent")?.as_deref()),
        last_attempt_at: r.try_get::<Option<i64>, _>("last_attempt_at")?.map(from_ms),
        last_abandoned_at: r.try_get::<Option<i64>, _>("last_abandoned_at")?.map(from_ms),
        fields,
        caller_id: r.try_get("caller_id")?,
    })
}
