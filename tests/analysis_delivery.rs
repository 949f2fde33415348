//! Outbox delivery over real HTTP on loopback, through the library: every request is signed
//! and verified, a receiver that is down for a while gets everything once it recovers, per-call
//! order holds through retries, a 4xx is dead-lettered at once and `retry` replays it.

mod analysis_common;

use analysis_common::{Receiver, assert_in_order};
use chrono::Utc;
use dialerd::analysis::{OutboxPool, Pipeline, events};
use dialerd::campaign::analysis_file::WebhooksFile;
use dialerd::settings::{OutboxSettings, Secret, Settings};
use dialerd::store::{NewJob, Store};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const SECRET: &str = "test-secret-1";

async fn pipeline(dir: &std::path::Path) -> (Store, Arc<Pipeline>) {
    let store = Store::open(dir.join("o.db").to_str().unwrap()).await.unwrap();
    std::fs::write(dir.join("s.toml"), "").unwrap();
    let mut settings = Settings::load(Some(&dir.join("s.toml"))).unwrap();
    settings.webhook_secret = Some(Secret::new(SECRET));
    settings.outbox = OutboxSettings {
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        ..OutboxSettings::default()
    };
    let p = Pipeline::new(store.clone(), &settings).unwrap();
    (store, Arc::new(p))
}

fn hooks(url: &str, retries: u32) -> WebhooksFile {
    WebhooksFile {
        url: Some(url.to_string()),
        webhook_retry_count: retries,
        timeout: Duration::from_secs(5),
        ..WebhooksFile::default()
    }
}

/// `calls` × `per_call` events, each call its own order key.
fn jobs(w: &WebhooksFile, calls: usize, per_call: usize) -> Vec<NewJob> {
    let now = Utc::now();
    let mut out = Vec::new();
    for m in 0..per_call {
        for c in 0..calls {
            let call = format!("c{c}a1");
            let n = m.to_string();
            let data = serde_json::json!({"call_id": call, "seq": m});
            out.push(
                events::webhook(
                    w,
                    "camp",
                    &events::call_order_key(&call),
                    "agent_speech",
                    &[&call, &n],
                    data,
                    now,
                )
                .unwrap(),
            );
        }
    }
    out
}

async fn drain(pool: &OutboxPool) {
    tokio::time::timeout(Duration::from_secs(120), pool.drain(std::future::pending::<()>()))
        .await
        .expect("outbox did not drain in 120 s");
}

fn triples(store_jobs: &[dialerd::store::Job]) -> Vec<(i64, String, String)> {
    store_jobs
        .iter()
        .map(|j| (j.id, j.order_key.clone(), j.idempotency_key.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_up_gets_everything_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(SECRET).await;
    // Down for the first 40 requests (503), then up.
    rx.shared.fail_next.store(40, Ordering::SeqCst);
    let (store, p) = pipeline(tmp.path()).await;
    let w = hooks(&rx.url, 10);
    let n = store.enqueue_jobs(&jobs(&w, 5, 10), Utc::now()).await.unwrap();
    assert_eq!(n, 50);
    // Enqueuing the same events again is a no-op: the idempotency key is stable.
    assert_eq!(store.enqueue_jobs(&jobs(&w, 5, 10), Utc::now()).await.unwrap(), 0);
    let pool = OutboxPool::spawn(Arc::clone(&p));
    drain(&pool).await;
    pool.stop().await;

    let all = store.all_jobs().await.unwrap();
    assert!(all.iter().all(|j| j.state == "done"), "{all:?}");
    assert!(all.iter().any(|j| j.attempts > 1), "the outage caused no retry");
    assert!(all.iter().all(|j| j.attempts <= j.max_attempts));
    assert_eq!(rx.shared.bad_signatures.load(Ordering::SeqCst), 0);
    assert_eq!(rx.all().iter().filter(|r| r.status == 503).count(), 40);
    let ok = rx.accepted();
    let ids: std::collections::BTreeSet<_> = ok.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 50, "every event delivered");
    assert_in_order(&triples(&all), &ok);
    for r in &ok {
        assert_eq!(r.json["event"], "agent_speech");
        assert_eq!(r.json["request_id"], r.id.as_str());
        assert!(r.json["api_version"].is_string() && r.json["created_at"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_error_dead_letters_and_retry_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(SECRET).await;
    rx.shared.fail_status.store(400, Ordering::SeqCst);
    rx.shared.fail_next.store(1, Ordering::SeqCst);
    let (store, p) = pipeline(tmp.path()).await;
    let w = hooks(&rx.url, 3);
    store.enqueue_jobs(&jobs(&w, 1, 1), Utc::now()).await.unwrap();
    let pool = OutboxPool::spawn(Arc::clone(&p));
    drain(&pool).await;
    let dead = store.list_jobs(Some("dead"), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1, "a 400 is not retried");
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 400"));
    assert_eq!(store.retry_dead_jobs(&[], Utc::now()).await.unwrap(), 1);
    drain(&pool).await;
    pool.stop().await;
    let all = store.all_jobs().await.unwrap();
    assert_eq!(all[0].state, "done");
    let ok = rx.accepted();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].id, all[0].idempotency_key);
    // The replay resent the very same bytes.
    assert_eq!(rx.all()[0].body, ok[0].body);
    assert_eq!(
        store
            .purge_jobs("done", Utc::now() + chrono::TimeDelta::seconds(1))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_configured_count() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(SECRET).await;
    rx.shared.fail_next.store(1_000, Ordering::SeqCst);
    let (store, p) = pipeline(tmp.path()).await;
    store
        .enqueue_jobs(&jobs(&hooks(&rx.url, 2), 1, 1), Utc::now())
        .await
        .unwrap();
    let pool = OutboxPool::spawn(Arc::clone(&p));
    drain(&pool).await;
    pool.stop().await;
    let all = store.all_jobs().await.unwrap();
    assert_eq!(all[0].state, "dead");
    assert_eq!(all[0].attempts, 3, "1 attempt + webhook_retry_count = 2 retries");
    assert_eq!(rx.all().len(), 3);
}
