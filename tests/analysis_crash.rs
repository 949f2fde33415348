//! The daemon is killed (SIGKILL) while more than 1,000 webhook deliveries are pending against
//! a slow receiver, then restarted with `--until-idle`. Every event arrives at least once with a
//! valid signature, duplicates share their `X-Webhook-Id` (and body), and per-call order holds.

mod analysis_common;
mod common;

use analysis_common::{Receiver, assert_in_order};
use dialerd::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const SECRET: &str = "crash-secret";

/// A daemon process that is killed when dropped, so a failing assertion never leaves it running.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, db: &std::path::Path, until_idle: bool) -> Running {
    let mut cmd = common::bin();
    cmd.args(["run", "--campaigns"]).arg(dir).arg("--database").arg(db);
    if until_idle {
        cmd.arg("--until-idle");
    }
    cmd.env("RUST_LOG", "error")
        .env("DIALERD__POLL_INTERVAL", "200ms")
        .env("DIALERD__SHUTDOWN_GRACE", "5s")
        .env("DIALERD__WEBHOOK_SECRET", SECRET)
        .env("DIALERD__OUTBOX__CONCURRENCY", "4")
        .env("DIALERD__OUTBOX__POLL_INTERVAL", "20ms")
        .env("DIALERD__OUTBOX__BACKOFF_BASE", "100ms")
        .env("DIALERD__OUTBOX__BACKOFF_MAX", "1s")
        // The restart must deliver the whole backlog before exiting, however slow this machine is.
        .env("DIALERD__OUTBOX__DRAIN_TIMEOUT", "280s")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Running)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_with_1000_pending_then_restart_delivers_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(SECRET).await;
    // A slow receiver (4 workers × 200 ms = 20 deliveries/s) lets the backlog pass 1,000 however
    // fast this machine places the calls.
    rx.shared.delay_ms.store(200, Ordering::SeqCst);
    let extra = format!(
        r#"
[trunk.sim]
seed = 5
time_scale = 0.005
p_human = 1.0
p_machine = 0.0
p_no_answer = 0.0
p_busy = 0.0
p_failed = 0.0
callback_rate = 0.0
talk_mean = "60s"

[webhooks]
url = "{}"
webhook_retry_count = 8
"#,
        rx.url
    );
    let dir = common::campaign_dir(tmp.path(), "crash", 150, &extra);
    // More agent slots so the calls finish long before their events are delivered.
    let toml = std::fs::read_to_string(dir.join("crash.toml")).unwrap();
    std::fs::write(
        dir.join("crash.toml"),
        toml.replace("max_concurrent = 10", "max_concurrent = 50"),
    )
    .unwrap();
    let db = tmp.path().join("d.db");

    let mut child = start(&dir, &db, false);
    let store = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if db.exists()
                && let Ok(s) = Store::open(db.to_str().unwrap()).await
            {
                break s;
            }
            assert!(Instant::now() < deadline, "database never appeared");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // Wait until deliveries are flowing and at least 1,000 are still pending.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending = store.unfinished_jobs().await.unwrap_or(0);
        // A margin over 1,000: deliveries keep completing between this read and the SIGKILL.
        if pending >= 1_100 && rx.accepted().len() >= 50 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never had 1,000 pending (pending {pending}, received {})",
            rx.accepted().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    let pending_at_kill = store.unfinished_jobs().await.unwrap();
    let received_at_kill = rx.accepted().len();
    assert!(pending_at_kill >= 1_000, "{pending_at_kill}");

    rx.shared.delay_ms.store(1, Ordering::SeqCst);
    let mut child = start(&dir, &db, true);
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            panic!("restarted daemon did not finish in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success());

    let jobs = store.all_jobs().await.unwrap();
    let counts = store.job_counts().await.unwrap();
    assert_eq!(counts.get("pending"), None, "{counts:?}");
    assert_eq!(counts.get("running"), None, "{counts:?}");
    assert_eq!(counts.get("dead"), None, "{counts:?}");
    let received = rx.accepted();
    assert!(received.len() > received_at_kill);
    assert_eq!(
        rx.shared.bad_signatures.load(Ordering::SeqCst),
        0,
        "a signature did not verify"
    );
    // At least once: every webhook job in the store reached the receiver.
    let got: BTreeSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    let webhook_jobs: Vec<_> = jobs.iter().filter(|j| j.kind == "webhook").collect();
    assert!(webhook_jobs.len() >= 1_000);
    for j in &webhook_jobs {
        assert!(
            got.contains(j.idempotency_key.as_str()),
            "job {} ({:?}) never arrived",
            j.id,
            j.event
        );
    }
    // Duplicates share their id and their bytes.
    let mut bodies: BTreeMap<&str, &str> = BTreeMap::new();
    for r in &received {
        let b = bodies.entry(r.id.as_str()).or_insert(r.body.as_str());
        assert_eq!(*b, r.body.as_str(), "two deliveries of {} differ", r.id);
        assert_eq!(r.json["request_id"], r.id.as_str());
    }
    let duplicates = received.len() - got.len();
    eprintln!(
        "pending at kill: {pending_at_kill}; received before kill: {received_at_kill}; total deliveries {}; distinct {}; duplicates {duplicates}",
        received.len(),
        got.len()
    );
    let triples: Vec<_> = jobs
        .iter()
        .map(|j| (j.id, j.order_key.clone(), j.idempotency_key.clone()))
        .collect();
    assert_in_order(&triples, &received);
    // Every analysed call ended with call_ended then call_analyzed.
    let analysed = received
        .iter()
        .filter(|r| r.event == "call_analyzed")
        .map(|r| &r.id)
        .collect::<BTreeSet<_>>();
    assert!(analysed.len() >= 150, "{} calls analysed", analysed.len());
}
