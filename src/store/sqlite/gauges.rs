//! SQLite: what `/readyz` and `/metrics` read (see [`crate::store`]'s `gauges`).

use super::SqliteEngine;
use crate::store::StoreError;
use sqlx::Row;
use std::collections::BTreeMap;

impl SqliteEngine {
    pub(in crate::store) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.reader()).await?;
        Ok(())
    }

    pub(in crate::store) async fn migrations_pending(&self) -> Result<usize, StoreError> {
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
            .fetch_all(self.reader())
            .await?;
        Ok(super::MIGRATOR.iter().filter(|m| !applied.contains(&m.version)).count())
    }

    /// Every campaign with its contacts by status (none for a campaign without contacts).
    pub(in crate::store) async fn contacts_by_status(
        &self,
    ) -> Result<Vec<(String, BTreeMap<String, u64>)>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM campaigns")
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut contacts = BTreeMap::new();
            for r in sqlx::query("SELECT status, COUNT(*) FROM contacts WHERE campaign_id = ? GROUP BY status")
                .bind(&id)
                .fetch_all(self.reader())
                .await?
            {
                contacts.insert(r.try_get(0)?, r.try_get::<i64, _>(1)?.max(0) as u64);
            }
            out.push((id, contacts));
        }
        Ok(out)
    }

    /// When the oldest pending job was created (ms since the epoch), if any is pending.
    pub(in crate::store) async fn oldest_pending_job_ms(&self) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT MIN(created_at) FROM outbox WHERE state = 'pending'")
                .fetch_one(self.reader())
                .await?,
        )
    }
}
