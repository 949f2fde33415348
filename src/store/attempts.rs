//! Campaign rows and the attempt lifecycle: claim due contacts (attempt row committed before the
//! dial), record answers, close attempts with the policy's next step, reconcile after a crash.

use super::{Store, StoreError, from_ms, to_ms};
use crate::core::{AttemptKey, ContactId, ContactStatus, Disposition, NextStep, Outcome};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::BTreeMap;

/// A campaign's lifecycle state in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CampaignState {
    /// Its file is present and valid; the daemon dials it.
    Active,
    /// Its file was removed or became invalid; nothing is dialled, nothing deleted.
    Paused,
    /// Every contact reached a final state.
    Finished,
}

impl CampaignState {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Active => "active",
            CampaignState::Paused => "paused",
            CampaignState::Finished => "finished",
        }
    }
}

/// Attempts this far back are offered to the per-day limit (a local day is at most 26 hours).
pub(super) const RECENT_HOURS: i64 = 50;

/// Claims one contact: conditional on its status, due time, exact attempt count and no DNC entry.
const CLAIM_SQL: &str = "UPDATE contacts SET status = 'in_progress', attempts = attempts + 1, updated_at = ?,
    caller_id = COALESCE(?, caller_id)
    WHERE id = ? AND campaign_id = ? AND status IN ('pending', 'scheduled') AND next_attempt_at <= ? AND attempts = ?
    AND attempts < ?
    AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.phone_e164 = contacts.phone_e164 AND d.scope IN ('global', ?))
    AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = contacts.campaign_id AND c.control = 'running')";
/// The attempt row of a claim, state `dialing`.
const INSERT_ATTEMPT_SQL: &str =
    "INSERT INTO attempts (campaign_id, contact_id, attempt, phone_e164, state, started_at, caller_id)
    VALUES (?, ?, ?, ?, 'dialing', ?, ?)";
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

/// The writes of the dialing hot path, by name, for [`Store::hot_query_plans`].
pub(super) const HOT_WRITES: &[(&str, &str)] = &[
    ("claim_contact", CLAIM_SQL),
    ("insert_attempt", INSERT_ATTEMPT_SQL),
    ("record_dialed_many", DIALED_SQL),
    ("record_answered", ANSWERED_SQL),
    ("close_attempt", CLOSE_ATTEMPT_SQL),
    ("close_contact", CLOSE_CONTACT_SQL),
];

/// One attempt to claim: the contact's next attempt, the number to dial and the caller ID it
/// will present (kept on the contact for its retries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The attempt.
    pub key: AttemptKey,
    /// The number to dial, E.164.
    pub phone: String,
    /// The caller ID, E.164; `None` leaves the contact's as it is.
    pub caller_id: Option<String>,
}

impl Claim {
    /// A claim of `key` dialling `phone`, with no caller ID recorded.
    pub fn new(key: AttemptKey, phone: &str) -> Claim {
        Claim {
            key,
            phone: phone.to_string(),
            caller_id: None,
        }
    }
}

/// A due contact with what the dial needs.
#[derive(Clone, Debug)]
pub struct DueContact {
    /// Contact id.
    pub id: ContactId,
    /// Number to dial, E.164.
    pub phone_e164: String,
    /// Attempts already made.
    pub attempts: u32,
    /// `pending` or `scheduled`.
    pub status: ContactStatus,
    /// Earliest next attempt (UTC).
    pub next_attempt_at: DateTime<Utc>,
    /// IANA zone(s) its window is read in, joined by `&` when its number may be in several.
    pub timezone: String,
    /// Its number is on the global or the campaign's DNC list.
    pub dnc: bool,
    /// Start instants (UTC) of its attempts in the last 50 hours, oldest first.
    pub recent_attempts: Vec<DateTime<Utc>>,
    /// Start of its last attempt (UTC).
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// End of its last abandoned call (UTC).
    pub last_abandoned_at: Option<DateTime<Utc>>,
    /// Template variables: first_name, last_name, email and custom fields.
    pub fields: BTreeMap<String, String>,
    /// The caller ID its earlier attempts presented, E.164 (kept for its retries).
    pub caller_id: Option<String>,
}

/// An attempt left open (state not `ended`), found at start-up.
#[derive(Clone, Debug)]
pub struct OpenAttempt {
    /// The attempt.
    pub key: AttemptKey,
    /// The trunk's call id, when the dial got that far.
    pub call_id: Option<String>,
    /// When it was claimed (UTC).
    pub started_at: DateTime<Utc>,
    /// The number dialled, E.164.
    pub phone_e164: String,
    /// The voicemail message was sent to the trunk before the crash.
    pub voicemail_sent: bool,
    /// The contact's template variables, to render its messages again.
    pub fields: BTreeMap<String, String>,
    /// The caller ID it presented, E.164 (`None` for attempts from before caller-ID pools).
    pub caller_id: Option<String>,
}

impl Store {
    /// Creates the campaign row or refreshes its name and file, and marks it active.
    pub async fn activate_campaign(
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

    /// Sets a campaign's state (no-op for an unknown campaign).
    pub async fn set_campaign_state(
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

    /// Claims contacts for dialing in one transaction, before any dial: each contact still
    /// dialable with exactly `key.attempt − 1` attempts, and whose number is on no DNC list, moves to `in_progress` with its attempt
    /// count raised, and its attempt row is inserted in state `dialing`. Returns the keys claimed;
    /// a contact changed meanwhile is skipped, and nothing is claimed while the operator's control
    /// of the campaign is not `running` (a pause or cancel committed by any process).
    pub async fn claim_attempts(
        &self,
        campaign: &str,
        claims: &[Claim],
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<AttemptKey>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut claimed = Vec::with_capacity(claims.len());
        for Claim { key, phone, caller_id } in claims {
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
                .bind(to_ms(now))
                .bind(caller_id)
                .execute(&mut *tx)
                .await?;
            claimed.push(*key);
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records the trunk's call ids of placed attempts, in one transaction.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn record_dialed_many(&self, placed: &[(AttemptKey, String)]) -> Result<(), StoreError> {
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

    /// Records that an attempt was answered at `at`.
    pub async fn record_answered(&self, key: AttemptKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(ANSWERED_SQL)
            .bind(to_ms(at))
            .bind(key.contact)
            .bind(key.attempt)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Closes an attempt with its outcome and applies the policy's next step to the contact, in
    /// one transaction. Closing an attempt twice changes nothing the second time.
    pub async fn close_attempt(
        &self,
        key: AttemptKey,
        outcome: Outcome,
        step: NextStep,
        ended_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.close_attempt_with(key, outcome, step, ended_at, None)
            .await
            .map(|_| ())
    }

    /// [`Store::close_attempt`], and in the same transaction, when this call closes the attempt:
    /// the call record and `post.call_jobs` (when the trunk placed the call) and `post.jobs`.
    /// Returns whether a call record was written.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn close_attempt_with(
        &self,
        key: AttemptKey,
        outcome: Outcome,
        step: NextStep,
        ended_at: DateTime<Utc>,
        post: Option<&super::PostCall>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let recorded = close_in(&mut tx, key, outcome, step, ended_at, post).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    /// Attempts of `campaign` not yet ended (left by a crash or an unbounded shutdown).
    pub async fn open_attempts(&self, campaign: &str) -> Result<Vec<OpenAttempt>, StoreError> {
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

    /// Number of contacts of `campaign` that may still be dialled or are on a call.
    pub async fn remaining_contacts(&self, campaign: &str, max_attempts: u32) -> Result<u64, StoreError> {
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

    /// Marks contacts that are dialable but have no attempt left under a lowered `max_attempts`
    /// as exhausted, so they are accounted for.
    pub async fn exhaust_over_limit(
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

/// Closes an attempt inside `tx` (see [`Store::close_attempt_with`]); returns whether a call
/// record was written.
pub(super) async fn close_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    key: AttemptKey,
    outcome: Outcome,
    step: NextStep,
    ended_at: DateTime<Utc>,
    post: Option<&super::PostCall>,
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

/// Records an answer inside `tx` (see [`Store::record_answered`]).
pub(super) async fn answered_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
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
fn contact_fields(r: &sqlx::sqlite::SqliteRow) -> Result<BTreeMap<String, String>, StoreError> {
    let custom: String = r.try_get("custom_fields")?;
    let mut fields: BTreeMap<String, String> =
        serde_json::from_str(&custom).map_err(|e| StoreError::Corrupt(format!("custom_fields: {e}")))?;
    for col in ["first_name", "last_name", "email"] {
        if let Some(v) = r.try_get::<Option<String>, _>(col)? {
            fields.insert(col.to_string(), v);
        }
    }
    Ok(fields)
}

pub(super) fn due_contact(r: &sqlx::sqlite::SqliteRow) -> Result<DueContact, StoreError> {
    let status: String = r.try_get("status")?;
    let fields = contact_fields(r)?;
    Ok(DueContact {
        id: r.try_get("id")?,
        phone_e164: r.try_get("phone_e164")?,
        attempts: r.try_get("attempts")?,
        status: status
            .parse()
            .map_err(|e: crate::core::types::UnknownVariant| StoreError::Corrupt(e.to_string()))?,
        next_attempt_at: from_ms(r.try_get("next_attempt_at")?),
        timezone: r.try_get("timezone")?,
        dnc: r.try_get::<i64, _>("dnc")? != 0,
        recent_attempts: {
            let list: Option<String> = r.try_get("recent")?;
            let mut v: Vec<DateTime<Utc>> = list
                .unwrap_or_default()
                .split(',')
                .filter_map(|t| t.trim().parse::<i64>().ok())
                .map(from_ms)
                .collect();
            v.sort();
            v
        },
        last_attempt_at: r.try_get::<Option<i64>, _>("last_attempt_at")?.map(from_ms),
        last_abandoned_at: r.try_get::<Option<i64>, _>("last_abandoned_at")?.map(from_ms),
        fields,
        caller_id: r.try_get("caller_id")?,
    })
}
