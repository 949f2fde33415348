//! SQLite: the completion estimate's pace (see [`crate::store`]'s `eta`).

use super::SqliteEngine;
use crate::store::StoreError;
use crate::store::eta::{Eta, from_window, window_start_ms};
use chrono::{DateTime, Utc};

impl SqliteEngine {
    pub(in crate::store) async fn campaign_eta(
        &self,
        campaign: &str,
        remaining: u64,
        now: DateTime<Utc>,
    ) -> Result<Eta, StoreError> {
        let since = window_start_ms(now);
        // The dispositions after which an attempt leaves its contact nothing more to do.
        let row: (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*) AS finished,
                 (SELECT MIN(started_at) FROM attempts WHERE campaign_id = ?1) AS first_started
             FROM attempts WHERE campaign_id = ?1 AND state = 'ended' AND ended_at >= ?2
                 AND disposition IN ('completed', 'voicemail_left', 'exhausted', 'dnc', 'invalid_number')",
        )
        .bind(campaign)
        .bind(since)
        .fetch_one(self.reader())
        .await?;
        Ok(from_window(remaining, row.0, row.1, since, now))
    }
}
