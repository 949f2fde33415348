//! The outbox: a durable job table. Jobs are inserted in the transaction that produces them,
//! claimed a batch at a time (one job per `order_key` at a time, in id order), and finished as
//! done, retried later, deferred (a sink asked for a pause: the attempt is not counted), or
//! dead-lettered with their error. Order keys are per call and per sink (`call:` for the
//! webhook URL, `analyze:`, `crm:`, `fu:<call>:<sink>`, `kg:`), so a sink that is down holds
//! only its own jobs. Running jobs left by a crash are
//! reset to pending at start-up, so every job runs at least once.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
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

/// The columns of a [`Job`], in the order both engines select them.
pub(crate) const JOB_COLUMNS: &str = "id, campaign_id, order_key, kind, event, idempotency_key, payload, state, attempts, max_attempts, next_run_at, last_error, created_at, updated_at";

impl Store {
    /// Inserts jobs in one transaction; returns how many were new (duplicate keys are ignored).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn enqueue_jobs(&self, jobs: &[NewJob], now: DateTime<Utc>) -> Result<u64, StoreError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        on_engine!(self, enqueue_jobs(jobs, now))
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
    /// Returned in id order.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for an undecodable row.
    pub async fn claim_jobs_per_sink(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        per_sink: u32,
    ) -> Result<Vec<Job>, StoreError> {
        if limit == 0 || per_sink == 0 {
            return Ok(Vec::new());
        }
        on_engine!(self, claim_jobs_per_sink(now, limit, per_sink))
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
        on_engine!(self, finish_job(id, result, follow_on, now))
    }

    /// Appends to the delivery log.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn log_delivery(&self, d: &DeliveryLog) -> Result<(), StoreError> {
        on_engine!(self, log_delivery(d))
    }

    /// Resets jobs left `running` by a crash to `pending`, due now; returns how many.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn recover_jobs(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        on_engine!(self, recover_jobs(now))
    }

    /// Jobs by state (`pending`, `running`, `done`, `dead`).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn job_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        on_engine!(self, job_counts())
    }

    /// Number of jobs still to run (`pending` or `running`).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn unfinished_jobs(&self) -> Result<u64, StoreError> {
        on_engine!(self, unfinished_jobs())
    }

    /// Up to `limit` jobs, newest first, optionally only those in `state`.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for an undecodable row.
    pub async fn list_jobs(&self, state: Option<&str>, limit: u32) -> Result<Vec<Job>, StoreError> {
        on_engine!(self, list_jobs(state, limit))
    }

    /// Every job, oldest first (tests and benchmarks).
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for an undecodable row.
    pub async fn all_jobs(&self) -> Result<Vec<Job>, StoreError> {
        on_engine!(self, all_jobs())
    }

    /// Replays dead jobs: the given ids, or every dead job when `ids` is empty. Their attempt
    /// count restarts at 0 and they are due now; returns how many were replayed.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn retry_dead_jobs(&self, ids: &[i64], now: DateTime<Utc>) -> Result<u64, StoreError> {
        on_engine!(self, retry_dead_jobs(ids, now))
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
        on_engine!(self, purge_jobs(state, before))
    }

    /// Delivery latencies in milliseconds (from job creation to acknowledgement) of done webhook
    /// jobs, smallest first.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn delivery_latencies_ms(&self) -> Result<Vec<i64>, StoreError> {
        on_engine!(self, delivery_latencies_ms())
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
