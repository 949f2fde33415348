//! PostgreSQL: what `/readyz` and `/metrics` read (see [`crate::store`]'s `gauges`).

use super::PgEngine;
use crate::store::StoreError;
use sqlx::Row;
use std::collections::BTreeMap;

impl PgEngine {
    pub(in crate::store) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    /// sqlx's `_sqlx_migrations.success` is a BOOLEAN on PostgreSQL.
    pub(in crate::store) async fn migrations_pending(&self) -> Result<usize, StoreError> {
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(self.pool())
            .await?;
        Ok(super::MIGRATOR.iter().filter(|m| !applied.contains(&m.version)).count())
    }

    /// Every campaign with its contacts by status (none for a campaign without contacts), in one
    /// query: a campaign without contacts comes out of the outer join once, with a NULL status.
    pub(in crate::store) async fn contacts_by_status(
        &self,
    ) -> Result<Vec<(String, BTreeMap<String, u64>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT k.id, c.status, COUNT(c.id) AS n FROM campaigns k LEFT JOIN contacts c ON c.campaign_id = k.id
             GROUP BY k.id, c.status ORDER BY k.id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<(String, BTreeMap<String, u64>)> = Vec::new();
        for r in rows {
            let id: String = r.try_get("id")?;
            if out.last().is_none_or(|(last, _)| *last != id) {
                out.push((id, BTreeMap::new()));
            }
            let status: Option<String> = r.try_get("status")?;
            if let (Some(status), Some((_, contacts))) = (status, out.last_mut()) {
                contacts.insert(status, r.try_get::<i64, _>("n")?.max(0) as u64);
            }
        }
        Ok(out)
    }

    /// When the oldest pending job was created (ms since the epoch), if any is pending.
    pub(in crate::store) async fn oldest_pending_job_ms(&self) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT MIN(created_at) FROM outbox WHERE state = 'pending'")
                .fetch_one(self.pool())
                .await?,
        )
    }
}
