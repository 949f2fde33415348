//! PostgreSQL: the outbox, a durable job table (see [`crate::store`]'s `outbox`).
//!
//! Several nodes claim from one table at once, under READ COMMITTED. What keeps them correct:
//! - A claim selects its due jobs `FOR UPDATE SKIP LOCKED` in a transaction, rechecking
//!   `state = 'pending'` on the locked row, then marks them `running`: a job another node is
//!   claiming is skipped, and one it claimed already fails the recheck, so no job is claimed
//!   twice.
//! - A job is due only when no earlier job of its `order_key` is `pending` or `running` in the
//!   claim's snapshot. An earlier job claimed by another node is `pending` in that snapshot while
//!   the other node has not committed, and `running` after, so it blocks either way: one job per
//!   order key runs at a time, whichever node holds it.
//! - That holds only if the jobs of a key become visible in id order. Ids are drawn at insert
//!   time, so two transactions inserting jobs of the same key could commit out of id order;
//!   [`insert_jobs`] therefore takes a transaction-scoped advisory lock per order key first, so
//!   inserts of one key commit one after the other, in id order.

use super::PgEngine;
use crate::store::outbox::JOB_COLUMNS;
use crate::store::{DeliveryLog, Job, JobResult, NewJob, StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};
use std::collections::BTreeMap;

/// First key of the advisory locks [`insert_jobs`] takes per order key (the second is the key's
/// `hashtext`); two-key advisory locks never collide with single-key ones such as sqlx's
/// migration lock.
const ORDER_KEY_LOCK_CLASS: i32 = 0x0D1A_0B0C;

/// Locks the order keys in `$2` for the transaction, in one order (by hash) so that two
/// transactions locking overlapping keys cannot deadlock on them.
const LOCK_ORDER_KEYS_SQL: &str = "SELECT pg_advisory_xact_lock($1::integer, s.h)
    FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($2::text[]) AS k ORDER BY h) s";

/// Inserts the jobs given as parallel arrays, in array order (so ids follow it); an existing
/// idempotency key (or a repeat within the arrays) is skipped, as SQLite's
/// `ON CONFLICT DO NOTHING` does.
const INSERT_JOBS_SQL: &str = "INSERT INTO outbox (campaign_id, order_key, kind, event, idempotency_key, payload,
        max_attempts, next_run_at, created_at, updated_at)
    SELECT j.campaign_id, j.order_key, j.kind, j.event, j.idempotency_key, j.payload, j.max_attempts, j.next_run_at, $9, $9
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
        WITH ORDINALITY AS j(campaign_id, order_key, kind, event, idempotency_key, payload, max_attempts, next_run_at, ord)
    ORDER BY j.ord
    ON CONFLICT (idempotency_key) DO NOTHING";

/// The due jobs a claim may take, locked: the SQLite claim's selection (one per order key, at
/// most `$3` running per sink counting those running already, at most `$2`), each row locked
/// `FOR UPDATE SKIP LOCKED` and its state rechecked on the locked version. The sink counts are
/// read from the statement's snapshot, so two nodes claiming at the same instant may together
/// exceed `$3` for a sink by what the other is claiming; order and single claims are exact.
const CLAIM_SELECT_SQL: &str = "WITH due AS (
        SELECT o.id, substr(o.order_key, 1, strpos(o.order_key, ':')) AS sink FROM outbox o
        WHERE o.state = 'pending' AND o.next_run_at <= $1
          AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.order_key = o.order_key AND p.id < o.id
                          AND p.state IN ('pending', 'running'))),
    busy AS (
        SELECT substr(order_key, 1, strpos(order_key, ':')) AS sink, COUNT(*) AS n
        FROM outbox WHERE state = 'running' GROUP BY 1),
    ranked AS (
        SELECT d.id, ROW_NUMBER() OVER (PARTITION BY d.sink ORDER BY d.id) + COALESCE(b.n, 0) AS slot
        FROM due d LEFT JOIN busy b ON b.sink = d.sink)
    SELECT o.id FROM outbox o
    WHERE o.id IN (SELECT id FROM ranked WHERE slot <= $3 ORDER BY id LIMIT $2)
      AND o.state = 'pending' AND o.next_run_at <= $1
    ORDER BY o.id
    FOR UPDATE OF o SKIP LOCKED";

fn count(r: &PgRow, col: &str) -> Result<u32, StoreError> {
    let v: i64 = r.try_get(col)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("outbox.{col} = {v}")))
}

fn job(r: &PgRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: r.try_get("id")?,
        campaign_id: r.try_get("campaign_id")?,
        order_key: r.try_get("order_key")?,
        kind: r.try_get("kind")?,
        event: r.try_get("event")?,
        idempotency_key: r.try_get("idempotency_key")?,
        payload: r.try_get("payload")?,
        state: r.try_get("state")?,
        attempts: count(r, "attempts")?,
        max_attempts: count(r, "max_attempts")?,
        next_run_at: from_ms(r.try_get("next_run_at")?),
        last_error: r.try_get("last_error")?,
        created_at: from_ms(r.try_get("created_at")?),
        updated_at: from_ms(r.try_get("updated_at")?),
    })
}

/// Inserts `jobs` inside `tx`; jobs whose idempotency key exists already are skipped. Returns
/// how many were inserted. Locks the jobs' order keys until `tx` ends (see the module doc).
pub(in crate::store) async fn insert_jobs(
    tx: &mut Transaction<'_, Postgres>,
    jobs: &[NewJob],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&NewJob) -> String| jobs.iter().map(f).collect::<Vec<String>>();
    let order_keys = col(|j| j.order_key.clone());
    sqlx::query(LOCK_ORDER_KEYS_SQL)
        .bind(ORDER_KEY_LOCK_CLASS)
        .bind(&order_keys)
        .execute(&mut **tx)
        .await?;
    let events: Vec<Option<String>> = jobs.iter().map(|j| j.event.clone()).collect();
    let max_attempts: Vec<i64> = jobs.iter().map(|j| i64::from(j.max_attempts.max(1))).collect();
    let run_at: Vec<i64> = jobs.iter().map(|j| to_ms(j.run_at)).collect();
    let r = sqlx::query(INSERT_JOBS_SQL)
        .bind(col(|j| j.campaign_id.clone()))
        .bind(&order_keys)
        .bind(col(|j| j.kind.clone()))
        .bind(events)
        .bind(col(|j| j.idempotency_key.clone()))
        .bind(col(|j| j.payload.clone()))
        .bind(max_attempts)
        .bind(run_at)
        .bind(to_ms(now))
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected())
}

impl PgEngine {
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
        let mut tx = self.pool().begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(CLAIM_SELECT_SQL)
            .bind(to_ms(now))
            .bind(i64::from(limit))
            .bind(i64::from(per_sink))
            .fetch_all(&mut *tx)
            .await?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        // The rows are locked by this transaction and were pending: this update takes them all.
        let sql = format!(
            "UPDATE outbox SET state = 'running', attempts = attempts + 1, updated_at = $1
             WHERE id = ANY($2) AND state = 'pending' RETURNING {JOB_COLUMNS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_ms(now))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
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
            JobResult::Done => ("done", None, now, 0i64),
            JobResult::Retry { error, at } => ("pending", Some(error.as_str()), *at, 0),
            JobResult::Defer { error, at } => ("pending", Some(error.as_str()), *at, 1),
            JobResult::Dead { error } => ("dead", Some(error.as_str()), now, 0),
        };
        sqlx::query(
            "UPDATE outbox SET state = $1, attempts = GREATEST(attempts - $2, 0), last_error = COALESCE($3, last_error),
             next_run_at = $4, updated_at = $5 WHERE id = $6",
        )
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
        sqlx::query(
            "INSERT INTO outbox_deliveries (job_id, attempt, started_at, latency_ms, status, error)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(d.job_id)
        .bind(i64::from(d.attempt))
        .bind(to_ms(d.started_at))
        .bind(d.latency_ms)
        .bind(d.status.map(i64::from))
        .bind(&d.error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every `running` job, whichever node claimed it: as on SQLite, this is meant for start-up
    /// after a crash. A node starting while others run jobs resets theirs too (they then run
    /// again: at least once still holds); the table records no owner to tell them apart.
    pub(in crate::store) async fn recover_jobs(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE outbox SET state = 'pending', next_run_at = $1, updated_at = $1 WHERE state = 'running'",
        )
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
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM outbox WHERE ($1::text IS NULL OR state = $1) ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(job).collect()
    }

    pub(in crate::store) async fn all_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM outbox ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        rows.iter().map(job).collect()
    }

    /// Conditional on `state = 'dead'`: of two operators replaying the same job, one counts it.
    pub(in crate::store) async fn retry_dead_jobs(&self, ids: &[i64], now: DateTime<Utc>) -> Result<u64, StoreError> {
        let r = if ids.is_empty() {
            sqlx::query(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_run_at = $1, updated_at = $1 WHERE state = 'dead'",
            )
            .bind(to_ms(now))
            .execute(self.pool())
            .await?
        } else {
            sqlx::query(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_run_at = $1, updated_at = $1
                 WHERE state = 'dead' AND id = ANY($2)",
            )
            .bind(to_ms(now))
            .bind(ids)
            .execute(self.pool())
            .await?
        };
        Ok(r.rows_affected())
    }

    /// One statement, so the jobs whose delivery log is deleted are exactly the jobs deleted,
    /// even while other nodes finish or replay jobs.
    pub(in crate::store) async fn purge_jobs(&self, state: &str, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM outbox WHERE state = $1 AND updated_at < $2 RETURNING id),
                  logs AS (DELETE FROM outbox_deliveries WHERE job_id IN (SELECT id FROM gone))
             SELECT COUNT(*) FROM gone",
        )
        .bind(state)
        .bind(to_ms(before))
        .fetch_one(self.pool())
        .await?;
        Ok(n.max(0) as u64)
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
