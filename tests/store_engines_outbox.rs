//! The outbox through `Store`, on SQLite and (when `DIALERD_TEST_DATABASE_URL` is set) on
//! PostgreSQL: every job method, values read back, the delivery log, per-key order, per-sink
//! limits, and two handles claiming at once. Call records and gauges are in
//! `store_engines_calls.rs`.

mod common;
mod store_outbox_common;

use chrono::Utc;
use dialerd::store::{DeliveryLog, Job, JobResult, NewJob, Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use store_outbox_common::{at, keys, new_job, t0};

/// The delivery log of `job` as (attempt, latency, status, error), read with the engine's driver.
async fn deliveries(url: &str, job: i64) -> Vec<(i64, i64, Option<i64>, Option<String>)> {
    if dialerd::store::is_postgres_url(url) {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_as(
            "SELECT attempt, latency_ms, status, error FROM outbox_deliveries WHERE job_id = $1 ORDER BY id",
        )
        .bind(job)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_as(
            "SELECT attempt, latency_ms, status, error FROM outbox_deliveries WHERE job_id = ? ORDER BY id",
        )
        .bind(job)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    }
}

#[tokio::test]
async fn outbox_lifecycle_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    for (label, url) in common::engine_urls(dir.path(), "outbox_lifecycle") {
        let store = Store::open(&url).await.unwrap();
        let now = t0();
        assert_eq!(store.enqueue_jobs(&[], now).await.unwrap(), 0, "{label}");
        let mut first = vec![
            new_job("w1", "call:a", "webhook", at(-1000)),
            new_job("w2", "call:a", "webhook", at(-1000)),
            new_job("w3", "call:a", "webhook", at(-1000)),
            new_job("an", "analyze:a", "analyze", now),
            new_job("crm", "crm:b", "crm", at(60_000)),
        ];
        first[4].max_attempts = 0;
        assert_eq!(store.enqueue_jobs(&first, now).await.unwrap(), 5, "{label}");
        // Known keys are skipped, in a batch and within one.
        let again = vec![
            new_job("w1", "call:z", "webhook", now),
            new_job("new", "kg:x", "webhook", now),
        ];
        assert_eq!(store.enqueue_jobs(&again, now).await.unwrap(), 1, "{label}");
        let dup = vec![
            new_job("d", "kg:y", "webhook", now),
            new_job("d", "kg:y", "webhook", now),
        ];
        assert_eq!(store.enqueue_jobs(&dup, now).await.unwrap(), 1, "{label}");

        let all = store.all_jobs().await.unwrap();
        assert_eq!(keys(&all), ["w1", "w2", "w3", "an", "crm", "new", "d"], "{label}");
        assert!(all.windows(2).all(|w| w[0].id < w[1].id), "{label}: oldest first");
        let w1 = &all[0];
        assert_eq!(
            (
                w1.campaign_id.as_str(),
                w1.order_key.as_str(),
                w1.kind.as_str(),
                w1.event.as_deref()
            ),
            ("c", "call:a", "webhook", Some("call.ended")),
            "{label}"
        );
        assert_eq!(w1.payload, "{\"k\":\"w1\"}", "{label}");
        assert_eq!(
            (w1.state.as_str(), w1.attempts, w1.max_attempts),
            ("pending", 0, 3),
            "{label}"
        );
        assert_eq!(
            (w1.next_run_at, w1.created_at, w1.updated_at),
            (at(-1000), now, now),
            "{label}"
        );
        assert_eq!(w1.last_error, None, "{label}");
        assert_eq!(all[3].event, None, "{label}");
        assert_eq!(all[4].max_attempts, 1, "{label}: at least one attempt");
        let id = |k: &str| all.iter().find(|j| j.idempotency_key == k).unwrap().id;

        // One job per order key, due ones only, in id order.
        assert!(store.claim_jobs(now, 0).await.unwrap().is_empty(), "{label}");
        let claimed = store.claim_jobs(now, 10).await.unwrap();
        assert_eq!(keys(&claimed), ["w1", "an", "new", "d"], "{label}");
        assert!(
            claimed
                .iter()
                .all(|j| j.state == "running" && j.attempts == 1 && j.updated_at == now)
        );
        assert!(
            store.claim_jobs(now, 10).await.unwrap().is_empty(),
            "{label}: w2 waits for w1"
        );
        assert_eq!(store.unfinished_jobs().await.unwrap(), 7, "{label}");

        // The delivery log.
        let log = DeliveryLog {
            job_id: id("w1"),
            attempt: 1,
            started_at: now,
            latency_ms: 42,
            status: Some(503),
            error: Some("HTTP 503".into()),
        };
        store.log_delivery(&log).await.unwrap();
        let log2 = DeliveryLog {
            attempt: 2,
            status: None,
            error: None,
            latency_ms: 7,
            ..log.clone()
        };
        store.log_delivery(&log2).await.unwrap();
        assert_eq!(
            deliveries(&url, id("w1")).await,
            [(1, 42, Some(503), Some("HTTP 503".to_string())), (2, 7, None, None)],
            "{label}"
        );

        // Retry: pending again, later, with its error; the key stays blocked until then.
        let retry = JobResult::Retry {
            error: "HTTP 503".into(),
            at: at(10_000),
        };
        store.finish_job(id("w1"), &retry, &[], at(100)).await.unwrap();
        assert!(store.claim_jobs(at(9_999), 10).await.unwrap().is_empty(), "{label}");
        let again = store.claim_jobs(at(10_000), 10).await.unwrap();
        assert_eq!(keys(&again), ["w1"], "{label}");
        assert_eq!(
            (again[0].attempts, again[0].last_error.as_deref()),
            (2, Some("HTTP 503")),
            "{label}"
        );
        assert_eq!(again[0].next_run_at, at(10_000), "{label}");

        // Defer: the attempt is given back, never below 0.
        let defer = JobResult::Defer {
            error: "HTTP 429".into(),
            at: at(20_000),
        };
        store.finish_job(id("w1"), &defer, &[], at(10_500)).await.unwrap();
        let w1 = &store.all_jobs().await.unwrap()[0];
        assert_eq!((w1.state.as_str(), w1.attempts), ("pending", 1), "{label}");
        assert_eq!((w1.next_run_at, w1.updated_at), (at(20_000), at(10_500)), "{label}");
        assert_eq!(w1.last_error.as_deref(), Some("HTTP 429"), "{label}");
        store.finish_job(id("new"), &defer, &[], at(10_500)).await.unwrap();
        let new = store
            .all_jobs()
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.idempotency_key == "new")
            .unwrap();
        assert_eq!(new.attempts, 0, "{label}");

        // Done, with follow-on jobs in the same transaction; the error is kept.
        let again = store.claim_jobs(at(20_000), 10).await.unwrap();
        assert_eq!(keys(&again), ["w1", "new"], "{label}");
        let follow = [new_job("f1", "call:a", "webhook", at(20_000))];
        store
            .finish_job(id("w1"), &JobResult::Done, &follow, at(21_500))
            .await
            .unwrap();
        let jobs = store.all_jobs().await.unwrap();
        let w1 = &jobs[0];
        assert_eq!(
            (w1.state.as_str(), w1.updated_at, w1.next_run_at),
            ("done", at(21_500), at(21_500))
        );
        assert_eq!(w1.last_error.as_deref(), Some("HTTP 429"), "{label}");
        assert_eq!(jobs.last().unwrap().idempotency_key, "f1", "{label}");
        assert_eq!(jobs.last().unwrap().created_at, at(21_500), "{label}");

        // Dead: kept with its error, and no longer blocks its key.
        let next = store.claim_jobs(at(21_500), 10).await.unwrap();
        assert_eq!(keys(&next), ["w2"], "{label}");
        let dead = JobResult::Dead {
            error: "HTTP 410".into(),
        };
        store.finish_job(id("w2"), &dead, &[], at(22_000)).await.unwrap();
        let next = store.claim_jobs(at(22_000), 10).await.unwrap();
        assert_eq!(keys(&next), ["w3"], "{label}");
        store
            .finish_job(id("w3"), &JobResult::Done, &[], at(23_000))
            .await
            .unwrap();
        store.finish_job(id("new"), &dead, &[], at(23_000)).await.unwrap();

        // Counts and lists.
        let counts = store.job_counts().await.unwrap();
        let want: BTreeMap<String, u64> = [("dead", 2), ("done", 2), ("pending", 2), ("running", 2)]
            .map(|(s, n)| (s.to_string(), n))
            .into();
        assert_eq!(counts, want, "{label}");
        assert_eq!(store.unfinished_jobs().await.unwrap(), 4, "{label}");
        let dead_jobs = store.list_jobs(Some("dead"), 10).await.unwrap();
        assert_eq!(keys(&dead_jobs), ["new", "w2"], "{label}: newest first");
        assert_eq!(dead_jobs[1].last_error.as_deref(), Some("HTTP 410"), "{label}");
        assert_eq!(keys(&store.list_jobs(None, 2).await.unwrap()), ["f1", "d"], "{label}");
        assert_eq!(store.list_jobs(None, 100).await.unwrap().len(), 8, "{label}");
        assert!(
            store.list_jobs(Some("nothing"), 10).await.unwrap().is_empty(),
            "{label}"
        );

        // Latencies of done webhook jobs, creation to acknowledgement.
        assert_eq!(
            store.delivery_latencies_ms().await.unwrap(),
            [21_500, 23_000],
            "{label}"
        );

        // Recovery: running jobs are pending and due at `now`.
        assert_eq!(store.recover_jobs(at(30_000)).await.unwrap(), 2, "{label}");
        let recovered: Vec<Job> = store
            .all_jobs()
            .await
            .unwrap()
            .into_iter()
            .filter(|j| ["an", "d"].contains(&j.idempotency_key.as_str()))
            .collect();
        assert!(
            recovered
                .iter()
                .all(|j| j.state == "pending" && j.next_run_at == at(30_000) && j.attempts == 1)
        );
        assert_eq!(store.recover_jobs(at(30_000)).await.unwrap(), 0, "{label}");

        // Replays: by id (a live job is not replayed), then all.
        assert_eq!(
            store
                .retry_dead_jobs(&[id("w2"), id("w3"), id("w2")], at(31_000))
                .await
                .unwrap(),
            1
        );
        let w2 = store
            .all_jobs()
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.id == id("w2"))
            .unwrap();
        assert_eq!(
            (w2.state.as_str(), w2.attempts, w2.next_run_at),
            ("pending", 0, at(31_000)),
            "{label}"
        );
        assert_eq!(store.retry_dead_jobs(&[], at(31_000)).await.unwrap(), 1, "{label}");
        assert_eq!(store.retry_dead_jobs(&[], at(31_000)).await.unwrap(), 0, "{label}");

        // Purge: only done or dead, only before the instant, with the delivery log.
        assert!(matches!(
            store.purge_jobs("pending", at(99_000)).await,
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(store.purge_jobs("done", at(21_500)).await.unwrap(), 0, "{label}");
        assert_eq!(store.purge_jobs("done", at(21_501)).await.unwrap(), 1, "{label}");
        assert!(deliveries(&url, id("w1")).await.is_empty(), "{label}");
        assert_eq!(store.purge_jobs("done", at(99_000)).await.unwrap(), 1, "{label}");
        assert_eq!(store.purge_jobs("dead", at(99_000)).await.unwrap(), 0, "{label}");
        assert_eq!(store.all_jobs().await.unwrap().len(), 6, "{label}");
        eprintln!("{label}: outbox lifecycle ok");
    }
}

#[tokio::test]
async fn claims_respect_sinks_limits_and_order() {
    let dir = tempfile::tempdir().unwrap();
    for (label, url) in common::engine_urls(dir.path(), "outbox_sinks") {
        let store = Store::open(&url).await.unwrap();
        let now = t0();
        store
            .enqueue_jobs(&[new_job("busy", "call:9", "webhook", now)], now)
            .await
            .unwrap();
        assert_eq!(keys(&store.claim_jobs(now, 1).await.unwrap()), ["busy"], "{label}");
        let jobs = [
            "call:1", "call:2", "call:3", "crm:1", "crm:2", "crm:3", "plain-a", "plain-b", "fu:1:x",
        ]
        .map(|k| new_job(k, k, "webhook", now));
        store.enqueue_jobs(&jobs, now).await.unwrap();
        assert!(
            store.claim_jobs_per_sink(now, 10, 0).await.unwrap().is_empty(),
            "{label}"
        );
        // `call:` has one running already: one more; `crm:` two; keys without `:` share one sink.
        let claimed = store.claim_jobs_per_sink(now, 10, 2).await.unwrap();
        assert_eq!(
            keys(&claimed),
            ["call:1", "crm:1", "crm:2", "plain-a", "plain-b", "fu:1:x"],
            "{label}"
        );
        // The limit takes the lowest ids first.
        for j in &claimed {
            store.finish_job(j.id, &JobResult::Done, &[], now).await.unwrap();
        }
        let two = store.claim_jobs_per_sink(now, 2, 5).await.unwrap();
        assert_eq!(keys(&two), ["call:2", "call:3"], "{label}");
        assert_eq!(
            keys(&store.claim_jobs_per_sink(now, 5, 5).await.unwrap()),
            ["crm:3"],
            "{label}"
        );
        eprintln!("{label}: sinks ok");
    }
}

/// Two handles (two nodes) claim and finish concurrently; finishing a first-generation job
/// inserts a follow-on of the same order key. No job may be claimed twice, and no job may be
/// claimed before every earlier job of its key was finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claim_concurrently() {
    const KEYS: usize = 12;
    const PER_KEY: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    for (label, url) in common::engine_urls(dir.path(), "outbox_race") {
        let a = Store::open(&url).await.unwrap();
        let b = Store::open(&url).await.unwrap();
        let sinks = ["call", "analyze", "crm", "fu"];
        let mut jobs = Vec::new();
        for n in 0..PER_KEY {
            for k in 0..KEYS {
                let key = format!("{}:k{k}", sinks[k % sinks.len()]);
                let mut j = new_job(&format!("k{k}-{n}"), &key, "webhook", at(-1));
                j.payload = "0".into();
                jobs.push(j);
            }
        }
        assert_eq!(a.enqueue_jobs(&jobs, t0()).await.unwrap(), (KEYS * PER_KEY) as u64);

        let seq = AtomicU64::new(0);
        let claimed: Mutex<HashMap<i64, u64>> = Mutex::default();
        let finishing: Mutex<HashMap<i64, u64>> = Mutex::default();
        let twice: Mutex<Vec<i64>> = Mutex::default();
        let worker = |store: Store| {
            let (seq, claimed, finishing, twice) = (&seq, &claimed, &finishing, &twice);
            async move {
                let mut mine = 0;
                loop {
                    let got = store.claim_jobs(Utc::now(), 5).await.unwrap();
                    let s = seq.fetch_add(1, Ordering::SeqCst);
                    if got.is_empty() {
                        if store.unfinished_jobs().await.unwrap() == 0 {
                            return mine;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    for j in &got {
                        if claimed.lock().unwrap().insert(j.id, s).is_some() {
                            twice.lock().unwrap().push(j.id);
                        }
                    }
                    mine += got.len();
                    for j in got {
                        tokio::task::yield_now().await;
                        let follow: Vec<NewJob> = (j.payload == "0")
                            .then(|| {
                                let mut f =
                                    new_job(&format!("{}-f", j.idempotency_key), &j.order_key, "webhook", at(-1));
                                f.payload = "1".into();
                                f
                            })
                            .into_iter()
                            .collect();
                        finishing
                            .lock()
                            .unwrap()
                            .insert(j.id, seq.fetch_add(1, Ordering::SeqCst));
                        store
                            .finish_job(j.id, &JobResult::Done, &follow, Utc::now())
                            .await
                            .unwrap();
                    }
                }
            }
        };
        let run = async { tokio::join!(worker(a.clone()), worker(b.clone())) };
        let (na, nb) = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .expect("workers finish");
        let all = a.all_jobs().await.unwrap();
        let total = KEYS * PER_KEY * 2;
        assert_eq!(all.len(), total, "{label}");
        assert_eq!(na + nb, total, "{label}: every job claimed once ({na} + {nb})");
        assert!(
            twice.lock().unwrap().is_empty(),
            "{label}: claimed twice: {:?}",
            twice.lock().unwrap()
        );
        assert!(all.iter().all(|j| j.state == "done" && j.attempts == 1), "{label}");
        let claimed = claimed.lock().unwrap();
        let finishing = finishing.lock().unwrap();
        let mut by_key: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for j in &all {
            by_key.entry(j.order_key.as_str()).or_default().push(j.id);
        }
        for (key, ids) in by_key {
            assert_eq!(ids.len(), PER_KEY * 2, "{label}: {key}");
            for w in ids.windows(2) {
                assert!(
                    finishing[&w[0]] < claimed[&w[1]],
                    "{label}: job {} of {key} was claimed before job {} finished",
                    w[1],
                    w[0]
                );
            }
        }
        eprintln!("{label}: two nodes claimed {na} + {nb} jobs, each once, in order");
    }
}
