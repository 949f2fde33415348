//! A CRM sync or follow-up job that reaches the dead state sends `error_occurred` (when the
//! campaign's `webhook_events` selects it) with the call id, the job kind and the error, under a
//! stable idempotency key: a replayed job that dies again sends nothing new.

mod analysis_common;

use analysis_common::Receiver;
use chrono::Utc;
use dialerd::analysis::{OutboxPool, Pipeline, crm, events, followup};
use dialerd::call::{CallRecord, Message, Role};
use dialerd::campaign::analysis_file::{
    CrmFile, CrmProvider, FollowUpAction, FollowUpFile, FollowUpKind, WebhooksFile,
};
use dialerd::settings::{OutboxSettings, Secret, Settings};
use dialerd::store::{NewJob, Store};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "dead-letter-secret";

fn record(call_id: &str) -> CallRecord {
    let t = Utc::now();
    CallRecord {
        call_id: call_id.into(),
        trunk_call_id: format!("sim-{call_id}"),
        campaign_id: "camp".into(),
        contact_id: 1,
        attempt: 1,
        agent_id: "agent_1".into(),
        caller_number: "+14155550100".into(),
        callee_number: "+12125550101".into(),
        contact_created_at: t,
        campaign_started_at: t,
        first_dialed_at: t,
        dialed_at: t,
        answered_at: Some(t),
        first_agent_speech_at: Some(t),
        ended_at: t,
        outcome: "human".into(),
        disposition: "completed".into(),
        transcript: vec![Message {
            role: Role::Agent,
            text: "Hello".into(),
            at: t,
        }],
        tool_events: vec![],
        contact_fields: [("first_name".to_string(), "Ana".to_string())].into(),
    }
}

/// The crm and follow-up jobs of one analysed call, with `events` selected on the main webhook.
fn jobs(rec: &CallRecord, hook: &str, sinks: &str, events: &[&str]) -> Vec<NewJob> {
    let w = WebhooksFile {
        url: Some(hook.to_string()),
        webhook_events: Some(events.iter().map(|e| e.to_string()).collect()),
        webhook_retry_count: 1,
        timeout: Duration::from_secs(5),
        ..WebhooksFile::default()
    };
    let crm_file = CrmFile {
        crm_provider: CrmProvider::Custom,
        crm_sync_fields: vec![],
        base_url: Some(format!("{sinks}/crm")),
    };
    let a = json!({"call_summary": "Talked.", "metrics": {"duration_s": 42.0}, "tags": [], "disposition": "completed"});
    let mut out = vec![crm::job(&crm_file, &w, rec, &a, Utc::now())];
    let fu = FollowUpFile {
        actions: vec![FollowUpAction {
            kind: FollowUpKind::Task,
            url: Some(format!("{sinks}/task")),
            to: None,
            subject: None,
            body: Some("Call {{caller_name}} back".into()),
            when: vec![],
        }],
    };
    let (fu_jobs, errors) = followup::jobs(&fu, &w, rec, &a, "+14155550100", Utc::now());
    assert!(errors.is_empty(), "{errors:?}");
    out.extend(fu_jobs);
    out
}

async fn pipeline(dir: &std::path::Path) -> (Store, Arc<Pipeline>) {
    let store = Store::open(dir.join("o.db").to_str().unwrap()).await.unwrap();
    std::fs::write(dir.join("s.toml"), "").unwrap();
    let mut settings = Settings::load(Some(&dir.join("s.toml"))).unwrap();
    settings.webhook_secret = Some(Secret::new(SECRET));
    settings.outbox = OutboxSettings {
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..OutboxSettings::default()
    };
    let p = Pipeline::new(store.clone(), &settings).unwrap();
    (store, Arc::new(p))
}

async fn drain(pool: &OutboxPool) {
    tokio::time::timeout(Duration::from_secs(60), pool.drain(std::future::pending::<()>()))
        .await
        .expect("outbox did not drain in 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_crm_and_follow_up_jobs_send_error_occurred_once() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(SECRET).await;
    // The CRM refuses (400: dead at once); the task endpoint is down (503: dead after 1 retry).
    let sinks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&sinks)
        .await;
    Mock::given(method("POST"))
        .and(path("/task"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&sinks)
        .await;
    let (store, p) = pipeline(tmp.path()).await;
    let on = record("c1a1");
    let off = record("c2a1");
    let mut all = jobs(&on, &rx.url, &sinks.uri(), &["error_occurred"]);
    // A campaign that does not select error_occurred gets no error event.
    all.extend(jobs(&off, &rx.url, &sinks.uri(), &["call_ended"]));
    assert_eq!(store.enqueue_jobs(&all, Utc::now()).await.unwrap(), 4);
    let pool = OutboxPool::spawn(Arc::clone(&p));
    drain(&pool).await;

    let stored = store.all_jobs().await.unwrap();
    let dead: Vec<_> = stored.iter().filter(|j| j.state == "dead").collect();
    assert_eq!(dead.len(), 4, "{stored:?}");
    let crm_dead = dead
        .iter()
        .find(|j| j.kind == "crm" && j.order_key == "crm:c1a1")
        .unwrap();
    let fu_dead = dead
        .iter()
        .find(|j| j.kind == "follow_up" && j.order_key.starts_with("fu:c1a1:task@"))
        .unwrap();
    assert_eq!(
        (crm_dead.attempts, fu_dead.attempts),
        (1, 2),
        "400 is not retried; 503 is, once"
    );
    let errors: Vec<_> = stored
        .iter()
        .filter(|j| j.event.as_deref() == Some("error_occurred"))
        .collect();
    assert_eq!(
        errors.len(),
        2,
        "one per dead job of the call that selects it: {errors:?}"
    );
    assert!(errors.iter().all(|j| j.state == "done" && j.order_key == "call:c1a1"));

    rx.wait_until(Duration::from_secs(10), "two error_occurred", |r| r.len() >= 2)
        .await;
    let got = rx.accepted();
    assert_eq!(got.len(), 2);
    for (dead_job, status) in [(crm_dead, "HTTP 400"), (fu_dead, "HTTP 503")] {
        let key = events::idempotency_key(&["camp", "error_occurred", "c1a1", "dead", &dead_job.idempotency_key]);
        let r = got
            .iter()
            .find(|r| r.id == key)
            .unwrap_or_else(|| panic!("no error_occurred for the dead {} job", dead_job.kind));
        assert_eq!(r.event, "error_occurred");
        assert_eq!(r.json["event"], "error_occurred");
        let d = &r.json["data"];
        assert_eq!(d["call_id"], "c1a1");
        assert_eq!(d["error"]["job_kind"], dead_job.kind.as_str());
        assert_eq!(d["error"]["job_key"], dead_job.idempotency_key.as_str());
        assert_eq!(d["error"]["error"], status);
        assert_eq!(d["error"]["attempts"], dead_job.attempts);
    }

    // Replayed, the jobs die again; the error events keep their keys, so nothing new is sent.
    assert_eq!(store.retry_dead_jobs(&[], Utc::now()).await.unwrap(), 4);
    drain(&pool).await;
    pool.stop().await;
    let stored = store.all_jobs().await.unwrap();
    assert_eq!(stored.iter().filter(|j| j.state == "dead").count(), 4);
    assert_eq!(
        stored
            .iter()
            .filter(|j| j.event.as_deref() == Some("error_occurred"))
            .count(),
        2
    );
    assert_eq!(rx.accepted().len(), 2);
    assert_eq!(rx.shared.bad_signatures.load(Ordering::SeqCst), 0);
}
