//! PostgreSQL: the operator's control of a campaign (see [`crate::store`]'s `control`).

use super::PgEngine;
use crate::store::control::{CampaignControl, ControlError, ControlRecord, control_record};
use crate::store::{StoreError, to_ms};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

impl PgEngine {
    pub(in crate::store) async fn set_campaign_control(
        &self,
        campaign: &str,
        to: CampaignControl,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<ControlRecord, ControlError> {
        // SQLite's single writer serialises the UPDATE and the read after it. Here the row is
        // locked first (FOR UPDATE), so an operator on another node changing the same campaign
        // waits for this transaction and then sees its result: the decision (unchanged, refused
        // for a cancelled campaign, or changed) and the record returned are of one state. The
        // UPDATE stays conditional as in SQLite.
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        let row = sqlx::query("SELECT control, control_by, control_at FROM campaigns WHERE id = $1 FOR UPDATE")
            .bind(campaign)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .ok_or_else(|| ControlError::UnknownCampaign(campaign.to_string()))?;
        let current = record(&row)?;
        if current.control == CampaignControl::Cancelled && to != CampaignControl::Cancelled {
            return Err(ControlError::Cancelled(campaign.to_string()));
        }
        if current.control == to {
            tx.commit().await.map_err(StoreError::from)?;
            return Ok(current);
        }
        let row = sqlx::query(
            "UPDATE campaigns SET control = $1, control_by = $2, control_at = $3
             WHERE id = $4 AND control != $1 AND control != 'cancelled'
             RETURNING control, control_by, control_at",
        )
        .bind(to.as_str())
        .bind(by)
        .bind(to_ms(now))
        .bind(campaign)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let updated = match row {
            Some(r) => record(&r)?,
            None => current,
        };
        tx.commit().await.map_err(StoreError::from)?;
        Ok(updated)
    }

    pub(in crate::store) async fn campaign_control(&self, campaign: &str) -> Result<Option<ControlRecord>, StoreError> {
        let row = sqlx::query("SELECT control, control_by, control_at FROM campaigns WHERE id = $1")
            .bind(campaign)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record).transpose()
    }

    pub(in crate::store) async fn campaign_controls(&self) -> Result<Vec<(String, CampaignControl)>, StoreError> {
        let rows = sqlx::query("SELECT id, control FROM campaigns")
            .fetch_all(self.pool())
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
fn record(row: &PgRow) -> Result<ControlRecord, StoreError> {
    control_record(&row.try_get::<String, _>(0)?, row.try_get(1)?, row.try_get(2)?)
}
