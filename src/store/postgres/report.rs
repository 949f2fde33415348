//! PostgreSQL: the operators' reports, `dialerd status` figures and `dialerd export` rows (see [`crate::store`]'s `report`).
//!
//! Read-only. Campaigns are listed in byte order of their id (`COLLATE "C"`), as SQLite's
//! `BINARY` collation lists them, whatever the database's collation.

use super::PgEngine;
use crate::store::report::{CampaignFigures, ExportRow, RejectedRow};
use crate::store::{StoreError, from_ms};
use sqlx::Row;
use std::collections::BTreeMap;

/// A count read as BIGINT, never negative.
fn count(n: i64) -> u64 {
    n.max(0) as u64
}

impl PgEngine {
    /// `(key, count)` rows of `sql` (one `$1`, the campaign) as a map.
    async fn counts(&self, sql: &'static str, campaign: &str) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows = sqlx::query(sql).bind(campaign).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, count(r.try_get::<i64, _>(1)?))))
            .collect()
    }

    pub(in crate::store) async fn campaign_figures(
        &self,
        only: Option<&str>,
        reject_limit: u32,
    ) -> Result<Vec<CampaignFigures>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, state FROM campaigns WHERE $1::text IS NULL OR id = $1 ORDER BY id COLLATE \"C\"",
        )
        .bind(only)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id")?;
            let contacts = self
                .counts(
                    "SELECT status, COUNT(*) FROM contacts WHERE campaign_id = $1 GROUP BY status",
                    &id,
                )
                .await?;
            let dispositions = self
                .counts(
                    "SELECT disposition, COUNT(*) FROM contacts WHERE campaign_id = $1 AND disposition IS NOT NULL GROUP BY disposition",
                    &id,
                )
                .await?;
            let attempts = self
                .counts(
                    "SELECT outcome, COUNT(*) FROM attempts WHERE campaign_id = $1 AND state = 'ended' GROUP BY outcome",
                    &id,
                )
                .await?;
            let in_flight: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM attempts WHERE campaign_id = $1 AND state != 'ended'")
                    .bind(&id)
                    .fetch_one(self.pool())
                    .await?;
            let rejected_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM import_rejects WHERE campaign_id = $1")
                .bind(&id)
                .fetch_one(self.pool())
                .await?;
            let rejects =
                sqlx::query("SELECT line, reason FROM import_rejects WHERE campaign_id = $1 ORDER BY line LIMIT $2")
                    .bind(&id)
                    .bind(i64::from(reject_limit))
                    .fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(RejectedRow {
                            line: count(r.try_get::<i64, _>("line")?),
                            reason: r.try_get("reason")?,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
            out.push(CampaignFigures {
                name: r.try_get("name")?,
                state: r.try_get("state")?,
                id,
                contacts,
                dispositions,
                attempts,
                in_flight: count(in_flight),
                rejected_rows: count(rejected_rows),
                rejects,
            });
        }
        Ok(out)
    }

    pub(in crate::store) async fn export_attempts(&self, campaign: &str) -> Result<Vec<ExportRow>, StoreError> {
        // `0::BIGINT` and the typed NULLs give both branches of the UNION the first one's types.
        let rows = sqlx::query(
            "SELECT contact_id, phone_e164, attempt, started_at, ended_at, outcome, disposition, outcome_reason, caller_id
             FROM attempts WHERE campaign_id = $1
             UNION ALL
             SELECT c.id, c.phone_e164, 0::BIGINT, c.updated_at, c.updated_at, NULL::TEXT, c.disposition, NULL::TEXT, NULL::TEXT
             FROM contacts c
             WHERE c.campaign_id = $1 AND (c.status = 'dnc' OR c.disposition = 'no_consent') AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = c.id)
             ORDER BY contact_id, attempt",
        )
        .bind(campaign)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let attempt: i64 = r.try_get("attempt")?;
                Ok(ExportRow {
                    campaign: campaign.to_string(),
                    contact_id: r.try_get("contact_id")?,
                    phone_e164: r.try_get("phone_e164")?,
                    attempt: u32::try_from(attempt)
                        .map_err(|_| StoreError::Corrupt(format!("attempt number {attempt} out of range")))?,
                    started_at: from_ms(r.try_get("started_at")?),
                    ended_at: r.try_get::<Option<i64>, _>("ended_at")?.map(from_ms),
                    outcome: r.try_get("outcome")?,
                    disposition: r.try_get("disposition")?,
                    outcome_reason: r.try_get("outcome_reason")?,
                    caller_id: r.try_get("caller_id")?,
                })
            })
            .collect()
    }

    pub(in crate::store) async fn campaign_exists(&self, campaign: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM campaigns WHERE id = $1")
            .bind(campaign)
            .fetch_one(self.pool())
            .await?;
        Ok(n > 0)
    }
}
