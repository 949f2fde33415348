//! Compliance state in the store: deferring refused contacts, marking do-not-call contacts,
//! undoing a claim that the last DNC check stopped, the refusal audit counts, and the per-minute
//! abandonment history that seeds the core's ledger after a restart.

use super::{Store, StoreError};
use crate::core::{AttemptKey, ContactId, Disposition, RefusalReason};
use chrono::{DateTime, Utc};
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
        on_engine!(self, defer_contacts(until, now))
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

    /// Gives dialable (`pending` or `scheduled`) contacts a final disposition and its status, in
    /// one transaction. Returns how many changed (a contact listed twice counts once).
    async fn mark_final(
        &self,
        ids: &[ContactId],
        disposition: Disposition,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        on_engine!(self, mark_final(ids, disposition, now))
    }

    /// Undoes a claim that was never dialled because the number went on a DNC list between the
    /// claim and the dial: the attempt row is deleted, the attempt count lowered, and the contact
    /// marked `dnc`. Nothing happens unless the attempt is still `dialing` with no call id.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn release_claim_dnc(&self, key: AttemptKey, now: DateTime<Utc>) -> Result<bool, StoreError> {
        on_engine!(self, release_claim_dnc(key, now))
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
        on_engine!(self, add_refusals(campaign, counts, now))
    }

    /// `campaign`'s refusal totals by reason (reasons never counted are absent).
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for an unknown reason.
    pub async fn refusal_counts(&self, campaign: &str) -> Result<BTreeMap<RefusalReason, u64>, StoreError> {
        on_engine!(self, refusal_counts(campaign))
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
        on_engine!(self, abandon_minutes(campaign, since))
    }
}

/// A stored refusal reason read back.
///
/// Errors: [`StoreError::Corrupt`] for an unknown reason.
pub(super) fn parse_reason(reason: &str) -> Result<RefusalReason, StoreError> {
    reason
        .parse()
        .map_err(|e: crate::core::types::UnknownVariant| StoreError::Corrupt(e.to_string()))
}

/// One minute of [`Store::abandon_minutes`] from its stored columns (minute number since the
/// epoch, counts clamped into `u32`).
pub(super) fn abandon_minute(minute: i64, human: i64, abandoned: i64) -> AbandonMinute {
    let clamp = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    AbandonMinute {
        minute: super::from_ms(minute.saturating_mul(60_000)),
        human: clamp(human),
        abandoned: clamp(abandoned),
    }
}
