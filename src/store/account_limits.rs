//! A trunk account's limits shared by every node on the database ([`crate::core::account`]):
//! which account each campaign dials through, and claims that take the account's CPS and
//! concurrency in the claim's own transaction, so the attempt rows are the grants.

use super::attempts::Claim;
use super::{Store, StoreError};
use crate::core::AttemptKey;
use crate::core::account::AccountLimit;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What a claim under an account's limits did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claimed {
    /// The attempts claimed, in the order asked.
    pub keys: Vec<AttemptKey>,
    /// How many of the claims asked were looked at; the rest were held back by the account's
    /// limits and are untouched (the caller keeps them for later).
    pub considered: usize,
    /// When the account's limits held claims back: how long until they have room.
    pub retry_after: Option<Duration>,
}

impl Store {
    /// Records that `campaign` dials through the trunk account `account` (none: no shared
    /// limit), so its open attempts count against that account's `max_concurrent`.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn set_campaign_account(&self, campaign: &str, account: Option<&str>) -> Result<(), StoreError> {
        on_engine!(self, set_campaign_account(campaign, account))
    }

    /// [`Store::claim_attempts`] under the trunk account's shared limits: in the same
    /// transaction, locks the account's row, reads the clock once (PostgreSQL: the server's) and
    /// claims, in order, only as many as the account's rolling second and its calls in progress
    /// (the open attempts of its campaigns, across every node) allow; the claimed attempts start
    /// at that instant. Claims past the limit are not looked at ([`Claimed::considered`]).
    ///
    /// Errors: as [`Store::claim_attempts`].
    pub async fn claim_attempts_limited(
        &self,
        campaign: &str,
        claims: &[Claim],
        max_attempts: u32,
        now: DateTime<Utc>,
        limit: &AccountLimit,
    ) -> Result<Claimed, StoreError> {
        let fence = self.fence(campaign);
        on_engine!(
            self,
            claim_attempts(campaign, claims, max_attempts, now, fence.as_ref(), Some(limit))
        )
    }

    /// The account's dial grants of the last second and its calls in progress, for tests and
    /// `status`: (grant instants in ms since the epoch, open attempts of its campaigns).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn account_usage(&self, account: &str) -> Result<(Vec<i64>, u64), StoreError> {
        on_engine!(self, account_usage(account))
    }
}

/// The account's window as a claim transaction read it under the row lock.
pub(in crate::store) struct Window {
    /// The instant read under the lock, ms since the epoch: the claimed attempts' start.
    pub at_ms: i64,
    /// The account's grants of the last second, oldest first.
    pub recent: Vec<i64>,
    /// What the limits allow now.
    pub grant: crate::core::account::Grant,
}

impl Claimed {
    /// What a claim of `asked` did: `keys` claimed, the first `considered` looked at.
    pub(in crate::store) fn new(
        keys: Vec<AttemptKey>,
        considered: usize,
        asked: usize,
        window: Option<&Window>,
    ) -> Claimed {
        let retry_after = window
            .filter(|_| considered < asked)
            .and_then(|w| w.grant.retry_after_ms)
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(1)));
        Claimed {
            keys,
            considered,
            retry_after,
        }
    }
}

/// The calls in progress on an account: its campaigns' open attempts (the `attempts_open` index,
/// so the count costs the calls in flight, not the list).
pub(in crate::store) const IN_PROGRESS_SQL_SQLITE: &str = "SELECT COUNT(*) FROM attempts
    WHERE campaign_id IN (SELECT id FROM campaigns INDEXED BY campaigns_trunk_account WHERE trunk_account = ?1) AND state IN ('dialing', 'answered')";
/// [`IN_PROGRESS_SQL_SQLITE`] with PostgreSQL's placeholder.
pub(in crate::store) const IN_PROGRESS_SQL_PG: &str = "SELECT COUNT(*) FROM attempts
    WHERE campaign_id IN (SELECT id FROM campaigns WHERE trunk_account = $1) AND state IN ('dialing', 'answered')";
