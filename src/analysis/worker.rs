//! Outbox workers: a pool that claims due jobs (at most `concurrency` at once, at most half of
//! them for one sink, one per order key at a time: per call and per sink), runs them, and records the result: done, retried after exponential backoff with
//! jitter, or dead-lettered once its attempts are spent or the failure is permanent.

use super::events::{self, WebhookJob};
use super::{Pipeline, SinkError, crm, followup, pipeline, webhook};
use crate::store::{DeliveryLog, Job, JobResult};
use chrono::{TimeDelta, Utc};
use rand::RngExt;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error, info, warn};

/// How long a stopping pool lets jobs in flight finish before abandoning them (they run again
/// at next start).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The retry delay after `attempts` failed attempts: `base × 2^(attempts−1)`, capped at `max`,
/// then scaled by a random factor in 0.5..1 (jitter).
pub fn backoff(base: Duration, max: Duration, attempts: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20)).min(max);
    exp.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// A running pool of outbox workers.
pub struct OutboxPool {
    stop: watch::Sender<bool>,
    join: JoinHandle<()>,
    pipeline: Arc<Pipeline>,
}

impl OutboxPool {
    /// Resets jobs left running by a crash, then starts claiming and running jobs.
    pub fn spawn(pipeline: Arc<Pipeline>) -> OutboxPool {
        let (stop, rx) = watch::channel(false);
        let join = tokio::spawn(run(Arc::clone(&pipeline), rx));
        OutboxPool { stop, join, pipeline }
    }

    /// Waits until no job is pending or running (dead jobs do not count), or until `stop` resolves.
    pub async fn drain(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            match self.pipeline.store.unfinished_jobs().await {
                Ok(0) => return,
                Ok(n) => debug!(unfinished = n, "Waiting for the outbox to drain."),
                Err(e) => warn!(error = %e, "Cannot count outbox jobs."),
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Like [`OutboxPool::drain`], but waits at most `timeout`: true when the outbox drained (or
    /// `stop` resolved) in time, false when it gave up. Jobs left are not touched: they stay in
    /// the outbox and run at the next start.
    pub async fn drain_within(&self, timeout: Duration, stop: impl std::future::Future<Output = ()>) -> bool {
        tokio::time::timeout(timeout, self.drain(stop)).await.is_ok()
    }

    /// Stops claiming, lets jobs in flight finish for up to 5 s, then returns.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.join.await {
            error!(error = %e, "Outbox worker pool panicked.");
        }
    }
}

async fn run(p: Arc<Pipeline>, mut stop: watch::Receiver<bool>) {
    match p.store.recover_jobs(Utc::now()).await {
        Ok(0) => {}
        Ok(n) => info!(jobs = n, "Outbox jobs left running by an earlier run will run again."),
        Err(e) => error!(error = %e, "Cannot reset outbox jobs left running."),
    }
    let concurrency = p.outbox.concurrency.max(1) as usize;
    // A sink whose requests hang (a receiver that accepts and never answers) holds at most half
    // the workers, so the other sinks always have the rest.
    let per_sink = concurrency.div_ceil(2) as u32;
    let mut set: JoinSet<()> = JoinSet::new();
    let warned = Warned::default();
    loop {
        if *stop.borrow() {
            break;
        }
        let free = concurrency.saturating_sub(set.len()) as u32;
        let mut claimed = 0;
        if free > 0 {
            match p.store.claim_jobs_per_sink(Utc::now(), free, per_sink).await {
                Ok(jobs) => {
                    claimed = jobs.len();
                    for job in jobs {
                        set.spawn(run_one(Arc::clone(&p), job, Arc::clone(&warned)));
                    }
                }
                Err(e) => error!(error = %e, "Cannot claim outbox jobs."),
            }
        }
        if claimed > 0 && set.len() < concurrency {
            continue;
        }
        tokio::select! {
            Some(_) = set.join_next(), if !set.is_empty() => {}
            _ = tokio::time::sleep(p.outbox.poll_interval) => {}
            _ = stop.changed() => {}
        }
    }
    let in_flight = set.len();
    if tokio::time::timeout(STOP_GRACE, async { while set.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!(
            in_flight,
            "Outbox jobs still running at stop; they run again at next start."
        );
        set.abort_all();
    }
    info!("Outbox workers stopped.");
}

/// Messages of [`SinkError::Unconfigured`] already logged at warn level by this pool.
type Warned = Arc<Mutex<HashSet<String>>>;

async fn run_one(p: Arc<Pipeline>, job: Job, warned: Warned) {
    let started = Instant::now();
    let started_at = Utc::now();
    let result = execute(&p, &job).await;
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_millis() as i64;
    if job.kind != "analyze" {
        let log = DeliveryLog {
            job_id: job.id,
            attempt: job.attempts,
            started_at,
            latency_ms,
            status: result.as_ref().ok().copied().flatten(),
            error: result.as_ref().err().map(ToString::to_string),
        };
        if let Err(e) = p.store.log_delivery(&log).await {
            warn!(job = job.id, error = %e, "Cannot write the delivery log.");
        }
    }
    let now = Utc::now();
    let mut follow_on = Vec::new();
    let outcome = match &result {
        Ok(_) if job.kind == "analyze" => return, // stored with its analysis
        Ok(_) => JobResult::Done,
        Err(SinkError::Throttled { message, wait }) => {
            // Waiting as told: a little jitter so the account's jobs do not all return at once.
            let delay = *wait + Duration::from_millis(rand::rng().random_range(0..250));
            debug!(job = job.id, kind = %job.kind, error = %message, delay_ms = delay.as_millis() as u64, "Sink asked for a pause; job deferred.");
            JobResult::Defer {
                error: message.clone(),
                at: now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX),
            }
        }
        Err(SinkError::Retryable(e)) if job.attempts < job.max_attempts => {
            let delay = backoff(p.outbox.backoff_base, p.outbox.backoff_max, job.attempts);
            debug!(job = job.id, kind = %job.kind, attempt = job.attempts, error = %e, delay_ms = delay.as_millis() as u64, "Job failed; retrying.");
            JobResult::Retry {
                error: e.clone(),
                at: now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX),
            }
        }
        Err(e) => {
            let first = match e {
                // Missing settings fail every such job alike: say so once, not once per job.
                SinkError::Unconfigured(m) => warned.lock().map(|mut w| w.insert(m.clone())).unwrap_or(true),
                _ => true,
            };
            if first {
                warn!(job = job.id, kind = %job.kind, event = job.event.as_deref(), campaign = %job.campaign_id,
                    attempts = job.attempts, error = %e, "Job dead-lettered; `dialerd outbox retry` replays it.");
            } else {
                debug!(job = job.id, kind = %job.kind, event = job.event.as_deref(), campaign = %job.campaign_id,
                    error = %e, "Job dead-lettered (missing setting, already reported).");
            }
            // A dead CRM sync or follow-up is reported as `error_occurred`, in the same transaction.
            follow_on.extend(events::dead_letter(&job, &e.to_string(), now));
            JobResult::Dead { error: e.to_string() }
        }
    };
    let result = match &outcome {
        JobResult::Done => "done",
        JobResult::Retry { .. } => "retry",
        JobResult::Defer { .. } => "deferred",
        JobResult::Dead { .. } => "dead",
    };
    if job.kind != "analyze" {
        crate::telemetry::delivery(&job.kind, result, elapsed.as_secs_f64());
    }
    if let Err(e) = p.store.finish_job(job.id, &outcome, &follow_on, now).await {
        error!(job = job.id, error = %e, "Cannot record the job result; it runs again at next start.");
    }
}

/// Runs one job; `Ok(Some(status))` for an HTTP delivery.
async fn execute(p: &Pipeline, job: &Job) -> Result<Option<u16>, SinkError> {
    let id = job.idempotency_key.as_str();
    match job.kind.as_str() {
        "analyze" => pipeline::run_job(p, job.id, &job.payload).await.map(|()| None),
        "webhook" => {
            let w: WebhookJob = serde_json::from_str(&job.payload)
                .map_err(|e| SinkError::Permanent(format!("webhook payload: {e}")))?;
            let secret = p.webhook_secret.as_ref().ok_or_else(|| {
                SinkError::Unconfigured("no webhook secret configured (DIALERD__WEBHOOK_SECRET)".into())
            })?;
            let event = job.event.as_deref().unwrap_or("unknown");
            let status = webhook::post_signed(
                &p.http,
                &w.url,
                secret.expose().as_bytes(),
                event,
                id,
                &w.body,
                Duration::from_millis(w.timeout_ms),
            )
            .await?;
            Ok(Some(status))
        }
        "crm" => crm::run_job(p, id, &job.payload).await.map(|()| None),
        "follow_up" => followup::run_job(p, id, &job.payload).await.map(|()| None),
        other => Err(SinkError::Permanent(format!("unknown job kind `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let (b, m) = (Duration::from_millis(100), Duration::from_secs(2));
        for _ in 0..100 {
            let d1 = backoff(b, m, 1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= b, "{d1:?}");
            let d3 = backoff(b, m, 3);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            assert!(backoff(b, m, 30) <= m);
        }
    }
}
