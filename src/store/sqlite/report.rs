//! SQLite: the operators' reports, `dialerd status` figures and `dialerd export` rows (see [`crate::store`]'s `report`).

use super::SqliteEngine;
use crate::store::report::{CampaignFigures, ExportRow, RejectedRow};
use crate::store::{StoreError, from_ms};
use sqlx::Row;
use std::collections::BTreeMap;

impl SqliteEngine {
    /// `(key, count)` rows of `sql` (one `?`, the campaign) as a map.
    async fn counts(&self, sql: &'static str, campaign: &str) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows = sqlx::query(sql).bind(campaign).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?.max(0) as u64)))
            .collect()
    }

    pub(in crate::store) async fn campaign_figures(
        &self,
        only: Option<&str>,
        reject_limit: u32,
    ) -> Result<Vec<CampaignFigures>, StoreError> {
        let rows = sqlx::query("SELECT id, name, state FROM campaigns WHERE ?1 IS NULL OR id = ?1 ORDER BY id")
            .bind(only)
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id")?;
            let contacts = self
                .counts(
                    "SELECT status, COUNT(*) FROM contacts WHERE campaign_id = ? GROUP BY status",
                    &id,
                )
                .await?;
            let dispositions = self
                .counts(
                    "SELECT disposition, COUNT(*) FROM contacts WHERE campaign_id = ? AND disposition IS NOT NULL GROUP BY disposition",
                    &id,
                )
                .await?;
            let attempts = self
                .counts(
                    "SELECT outcome, COUNT(*) FROM attempts WHERE campaign_id = ? AND state = 'ended' GROUP BY outcome",
                    &id,
                )
                .await?;
            let in_flight: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM attempts WHERE campaign_id = ? AND state != 'ended'")
                    .bind(&id)
                    .fetch_one(self.reader())
                    .await?;
            let rejected_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM import_rejects WHERE campaign_id = ?")
                .bind(&id)
                .fetch_one(self.reader())
                .await?;
            let rejects =
                sqlx::query("SELECT line, reason FROM import_rejects WHERE campaign_id = ? ORDER BY line LIMIT ?")
                    .bind(&id)
                    .bind(reject_limit)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(RejectedRow {
                            line: r.try_get::<i64, _>("line")?.max(0) as u64,
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
                in_flight: in_flight.max(0) as u64,
                rejected_rows: rejected_rows.max(0) as u64,
                rejects,
            });
        }
        Ok(out)
    }

    pub(in crate::store) async fn export_attempts(&self, campaign: &str) -> Result<Vec<ExportRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT contact_id, phone_e164, attempt, started_at, ended_at, outcome, disposition, outcome_reason, caller_id
             FROM attempts WHERE campaign_id = ?1
             UNION ALL
             SELECT c.id, c.phone_e164, 0, c.updated_at, c.updated_at, NULL, c.disposition, NULL, NULL FROM contacts c
             WHERE c.campaign_id = ?1 AND (c.status = 'dnc' OR c.disposition = 'no_consent') AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = c.id)
             ORDER BY contact_id, attempt",
        )
        .bind(campaign)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExportRow {
                    campaign: campaign.to_string(),
                    contact_id: r.try_get("contact_id")?,
                    phone_e164: r.try_get("phone_e164")?,
                    attempt: r.try_get("attempt")?,
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
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM campaigns WHERE id = ?")
            .bind(campaign)
            .fetch_one(self.reader())
            .await?;
        Ok(n > 0)
    }
}
