//! `run --until-idle` with a webhook receiver that is not running: the daemon waits at most
//! `[outbox] drain_timeout` for the outbox, exits 0, says how many jobs it keeps, and keeps them
//! pending in the database. Started again once the receiver is up, it delivers every one.

mod analysis_common;
mod common;

use analysis_common::{Receiver, unused_loopback_addr};
use dialerd::store::Store;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const SECRET: &str = "drain-secret";
const DRAIN: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_receiver_bounds_the_exit_and_keeps_the_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = unused_loopback_addr();
    let extra = format!(
        r#"
[trunk.sim]
seed = 9
time_scale = 0.01
p_human = 1.0
p_machine = 0.0
p_no_answer = 0.0
p_busy = 0.0
p_failed = 0.0
callback_rate = 0.0
talk_mean = "30s"

[webhooks]
url = "http://{addr}/hooks"
webhook_retry_count = 5
"#
    );
    let dir = common::campaign_dir(tmp.path(), "drain", 4, &extra);
    let db = tmp.path().join("d.db");

    // 1. Nothing listens: every delivery fails to connect and waits out a backoff (1 s, 2 s, ...).
    let drain = format!("{}s", DRAIN.as_secs());
    let env = [
        ("DIALERD__WEBHOOK_SECRET", SECRET),
        ("DIALERD__OUTBOX__DRAIN_TIMEOUT", drain.as_str()),
    ];
    let mut d = common::Daemon::start_env(&dir, &db, true, &[], &env);
    let (elapsed, status, log) = tokio::task::spawn_blocking(move || {
        d.wait_for("Delivering what is left in the outbox", 1, Duration::from_secs(120));
        let t0 = Instant::now();
        let status = d.wait_exit(Duration::from_secs(60));
        (t0.elapsed(), status, d.seen.join("\n"))
    })
    .await
    .unwrap();
    assert!(status.success(), "{log}");
    // It waited for the bound (the first jobs cannot die before 1+2+4+8+16 s × jitter ≥ 15 s)...
    assert!(
        elapsed >= DRAIN - Duration::from_millis(300),
        "exited after {elapsed:?}:\n{log}"
    );
    // ...and no longer than the bound plus the workers' 5 s stop grace.
    assert!(
        elapsed <= DRAIN + Duration::from_secs(6),
        "exited after {elapsed:?}:\n{log}"
    );
    assert!(log.contains("The outbox did not drain in time"), "{log}");
    let kept = log
        .lines()
        .find(|l| l.contains("kept in the database and delivered at the next start"))
        .unwrap_or_else(|| panic!("no line says what is kept:\n{log}"));

    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    let jobs = store.all_jobs().await.unwrap();
    let webhooks: Vec<_> = jobs.iter().filter(|j| j.kind == "webhook").collect();
    // 4 calls: call_started, one event per transcript line, call_ended, call_analyzed, ...
    assert!(webhooks.len() >= 4 * 3, "{} webhook jobs", webhooks.len());
    assert!(webhooks.iter().all(|j| j.state == "pending"), "{webhooks:?}");
    assert!(webhooks.iter().any(|j| j.attempts >= 1 && j.last_error.is_some()));
    let counts = store.job_counts().await.unwrap();
    let pending = counts.get("pending").copied().unwrap_or(0);
    assert!(kept.contains(&format!("pending={pending}")), "{kept}");
    assert_eq!(counts.get("dead"), None, "{counts:?}");
    drop(store);

    // 2. The receiver comes up on that address; the next start delivers everything it kept.
    let rx = Receiver::start_on(SECRET, &addr).await;
    let env = [
        ("DIALERD__WEBHOOK_SECRET", SECRET),
        ("DIALERD__OUTBOX__DRAIN_TIMEOUT", "120s"),
    ];
    let mut d = common::Daemon::start_env(&dir, &db, true, &[], &env);
    let (status, log) = tokio::task::spawn_blocking(move || {
        let s = d.wait_exit(Duration::from_secs(180));
        (s, d.seen.join("\n"))
    })
    .await
    .unwrap();
    assert!(status.success(), "{log}");
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    let counts = store.job_counts().await.unwrap();
    assert_eq!(counts.get("pending"), None, "{counts:?}");
    assert_eq!(counts.get("running"), None, "{counts:?}");
    assert_eq!(counts.get("dead"), None, "{counts:?}");
    let got: BTreeSet<String> = rx.accepted().into_iter().map(|r| r.id).collect();
    for j in &webhooks {
        assert!(
            got.contains(&j.idempotency_key),
            "job {} ({:?}) never arrived",
            j.id,
            j.event
        );
    }
    assert_eq!(rx.shared.bad_signatures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_jobs_are_dead_lettered_at_once_with_one_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[trunk.sim]
seed = 4
time_scale = 0.01
p_human = 1.0
p_machine = 0.0
p_no_answer = 0.0
p_busy = 0.0
p_failed = 0.0
callback_rate = 0.0
talk_mean = "30s"

[webhooks]
url = "http://{}/hooks"
"#,
        unused_loopback_addr()
    );
    let dir = common::campaign_dir(tmp.path(), "nosecret", 4, &extra);
    let db = tmp.path().join("d.db");
    // A drain bound far above what the run needs: nothing may wait on it.
    let mut d = common::Daemon::start_env(&dir, &db, true, &[], &[("DIALERD__OUTBOX__DRAIN_TIMEOUT", "60s")]);
    let (elapsed, status, log) = tokio::task::spawn_blocking(move || {
        d.wait_for("Delivering what is left in the outbox", 1, Duration::from_secs(120));
        let t0 = Instant::now();
        let status = d.wait_exit(Duration::from_secs(60));
        (t0.elapsed(), status, d.seen.join("\n"))
    })
    .await
    .unwrap();
    assert!(status.success(), "{log}");
    assert!(elapsed < Duration::from_secs(10), "drained in {elapsed:?}:\n{log}");
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    let webhooks: Vec<_> = store
        .all_jobs()
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == "webhook")
        .collect();
    assert!(webhooks.len() >= 4 * 3, "{} webhook jobs", webhooks.len());
    for j in &webhooks {
        assert_eq!(j.state, "dead");
        assert_eq!(j.attempts, 1);
        assert!(
            j.last_error
                .as_deref()
                .is_some_and(|e| e.contains("DIALERD__WEBHOOK_SECRET"))
        );
    }
    let warnings = log.lines().filter(|l| l.contains("Job dead-lettered;")).count();
    assert_eq!(
        warnings, 1,
        "one warning for the missing secret, not one per job:\n{log}"
    );
    assert!(
        log.contains(&format!("dead={}", webhooks.len())),
        "the exit line counts the dead jobs:\n{log}"
    );
}
