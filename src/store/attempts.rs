//! Campaign rows and the attempt lifecycle: claim due contacts (attempt row committed before the
//! dial), record answers, close attempts with the policy's next step, reconcile after a crash.

use super::{Store, StoreError, from_ms};
use crate::core::{AttemptKey, ContactId, ContactStatus, NextStep, Outcome};
use chrono::{DateTime, Utc};
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
        on_engine!(self, activate_campaign(id, name, file, now))
    }

    /// Sets a campaign's state (no-op for an unknown campaign).
    pub async fn set_campaign_state(
        &self,
        id: &str,
        state: CampaignState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_engine!(self, set_campaign_state(id, state, now))
    }

    /// Claims contacts for dialing in one transaction, before any dial: each contact still
    /// dialable with exactly `key.attempt − 1` attempts, and whose number is on no DNC list, moves to `in_progress` with its attempt
    /// count raised, and its attempt row is inserted in state `dialing`. Returns the keys claimed;
    /// a contact changed meanwhile is skipped, and nothing is claimed while the operator's control
    /// of the campaign is not `running` (a pause or cancel committed by any process). With a
    /// [`super::Fence`] set for the campaign, the transaction first checks (and on PostgreSQL
    /// locks `FOR SHARE`) that the fence's token is the lease's current, unexpired one, and
    /// each attempt row records that token as `lease_token`.
    ///
    /// Errors: [`StoreError::LeaseLost`] when it is not (nothing is claimed), [`StoreError::Query`].
    pub async fn claim_attempts(
        &self,
        campaign: &str,
        claims: &[Claim],
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<AttemptKey>, StoreError> {
        let fence = self.fence(campaign);
        on_engine!(
            self,
            claim_attempts(campaign, claims, max_attempts, now, fence.as_ref(), None)
        )
        .map(|c| c.keys)
    }

    /// Records the trunk's call ids of placed attempts, in one transaction.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn record_dialed_many(&self, placed: &[(AttemptKey, String)]) -> Result<(), StoreError> {
        if placed.is_empty() {
            return Ok(());
        }
        on_engine!(self, record_dialed_many(placed))
    }

    /// Records that an attempt was answered at `at`.
    pub async fn record_answered(&self, key: AttemptKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        on_engine!(self, record_answered(key, at))
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
    /// Returns whether a call record was written. Conditional, like the claim, on the fence set
    /// for the attempt's campaign, if any.
    ///
    /// Errors: [`StoreError::LeaseLost`], [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn close_attempt_with(
        &self,
        key: AttemptKey,
        outcome: Outcome,
        step: NextStep,
        ended_at: DateTime<Utc>,
        post: Option<&super::PostCall>,
    ) -> Result<bool, StoreError> {
        let fences = self.fences_snapshot();
        on_engine!(self, close_attempt_with(key, outcome, step, ended_at, post, &fences))
    }

    /// Attempts of `campaign` not yet ended (left by a crash or an unbounded shutdown).
    pub async fn open_attempts(&self, campaign: &str) -> Result<Vec<OpenAttempt>, StoreError> {
        on_engine!(self, open_attempts(campaign))
    }

    /// Number of contacts of `campaign` that may still be dialled or are on a call.
    pub async fn remaining_contacts(&self, campaign: &str, max_attempts: u32) -> Result<u64, StoreError> {
        on_engine!(self, remaining_contacts(campaign, max_attempts))
    }

    /// Marks contacts that are dialable but have no attempt left under a lowered `max_attempts`
    /// as exhausted, so they are accounted for.
    pub async fn exhaust_over_limit(
        &self,
        campaign: &str,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        on_engine!(self, exhaust_over_limit(campaign, max_attempts, now))
    }
}

/// A contact's template variables from its stored custom fields (a JSON object of strings) and
/// its first name, last name and email when set.
///
/// Errors: [`StoreError::Corrupt`] when `custom` is not such an object.
pub(super) fn contact_fields(
    custom: &str,
    named: [(&str, Option<String>); 3],
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut fields: BTreeMap<String, String> =
        serde_json::from_str(custom).map_err(|e| StoreError::Corrupt(format!("custom_fields: {e}")))?;
    for (col, v) in named {
        if let Some(v) = v {
            fields.insert(col.to_string(), v);
        }
    }
    Ok(fields)
}

/// The start instants of a contact's recent attempts from their comma-separated milliseconds (as
/// `group_concat`/`string_agg` give them), oldest first; unreadable items are skipped.
pub(super) fn recent_attempts(list: Option<&str>) -> Vec<DateTime<Utc>> {
    let mut v: Vec<DateTime<Utc>> = list
        .unwrap_or_default()
        .split(',')
        .filter_map(|t| t.trim().parse::<i64>().ok())
        .map(from_ms)
        .collect();
    v.sort();
    v
}

/// A stored contact status.
///
/// Errors: [`StoreError::Corrupt`] for an unknown one.
pub(super) fn parse_status(status: &str) -> Result<ContactStatus, StoreError> {
    status
        .parse()
        .map_err(|e: crate::core::types::UnknownVariant| StoreError::Corrupt(e.to_string()))
}
