//! The outbox: a durable job table. Jobs are inserted in the transaction that produces them,
//! claimed a batch at a time (one job per `order_key` at a time, in id order), and finished as
//! done, retried later, deferred (a sink asked for a pause: the attempt is not counted), or
//! dead-lettered with their error. Order keys are per call and per sink (`call:` for the
//! webhook URL, `analyze:`, `crm:`, `fu:<call>:<sink>`, `kg:`), so a sink that is down holds
//! only its own jobs. Running jobs left by a crash are
//! reset to pending at start-up, so every job runs at least once.

use super::{Store, StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Row, Sqlite, Transaction};
use std::collections::BTreeMap;

/// A job to insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    /// Campaign the job belongs to.
    pub campaign_id: String,
    /// Jobs with the same key run one at a time, in insertion order: one key per call and sink.
    pub order_key: String,
    /// `analyze`, `webhook`, `crm` or `follow_up`.
    pub kind: String,
    /// Webhook event type, when there is one.
    pub event: Option<String>,
    /// Stable idempotency key (`X-Webhook-Id`); a second insert with the same key is ignored.
    pub idempotency_key: String,
    /// JSON payload.
    pub payload: String,
    /// Runs at most this many times (first attempt included) before it is dead-lettered.
    pub max_attempts: u32,
    /// Not before this instant (UTC).
    pub run_at: DateTime<Utc>,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Job {
    /// Row id; also the order within an `order_key`.
    pub id: i64,
    /// Campaign.
    pub campaign_id: String,
    /// Ordering key.
    pub order_key: String,
    /// Job kind.
    pub kind: String,
    /// Webhook event type.
    pub event: Option<String>,
    /// Idempotency key.
    pub idempotency_key: String,
    /// JSON payload.
    #[serde(skip)]
    pub payload: String,
    /// `pending`, `running`, `done` or `dead`.
    pub state: String,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempt limit.
    pub max_attempts: u32,
    /// Next attempt not before (UTC).
    pub next_run_at: DateTime<Utc>,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// When it was inserted (UTC).
    pub created_at: DateTime<Utc>,
    /// Last state change (UTC).
    pub updated_at: DateTime<Utc>,
}

/// How an attempt at a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobResult {
    /// The sink acknowledged it.
    Done,
    /// Failed; run again at the instant (UTC).
    Retry {
        /// What went wrong.
        error: String,
        /// Next attempt.
        at: DateTime<Utc>,
    },
    /// Not judged: the sink asked for a pause (HTTP 429 with a wait). Run again at the instant
    /// (UTC); the attempt is given back, so waiting as told never dead-letters a job.
    Defer {
        /// What the sink said.
        error: String,
        /// Next attempt.
        at: DateTime<Utc>,
    },
    /// Failed for good: kept as `dead` with its error until replayed or purged.
    Dead {
        /// What went wrong.
        error: String,
    },
}

/// One delivery attempt, for the delivery log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryLog {
    /// Job id.
    pub job_id: i64,
    /// 1-based attempt.
    pub attempt: u32,
    /// When the request started (UTC).
    pub started_at: DateTime<Utc>,
    /// Request latency in milliseconds.
    pub latency_ms: i64,
    /// HTTP status, when a response came back.
    pub status: Option<u16>,
    /// Error, when it failed.
    pub error: Option<String>,
}

const JOB_COLUMNS: &str = "id, campaign_id, order_key, kind, event, idempotency_key, payload, state, attempts, max_attempts, next_run_at, last_error, created_at, updated_at";

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

/// Inserts `jobs` inside `tx`; jobs whose idempotency key exists already are skipped.
pub(crate) async fn insert_jobs(
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

impl Store {
    /// Inserts jobs in one transaction; returns how many were new (duplicate keys are ignored).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn enqueue_jobs(&self, jobs: &[NewJob], now: DateTime<Utc>) -> Result<u64, StoreError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool().begin().await?;
        let n = insert_jobs(&mut tx, jobs, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Claims up to `limit` due jobs (state `pending`, `next_run_at` ≤ now, no earlier unfinished
    /// job with the same `order_key`), marks them `running` and counts the attempt.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn claim_jobs(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Job>, StoreError> {
        self.claim_jobs_per_sink(now, limit, limit).await
    }

    /// [`Store::claim_jobs`] with at most `per_sink` jobs running at once per sink, a sink being
    /// the part of the order key before its first `:` (`call`, `analyze`, `crm`, `fu`, `kg`,
    /// `campaign`): a sink whose requests hang holds at most `per_sink` workers, never all.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn claim_jobs_per_sink(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        per_sink: u32,
    ) -> Result<Vec<Job>, StoreError> {
        if limit == 0 || per_sink == 0 {
            return Ok(Vec::new());
        }
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

    /// Records how an attempt at job `id` ended, and inserts `follow_on` jobs in the same transaction.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn finish_job(
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

    /// Appends to the delivery log.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn log_delivery(&self, d: &DeliveryLog) -> Result<(), StoreError> {
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

    /// Resets jobs left `running` by a crash to `pending`, due now; returns how many.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn recover_jobs(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let r =
            sqlx::query("UPDATE outbox SET state = 'pending', next_run_at = ?, updated_at = ? WHERE state = 'running'")
                .bind(to_ms(now))
                .bind(to_ms(now))
                .execute(self.pool())
                .await?;
        Ok(r.rows_affected())
    }

    /// Jobs by state (`pending`, `running`, `done`, `dead`).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn job_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get::<i64, _>("n")?.max(0) as u64)))
            .collect()
    }

    /// Number of jobs still to run (`pending` or `running`).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn unfinished_jobs(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'running')")
            .fetch_one(self.pool())
            .await?;
        Ok(n.max(0) as u64)
    }

    /// Up to `limit` jobs, newest first, optionally only those in `state`.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn list_jobs(&self, state: Option<&str>, limit: u32) -> Result<Vec<Job>, StoreError> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM outbox WHERE (?1 IS NULL OR state = ?1) ORDER BY id DESC LIMIT ?2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(job).collect()
    }

    /// Every job, oldest first (tests and benchmarks).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn all_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM outbox ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        rows.iter().map(job).collect()
    }

    /// Replays dead jobs: the given ids, or every dead job when `ids` is empty. Their attempt
    /// count restarts at 0 and they are due now; returns how many were replayed.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn retry_dead_jobs(&self, ids: &[i64], now: DateTime<Utc>) -> Result<u64, StoreError> {
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

    /// Deletes finished jobs in `state` (`done` or `dead`) last changed before `before`, with
    /// their delivery log; returns how many jobs were deleted.
    ///
    /// Errors: [`StoreError::Corrupt`] for another state, [`StoreError::Query`].
    pub async fn purge_jobs(&self, state: &str, before: DateTime<Utc>) -> Result<u64, StoreError> {
        if !matches!(state, "done" | "dead") {
            return Err(StoreError::Corrupt(format!(
                "only done or dead jobs can be purged, not `{state}`"
            )));
        }
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

    /// Delivery latencies in milliseconds (from job creation to acknowledgement) of done webhook jobs.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn delivery_latencies_ms(&self) -> Result<Vec<i64>, StoreError> {
        let v: Vec<i64> = sqlx::query_scalar(
            "SELECT updated_at - created_at FROM outbox WHERE state = 'done' AND kind = 'webhook' ORDER BY 1",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(v)
    }
}

/// `dialerd outbox list` as text: counts by state, then one line per job.
pub fn jobs_text(jobs: &[Job], counts: &BTreeMap<String, u64>) -> String {
    let mut out = String::from("outbox:");
    for (state, n) in counts {
        out.push_str(&format!(" {state}={n}"));
    }
    out.push('\n');
    for j in jobs {
        out.push_str(&format!(
            "{:>8} {:<8} {:<10} {:<20} attempts={}/{} id={} order={} next={}{}\n",
            j.id,
            j.state,
            j.kind,
            j.event.as_deref().unwrap_or("-"),
            j.attempts,
            j.max_attempts,
            j.idempotency_key,
            j.order_key,
            j.next_run_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            j.last_error
                .as_deref()
                .map(|e| format!(" error=\"{e}\""))
                .unwrap_or_default(),
        ));
    }
    out
}
