//! Caller-ID pool state: the history a runner rebuilds its number health from at start (every
//! attempt's presented caller ID is on its row), and the runner's latest per-number figures,
//! which `dialerd status` shows and the next start reads its rests back from.

use super::{Store, StoreError};
use crate::core::caller_id::NumberStats;
use chrono::{DateTime, Utc};

/// One attempt of the health history.
#[derive(Clone, Debug, PartialEq)]
pub struct CallerIdSample {
    /// The caller ID it presented, E.164.
    pub number: String,
    /// When it was claimed (UTC).
    pub started_at: DateTime<Utc>,
    /// When it was answered (UTC), by a person or a machine.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it ended (UTC); `None` while open.
    pub ended_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Attempts of `campaign` started at or after `since` (UTC) that recorded a caller ID, oldest
    /// first. One range scan of the `attempts_started` index.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn caller_id_history(
        &self,
        campaign: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<CallerIdSample>, StoreError> {
        on_engine!(self, caller_id_history(campaign, since))
    }

    /// Replaces `campaign`'s published per-number figures.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn record_caller_id_health(
        &self,
        campaign: &str,
        numbers: &[NumberStats],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(numbers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on_engine!(self, record_caller_id_health(campaign, &json, now))
    }

    /// `campaign`'s last published per-number figures and when they were published (UTC);
    /// empty before a pool campaign has run.
    ///
    /// Errors: [`StoreError::Query`]; [`StoreError::Corrupt`] for unreadable JSON.
    pub async fn caller_id_health(
        &self,
        campaign: &str,
    ) -> Result<Option<(Vec<NumberStats>, DateTime<Utc>)>, StoreError> {
        let Some((json, updated_at)) = on_engine!(self, caller_id_health(campaign))? else {
            return Ok(None);
        };
        let numbers: Vec<NumberStats> =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("caller_id_health: {e}")))?;
        Ok(Some((numbers, updated_at)))
    }
}
