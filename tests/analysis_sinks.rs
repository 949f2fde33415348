//! Independent sinks: order is per call and per sink, so a sink that is down delays only its
//! own deliveries.
//!
//! - The example campaign with its webhook receiver down for the whole run: every call is
//!   analysed, every CRM sync and follow-up is delivered while the webhooks wait; started again
//!   once the receiver is up, the daemon delivers every webhook, in per-call order.
//! - A CRM that answers 503 throughout does not delay a single webhook.

mod analysis_common;
mod common;

use analysis_common::{Receiver, assert_in_order, example_campaign, hubspot_stand_in, states, unused_loopback_addr};
use dialerd::store::{Job, Store};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "sinks-secret";
const TOKEN: &str = "pat-na1-sinks";

fn run(dir: &std::path::Path, db: &std::path::Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut d = common::Daemon::start_env(dir, db, true, &[], env);
    let s = d.wait_exit(Duration::from_secs(400));
    (s, d.seen.join("\n"))
}

fn triples(jobs: &[Job]) -> Vec<(i64, String, String)> {
    jobs.iter()
        .map(|j| (j.id, j.order_key.clone(), j.idempotency_key.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_for_the_whole_campaign() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = unused_loopback_addr();
    let hubspot = hubspot_stand_in(TOKEN).await;
    let tasks = Receiver::start(SECRET).await;
    let extra = format!(
        r#"
[crm]
crm_provider = "hubspot"
base_url = "{hubspot}"

[[follow_up.actions]]
type = "sms"
body = "Hi {{{{first_name}}}}, thanks for your time today."

[[follow_up.actions]]
type = "task"
url = "{tasks}/task"
body = "Call {{{{caller_number}}}} back"
"#,
        hubspot = hubspot.uri(),
        tasks = tasks.url,
    );
    // 21 attempts at most 10 s apart: no webhook can die during the outage.
    let retries = [("webhook_retry_count       = 10", "webhook_retry_count       = 20")];
    let dir = example_campaign(tmp.path(), &addr, &retries, &extra);
    let db = tmp.path().join("example.db");
    let env = [
        ("DIALERD__WEBHOOK_SECRET", SECRET),
        ("DIALERD__HUBSPOT_TOKEN", TOKEN),
        ("DIALERD__OUTBOX__BACKOFF_MAX", "10s"),
        ("DIALERD__OUTBOX__DRAIN_TIMEOUT", "20s"),
    ];

    // 1. Nothing listens on the webhook address for the whole campaign.
    let (d, e) = (dir.clone(), db.clone());
    let (status, log) = tokio::task::spawn_blocking(move || run(&d, &e, &env)).await.unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("The outbox did not drain in time"), "{log}");
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    let jobs = store.all_jobs().await.unwrap();
    let (analyze, crm, fu, hooks) = (
        states(&jobs, "analyze"),
        states(&jobs, "crm"),
        states(&jobs, "follow_up"),
        states(&jobs, "webhook"),
    );
    eprintln!("receiver down: analyze {analyze:?}, crm {crm:?}, follow_up {fu:?}, webhook {hooks:?}");
    assert_eq!(
        analyze.keys().collect::<Vec<_>>(),
        ["done"],
        "every call analysed: {analyze:?}"
    );
    assert_eq!(
        crm.keys().collect::<Vec<_>>(),
        ["done"],
        "every CRM sync delivered: {crm:?}"
    );
    assert_eq!(
        fu.keys().collect::<Vec<_>>(),
        ["done"],
        "every follow-up delivered: {fu:?}"
    );
    let synced = crm["done"];
    assert!(synced > 50, "{synced} CRM syncs");
    assert_eq!(fu["done"], 2 * synced, "an SMS and a task per analysed call");
    assert_eq!(tasks.accepted().len(), synced);
    let logged = hubspot.received_requests().await.unwrap();
    assert_eq!(
        logged
            .iter()
            .filter(|r| r.url.path() == "/crm/v3/objects/calls")
            .count(),
        synced
    );
    assert_eq!(hooks.get("done"), None, "the receiver was down: {hooks:?}");
    assert_eq!(hooks.get("dead"), None, "{hooks:?}");
    let waiting = hooks.get("pending").copied().unwrap_or(0);
    assert!(waiting > 1_000, "{waiting} webhooks pending");
    drop(store);

    // 2. The receiver comes up on that address; the next start delivers every webhook.
    let rx = Receiver::start_on(SECRET, &addr).await;
    let env = [
        ("DIALERD__WEBHOOK_SECRET", SECRET),
        ("DIALERD__HUBSPOT_TOKEN", TOKEN),
        ("DIALERD__OUTBOX__BACKOFF_MAX", "10s"),
        ("DIALERD__OUTBOX__DRAIN_TIMEOUT", "180s"),
    ];
    let (d, e) = (dir.clone(), db.clone());
    let (status, log) = tokio::task::spawn_blocking(move || run(&d, &e, &env)).await.unwrap();
    assert!(status.success(), "{log}");
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    let jobs = store.all_jobs().await.unwrap();
    let counts = store.job_counts().await.unwrap();
    eprintln!("receiver back: {counts:?}, {} webhooks received", rx.accepted().len());
    assert_eq!(counts.keys().collect::<Vec<_>>(), ["done"], "{counts:?}");
    let got = rx.accepted();
    let webhooks: Vec<&Job> = jobs.iter().filter(|j| j.kind == "webhook").collect();
    let first: HashMap<&str, usize> = got.iter().enumerate().rev().map(|(i, r)| (r.id.as_str(), i)).collect();
    for j in &webhooks {
        assert!(
            first.contains_key(j.idempotency_key.as_str()),
            "job {} ({:?}) never arrived",
            j.id,
            j.event
        );
    }
    assert_in_order(&triples(&jobs), &got);
    // call_started before call_ended before call_analyzed, for every call.
    let mut by_call: HashMap<&str, Vec<(&str, usize)>> = HashMap::new();
    for j in &webhooks {
        if j.order_key.starts_with("call:") {
            let e = j.event.as_deref().unwrap_or_default();
            by_call
                .entry(j.order_key.as_str())
                .or_default()
                .push((e, first[j.idempotency_key.as_str()]));
        }
    }
    let mut analysed = 0;
    for (call, evs) in &by_call {
        let at = |e: &str| evs.iter().find(|(x, _)| *x == e).map(|(_, i)| *i);
        if let (Some(s), Some(e)) = (at("call_started"), at("call_ended")) {
            assert!(s < e, "{call}: call_ended before call_started");
            if let Some(a) = at("call_analyzed") {
                assert!(e < a, "{call}: call_analyzed before call_ended");
                analysed += 1;
            }
        }
    }
    assert_eq!(analysed, synced, "every analysed call's three events arrived in order");
    assert_eq!(rx.shared.bad_signatures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_outage_does_not_delay_webhooks() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(SECRET).await;
    let hubspot = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&hubspot)
        .await;
    let extra = format!(
        r#"
[trunk.sim]
seed = 3
time_scale = 0.01
p_human = 1.0
p_machine = 0.0
p_no_answer = 0.0
p_busy = 0.0
p_failed = 0.0
callback_rate = 0.0
talk_mean = "30s"

[webhooks]
url = "{url}"
webhook_retry_count = 20

[crm]
crm_provider = "hubspot"
base_url = "{hubspot}"
"#,
        url = rx.url,
        hubspot = hubspot.uri()
    );
    let dir = common::campaign_dir(tmp.path(), "outage", 8, &extra);
    let db = tmp.path().join("d.db");
    let env = [
        ("DIALERD__WEBHOOK_SECRET", SECRET),
        ("DIALERD__HUBSPOT_TOKEN", TOKEN),
        ("DIALERD__OUTBOX__DRAIN_TIMEOUT", "5s"),
    ];
    let (d, e) = (dir.clone(), db.clone());
    let (status, log) = tokio::task::spawn_blocking(move || run(&d, &e, &env)).await.unwrap();
    assert!(status.success(), "{log}");
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    let jobs = store.all_jobs().await.unwrap();
    let (crm, hooks) = (states(&jobs, "crm"), states(&jobs, "webhook"));
    eprintln!("CRM down: crm {crm:?}, webhook {hooks:?}");
    // Every webhook was delivered while every CRM sync still waits on the outage.
    assert_eq!(hooks.keys().collect::<Vec<_>>(), ["done"], "{hooks:?}");
    assert_eq!(crm.keys().collect::<Vec<_>>(), ["pending"], "{crm:?}");
    assert_eq!(crm["pending"], 8);
    for j in jobs.iter().filter(|j| j.kind == "crm") {
        assert!(j.attempts >= 1 && j.last_error.as_deref() == Some("HTTP 503"), "{j:?}");
    }
    let got = rx.accepted();
    assert_eq!(got.iter().filter(|r| r.event == "call_analyzed").count(), 8);
    assert_eq!(got.iter().filter(|r| r.event == "call_ended").count(), 8);
    assert_in_order(&triples(&jobs), &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_moves_waiting_analyze_jobs_off_the_call_key() {
    use chrono::Utc;
    use dialerd::store::NewJob;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("old.db");
    let job = |kind: &str, key: &str| NewJob {
        campaign_id: "camp".into(),
        order_key: "call:c1a1".into(),
        kind: kind.into(),
        event: None,
        idempotency_key: key.into(),
        payload: "{}".into(),
        max_attempts: 5,
        run_at: Utc::now(),
    };
    // A database written before 0006: the call's webhook, then its analyze job, on one key.
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    let old = [job("webhook", "evt_started"), job("analyze", "evt_analyze")];
    store.enqueue_jobs(&old, Utc::now()).await.unwrap();
    drop(store);
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 6")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;

    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    let keys: Vec<(String, String)> = store
        .all_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.kind, j.order_key))
        .collect();
    assert_eq!(
        keys,
        [
            ("webhook".to_string(), "call:c1a1".to_string()),
            ("analyze".to_string(), "analyze:c1a1".to_string())
        ]
    );
    // Both can run at once now: the analysis no longer waits for the webhook.
    assert_eq!(store.claim_jobs(Utc::now(), 10).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_holds_at_most_half_the_workers() {
    use chrono::Utc;
    use dialerd::analysis::{OutboxPool, Pipeline, crm, events};
    use dialerd::call::{CallRecord, Message, Role};
    use dialerd::campaign::analysis_file::{CrmFile, CrmProvider, WebhooksFile};
    use dialerd::settings::{OutboxSettings, Secret, Settings};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    // The webhook receiver answers each request only after 1.5 s; the CRM answers at once.
    let slow = Receiver::start(SECRET).await;
    slow.shared.delay_ms.store(1_500, Ordering::SeqCst);
    let fast = Receiver::start(SECRET).await;
    let store = Store::open(tmp.path().join("o.db").to_str().unwrap()).await.unwrap();
    std::fs::write(tmp.path().join("s.toml"), "").unwrap();
    let mut settings = Settings::load(Some(&tmp.path().join("s.toml"))).unwrap();
    settings.webhook_secret = Some(Secret::new(SECRET));
    settings.outbox = OutboxSettings {
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        ..OutboxSettings::default()
    };
    let p = Arc::new(Pipeline::new(store.clone(), &settings).unwrap());
    let w = WebhooksFile {
        url: Some(slow.url.clone()),
        timeout: Duration::from_secs(10),
        ..WebhooksFile::default()
    };
    let now = Utc::now();
    // Twelve calls' webhooks first (lower ids), then four CRM syncs.
    let mut jobs: Vec<_> = (0..12)
        .map(|c| {
            let call = format!("c{c}a1");
            events::webhook(
                &w,
                "camp",
                &events::call_order_key(&call),
                "call_ended",
                &[&call],
                serde_json::json!({}),
                now,
            )
            .unwrap()
        })
        .collect();
    let file = CrmFile {
        crm_provider: CrmProvider::Custom,
        crm_sync_fields: vec![],
        base_url: Some(fast.url.clone()),
    };
    for c in 0..4 {
        let rec = CallRecord {
            call_id: format!("c{c}a1"),
            trunk_call_id: "sim".into(),
            campaign_id: "camp".into(),
            contact_id: c,
            attempt: 1,
            agent_id: "agent_1".into(),
            caller_number: "+14155550100".into(),
            callee_number: "+12125550102".into(),
            contact_created_at: now,
            campaign_started_at: now,
            first_dialed_at: now,
            dialed_at: now,
            answered_at: Some(now),
            first_agent_speech_at: Some(now),
            ended_at: now,
            outcome: "human".into(),
            disposition: "completed".into(),
            transcript: vec![Message {
                role: Role::Agent,
                text: "Hello".into(),
                at: now,
            }],
            tool_events: vec![],
            contact_fields: Default::default(),
        };
        jobs.push(crm::job(&file, &w, &rec, &serde_json::json!({}), now));
    }
    store.enqueue_jobs(&jobs, now).await.unwrap();
    let pool = OutboxPool::spawn(Arc::clone(&p));
    fast.wait_until(Duration::from_secs(30), "four CRM syncs", |r| r.len() >= 4)
        .await;
    // The CRM syncs went while the slow receiver still held its (at most two) workers.
    let webhooks_done = slow.accepted().len();
    assert!(
        webhooks_done <= 2,
        "{webhooks_done} webhooks were answered before the CRM syncs went"
    );
    tokio::time::timeout(Duration::from_secs(60), pool.drain(std::future::pending::<()>()))
        .await
        .expect("drained");
    pool.stop().await;
    assert_eq!(slow.accepted().len(), 12);
}
