//! PostgreSQL: caller-ID history and published health (see [`crate::store`]'s `caller_ids`).

use super::PgEngine;
use crate::store::{CallerIdSample, StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use sqlx::Row;

impl PgEngine {
    pub(in crate::store) async fn caller_id_history(
        &self,
        campaign: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<CallerIdSample>, StoreError> {
        // Ties on `started_at` come in row order, as SQLite's scan of `attempts_started` gives them.
        let rows = sqlx::query(
            "SELECT caller_id, started_at, answered_at, ended_at FROM attempts
             WHERE campaign_id = $1 AND started_at >= $2 AND caller_id IS NOT NULL ORDER BY started_at, id",
        )
        .bind(campaign)
        .bind(to_ms(since))
        .fetch_all(self.pool())
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

    /// Stores `json`, the serialised figures, as `campaign`'s published ones (the last writer of
    /// several nodes wins, as with SQLite's single writer).
    pub(in crate::store) async fn record_caller_id_health(
        &self,
        campaign: &str,
        json: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO caller_id_health (campaign_id, numbers, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (campaign_id) DO UPDATE SET numbers = excluded.numbers, updated_at = excluded.updated_at",
        )
        .bind(campaign)
        .bind(json)
        .bind(to_ms(now))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// `campaign`'s published figures as stored (JSON) and when they were published.
    pub(in crate::store) async fn caller_id_health(
        &self,
        campaign: &str,
    ) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        let row = sqlx::query("SELECT numbers, updated_at FROM caller_id_health WHERE campaign_id = $1")
            .bind(campaign)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some((r.try_get("numbers")?, from_ms(r.try_get("updated_at")?))))
    }
}
