//! The hopper's queries: which zones have dialable contacts, and the next due contacts of the open
//! zones, in batches. Each reads the partial index `contacts_hopper` (migration 0007) in order, so
//! its cost depends on the batch and the number of zones, never on the length of the list.
//! `hot_query_plans` shows the engine's plan of every query on the dialing hot path, for the test
//! that fails on a full scan or a temporary sort.

use super::{Store, StoreError};
use crate::core::ContactId;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};

use super::attempts::DueContact;

/// The order of the hopper: `next_attempt_at`, then priority (higher first), then id.
pub(super) type HopperKey = (i64, std::cmp::Reverse<i64>, ContactId);

impl Store {
    /// Each zone list (`&`-joined IANA names, as stored) that has a contact in status `pending` or
    /// `scheduled`, with the earliest `next_attempt_at` (UTC) among them. Costs one index seek per
    /// zone list, whatever the length of the list.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn hopper_zones(&self, campaign: &str) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        on_engine!(self, hopper_zones(campaign))
    }

    /// Up to `limit` contacts due at `now` (UTC) whose zone list is one of `zones`, in hopper order
    /// (`next_attempt_at`, then `priority` higher first, then id), leaving out the ids in `skip`
    /// (contacts already buffered). Reads at most `limit + skip.len()` index entries per zone, then
    /// the chosen rows by primary key: the cost does not grow with the list.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for a stored value that does not decode.
    pub async fn hopper_batch(
        &self,
        campaign: &str,
        now: DateTime<Utc>,
        zones: &[String],
        limit: usize,
        skip: &HashSet<ContactId>,
    ) -> Result<Vec<DueContact>, StoreError> {
        on_engine!(self, hopper_batch(campaign, now, zones, limit, skip))
    }

    /// Whether `campaign` has a contact on a call, or one that may still be dialled (status
    /// `pending` or `scheduled` with attempts below `max_attempts`). Two index seeks; the
    /// per-call-end check for `campaign.completed`.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn has_remaining_contacts(&self, campaign: &str, max_attempts: u32) -> Result<bool, StoreError> {
        on_engine!(self, has_remaining_contacts(campaign, max_attempts))
    }

    /// The plan of every query the dialing hot path runs, by name, each as lines: the hopper's
    /// zone scan, zone batch and details, the claim, the call id, the answer, the close, the last
    /// DNC check and the remaining-contacts check. On SQLite the detail lines of `EXPLAIN QUERY
    /// PLAN` (`SEARCH contacts USING INDEX …`); on PostgreSQL the lines of `EXPLAIN` (text format,
    /// nothing executed) of the same queries with sample parameters. For the test that fails on a
    /// full scan or a temporary sort over the list.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn hot_query_plans(&self) -> Result<BTreeMap<&'static str, Vec<String>>, StoreError> {
        on_engine!(self, hot_query_plans())
    }
}

/// The first `limit` of `keys` in hopper order, as ids, and the place of each id in that order.
pub(super) fn choose(mut keys: Vec<HopperKey>, limit: usize) -> (Vec<ContactId>, HashMap<ContactId, usize>) {
    keys.sort_unstable();
    keys.truncate(limit);
    let order = keys.iter().enumerate().map(|(i, k)| (k.2, i)).collect();
    (keys.into_iter().map(|k| k.2).collect(), order)
}

/// `due` put in the hopper order given by `order` (from [`choose`]). A contact that stopped
/// being dialable between the two reads is simply not there.
pub(super) fn in_order(mut due: Vec<DueContact>, order: &HashMap<ContactId, usize>) -> Vec<DueContact> {
    due.sort_by_key(|d| order.get(&d.id).copied().unwrap_or(usize::MAX));
    due
}
