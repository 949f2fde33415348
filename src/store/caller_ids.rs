//! Caller-ID pool state: the history a runner rebuilds its number health from at start (every
//! attempt's presented caller ID is on its row), and the runner's latest per-number figures,
//! which `dialerd status` shows and the next start reads its rests back from.

use super::{Store, StoreError, from_ms, to_ms};
use crate::core::caller_id::NumberStats;
use chrono::{DateTime, Utc};
use sqlx::Row;

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
        let rows = sqlx::query(
            "SELECT caller_id, started_at, answered_at, ended_at FROM attempts
             WHERE campaign_id = ? AND started_at >= ? AND caller_id IS NOT NULL ORDER BY started_at",
        )
        .bind(campaign)
        .bind(to_ms(since))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CallerIdSample {
                    number: r.try_get("caller_id")?,
                    started_at: from_ms(r.try_get("started_at")?),
                    answered_at: r.try_get::<Option<i64>, _>("answered_at")?.map(from_ms),
                    ended_at: r.try_get::<Option<i64>, _>("ended_at")?.map(from_ms),
                })
            })
            .collect()
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
        sqlx::query(
            "INSERT INTO caller_id_health (campaign_id, numbers, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (campaign_id) DO UPDATE SET numbers = excluded.numbers, updated_at = excluded.updated_at",
        )
        .bind(campaign)
        .bind(json)
        .bind(to_ms(now))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// `campaign`'s last published per-number figures and when they were published (UTC);
    /// empty before a pool campaign has run.
    ///
    /// Errors: [`StoreError::Query`]; [`StoreError::Corrupt`] for unreadable JSON.
    pub async fn caller_id_health(
        &self,
        campaign: &str,
    ) -> Result<Option<(Vec<NumberStats>, DateTime<Utc>)>, StoreError> {
        let row = sqlx::query("SELECT numbers, updated_at FROM caller_id_health WHERE campaign_id = ?")
            .bind(campaign)
            .fetch_optional(self.reader())
            .await?;
        let Some(r) = row else { return Ok(None) };
        let json: String = r.try_get("numbers")?;
        let numbers: Vec<NumberStats> =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("caller_id_health: {e}")))?;
        Ok(Some((numbers, from_ms(r.try_get("updated_at")?))))
    }
}
