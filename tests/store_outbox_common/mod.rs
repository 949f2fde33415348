//! What the outbox tests share: instants, a job to enqueue, the idempotency keys of a list.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use dialerd::store::{Job, NewJob};

pub fn t0() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_700_000_000_000).single().unwrap()
}

pub fn at(ms: i64) -> DateTime<Utc> {
    t0() + TimeDelta::milliseconds(ms)
}

pub fn new_job(key: &str, order_key: &str, kind: &str, run_at: DateTime<Utc>) -> NewJob {
    NewJob {
        campaign_id: "c".into(),
        order_key: order_key.into(),
        kind: kind.into(),
        event: (kind == "webhook").then(|| "call.ended".to_string()),
        idempotency_key: key.into(),
        payload: format!("{{\"k\":\"{key}\"}}"),
        max_attempts: 3,
        run_at,
    }
}

pub fn keys(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.idempotency_key.as_str()).collect()
}
