//! SQLite: the operator's control of a campaign (see [`crate::store`]'s `control`).

use super::SqliteEngine;
use crate::store::control::{CampaignControl, ControlError, ControlRecord, control_record};
use crate::store::{StoreError, to_ms};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

impl SqliteEngine {
    pub(in crate::store) async fn set_campaign_control(
        &self,
        campaign: &str,
        to: CampaignControl,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<ControlRecord, ControlError> {
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        // The UPDATE comes first so the transaction holds the write lock before it reads.
        let changed = sqlx::query(
            "UPDATE campaigns SET control = ?, control_by = ?, control_at = ?
             WHERE id = ? AND control != ? AND control != 'cancelled'",
        )
        .bind(to.as_str())
        .bind(by)
        .bind(to_ms(now))
        .bind(campaign)
        .bind(to.as_str())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?
        .rows_affected();
        let row = sqlx::query("SELECT control, control_by, control_at FROM campaigns WHERE id = ?")
            .bind(campaign)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .ok_or_else(|| ControlError::UnknownCampaign(campaign.to_string()))?;
        let record = record(&row)?;
        tx.commit().await.map_err(StoreError::from)?;
        if changed == 0 && record.control == CampaignControl::Cancelled && to != CampaignControl::Cancelled {
            return Err(ControlError::Cancelled(campaign.to_string()));
        }
        Ok(record)
    }

    pub(in crate::store) async fn campaign_control(&self, campaign: &str) -> Result<Option<ControlRecord>, StoreError> {
        let row = sqlx::query("SELECT control, control_by, control_at FROM campaigns WHERE id = ?")
            .bind(campaign)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(record).transpose()
    }

    pub(in crate::store) async fn campaign_controls(&self) -> Result<Vec<(String, CampaignControl)>, StoreError> {
        let rows = sqlx::query("SELECT id, control FROM campaigns")
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>(0)?,
                    CampaignControl::parse(&r.try_get::<String, _>(1)?)?,
                ))
            })
            .collect()
    }
}

/// The record of a `control, control_by, control_at` row.
fn record(row: &SqliteRow) -> Result<ControlRecord, StoreError> {
    control_record(&row.try_get::<String, _>(0)?, row.try_get(1)?, row.try_get(2)?)
}
