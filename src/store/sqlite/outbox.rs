//! SQLite: the outbox, a durable job table (see [`crate::store`]'s `outbox`).

use super::SqliteEngine;
use crate::store::outbox::JOB_COLUMNS;
use crate::store::{DeliveryLog, Job, JobResult, NewJob, StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use sqlx::{Row, Sqlite, Transaction};
use std::collections::BTreeMap;

fn job(r: &sqlx::sqlite::SqliteRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: r.try_get("id")?,
        campaign_id: r.try_get("campaign_id")?,
        order_key: r.try_get("order_key")?,
        kind: r.try_get("kind")?,
        event: r.try_get("event")?,
        idempotency_key: r.try_get("idempotency_key")?,
        payload: r.try_get("payload")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        max_attempts: r.try_get("max_attempts")?,
        next_run_at: from_ms(r.try_get("next_run_at")?),
        last_error: r.try_get("last_error")?,
        created_at: from_ms(r.try_get("created_at")?),
        updated_at: from_ms(r.try_get("updated_at")?),
    })
}

/// Inserts `jobs` inside `tx`; jobs whose idempotency key exists already are skipped. Returns
/// how many were inserted.
pub(in crate::store) async fn insert_jobs(
    tx: &mut Transaction<'_, Sqlite>,
    jobs: &[NewJob],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for j in jobs {
        let r = sqlx::query(
            "INSERT INTO outbox (campaign_id, order_key, kind, event, idempotency_key, payload, max_attempts, next_run_at, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(idempotency_key) DO NOTHING",
        )
        .bind(&j.campaign_id)
        .bind(&j.order_key)
        .bind(&j.kind)
        .bind(&j.event)
        .bind(&j.idempotency_key)
        .bind(&j.payload)
        .bind(j.max_attempts.max(1))
        .bind(to_ms(j.run_at))
        .bind(to_ms(now))
        .bind(to_ms(now))
        .execute(&mut **tx)
        .await?;
        n += r.rows_affected();
    }
    Ok(n)
}

impl SqliteEngine {
    pub(in crate::store) async fn enqueue_jobs(&self, jobs: &[NewJob], now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let n = insert_jobs(&mut tx, jobs, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    pub(in crate::store) async fn claim_jobs_per_sink(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        per_sink: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let sql = format!(
            "WITH due AS (
                 SELECT o.id, substr(o.order_key, 1, instr(o.order_key, ':')) AS sink FROM outbox o
                 WHERE o.state = 'pending' AND o.next_run_at <= ?1
                   AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.order_key = o.order_key AND p.id < o.id
                                   AND p.state IN ('pending', 'running'))),
             busy AS (
                 SELECT substr(order_key, 1, instr(order_key, ':')) AS sink, COUNT(*) AS n
                 FROM outbox WHERE state = 'running' GROUP BY 1),
             ranked AS (
                 SELECT d.id, ROW_NUMBER() OVER (PARTITION BY d.sink ORDER BY d.id) + COALESCE(b.n, 0) AS slot
                 FROM due d LEFT JOIN busy b ON b.sink = d.sink)
             UPDATE outbox SET state = 'running', attempts = attempts + 1, updated_at = ?1
             WHERE id IN (SELECT id FROM ranked WHERE slot <= ?3 ORDER BY id LIMIT ?2)
             RETURNING {JOB_COLUMNS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_ms(now))
            .bind(limit)
            .bind(per_sink)
            .fetch_all(self.pool())
            .await?;
        let mut jobs: Vec<Job> = rows.iter().map(job).collect::<Result<_, _>>()?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    pub(in crate::store) async fn finish_job(
        &self,
        id: i64,
        result: &JobResult,
        follow_on: &[NewJob],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        insert_jobs(&mut tx, follow_on, now).await?;
        let (state, error, at, given_back) = match result {
            JobResult::Done => ("done", None, now, 0),
            JobResult::Retry { error, at } => ("pending", Some(error.as_str()), *at, 0),
            JobResult::Defer { error, at } => ("pending", Some(error.as_str()), *at, 1),
            JobResult::Dead { error } => ("dead", Some(error.as_str()), now, 0),
        };
        sqlx::query("UPDATE outbox SET state = ?, attempts = MAX(attempts - ?, 0), last_error = COALESCE(?, last_error), next_run_at = ?, updated_at = ? WHERE id = ?")
            .bind(state)
            .bind(given_back)
            .bind(error)
            .bind(to_ms(at))
            .bind(to_ms(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn log_delivery(&self, d: &DeliveryLog) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO outbox_deliveries (job_id, attempt, started_at, latency_ms, status, error) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(d.job_id)
            .bind(d.attempt)
            .bind(to_ms(d.started_at))
            .bind(d.latency_ms)
            .bind(d.status)
            .bind(&d.error)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn recover_jobs(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let r =
            sqlx::query("UPDATE outbox SET state = 'pending', next_run_at = ?, updated_at = ? WHERE state = 'running'")
                .bind(to_ms(now))
                .bind(to_ms(now))
                .execute(self.pool())
                .await?;
        Ok(r.rows_affected())
    }

    pub(in crate::store) async fn job_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get::<i64, _>("n")?.max(0) as u64)))
            .collect()
    }

    pub(in crate::store) async fn unfinished_jobs(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'running')")
            .fetch_one(self.pool())
            .await?;
        Ok(n.max(0) as u64)
    }

    pub(in crate::store) async fn list_jobs(&self, state: Option<&str>, limit: u32) -> Result<Vec<Job>, StoreError> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM outbox WHERE (?1 IS NULL OR state = ?1) ORDER BY id DESC LIMIT ?2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(job).collect()
    }

    pub(in crate::store) async fn all_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM outbox ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        rows.iter().map(job).collect()
    }

    pub(in crate::store) async fn retry_dead_jobs(&self, ids: &[i64], now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let q =
            "UPDATE outbox SET state = 'pending', attempts = 0, next_run_at = ?, updated_at = ? WHERE state = 'dead'";
        let mut n = 0;
        if ids.is_empty() {
            n += sqlx::query(q)
                .bind(to_ms(now))
                .bind(to_ms(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        } else {
            let q = format!("{q} AND id = ?");
            for id in ids {
                n += sqlx::query(sqlx::AssertSqlSafe(q.clone()))
                    .bind(to_ms(now))
                    .bind(to_ms(now))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    pub(in crate::store) async fn purge_jobs(&self, state: &str, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM outbox_deliveries WHERE job_id IN (SELECT id FROM outbox WHERE state = ? AND updated_at < ?)",
        )
        .bind(state)
        .bind(to_ms(before))
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query("DELETE FROM outbox WHERE state = ? AND updated_at < ?")
            .bind(state)
            .bind(to_ms(before))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    pub(in crate::store) async fn delivery_latencies_ms(&self) -> Result<Vec<i64>, StoreError> {
        let v: Vec<i64> = sqlx::query_scalar(
            "SELECT updated_at - created_at FROM outbox WHERE state = 'done' AND kind = 'webhook' ORDER BY 1",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(v)
    }
}
