//! HubSpot sync through the outbox against a stateful loopback stand-in: a contact entered by
//! hand as "(212) 555-0102" is found by the call's E.164 number and the call is logged on it
//! (no duplicate contact), and a 429 makes every job of the account wait as long as HubSpot
//! said, without spending an attempt.

use chrono::Utc;
use dialerd::analysis::{OutboxPool, Pipeline, crm};
use dialerd::call::{CallRecord, Message, Role};
use dialerd::campaign::analysis_file::{CrmFile, CrmProvider, WebhooksFile};
use dialerd::settings::{OutboxSettings, Secret, Settings};
use dialerd::store::Store;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "pat-na1-sync";

fn record(call_id: &str, callee: &str) -> CallRecord {
    let t = Utc::now();
    CallRecord {
        call_id: call_id.into(),
        trunk_call_id: format!("sim-{call_id}"),
        campaign_id: "camp".into(),
        contact_id: 1,
        attempt: 1,
        agent_id: "agent_1".into(),
        caller_number: "+14155550100".into(),
        callee_number: callee.into(),
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

fn crm_job(base: &str, rec: &CallRecord) -> dialerd::store::NewJob {
    let w = WebhooksFile {
        webhook_retry_count: 2,
        timeout: Duration::from_secs(5),
        ..WebhooksFile::default()
    };
    let file = CrmFile {
        crm_provider: CrmProvider::Hubspot,
        crm_sync_fields: vec![],
        base_url: Some(base.to_string()),
    };
    let a = json!({"call_summary": "Talked about the annual plan.", "metrics": {"duration_s": 42.5},
        "tags": ["renewal"], "disposition": "completed", "user_sentiment": "positive"});
    crm::job(&file, &w, rec, &a, Utc::now())
}

async fn pipeline(dir: &std::path::Path) -> (Store, Arc<Pipeline>) {
    let store = Store::open(dir.join("o.db").to_str().unwrap()).await.unwrap();
    std::fs::write(dir.join("s.toml"), "").unwrap();
    let mut settings = Settings::load(Some(&dir.join("s.toml"))).unwrap();
    settings.hubspot_token = Some(Secret::new(TOKEN));
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

/// A contact stored as HubSpot stores a hand-entered phone: `phone` as typed, the searchable
/// calculated number as its national digits. The stand-in answers a search as HubSpot would:
/// a result when some filter group matches one of the contact's property values.
fn hubspot_search(req: &Request) -> ResponseTemplate {
    let stored = json!({"phone": "(212) 555-0102", "hs_searchable_calculated_phone_number": "2125550102",
        "email": "ana@example.com"});
    let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
    for k in ["filterGroups", "properties", "limit", "sorts", "after"] {
        if body.get(k).is_none() {
            return ResponseTemplate::new(400).set_body_json(json!({"message": format!("{k} is required")}));
        }
    }
    let matches = |f: &Value| {
        let have = &stored[f["propertyName"].as_str().unwrap_or_default()];
        match f["operator"].as_str() {
            Some("EQ") => f["value"] == *have,
            Some("IN") => f["values"].as_array().is_some_and(|v| v.contains(have)),
            _ => false,
        }
    };
    let hit = body["filterGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|g| g["filters"].as_array().is_some_and(|fs| fs.iter().all(matches)));
    let results = if hit {
        json!([{"id": "42", "archived": false, "createdAt": "2026-01-02T03:04:05.000Z",
            "updatedAt": "2026-01-02T03:04:05.000Z", "properties": stored}])
    } else {
        json!([])
    };
    ResponseTemplate::new(200)
        .set_body_json(json!({"total": results.as_array().map_or(0, Vec::len), "results": results}))
}

async fn mount_creates(s: &MockServer) {
    for (p, id) in [("/crm/v3/objects/contacts", "501"), ("/crm/v3/objects/calls", "9001")] {
        Mock::given(method("POST"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": id})))
            .mount(s)
            .await;
    }
}

fn bodies(reqs: &[Request], p: &str) -> Vec<Value> {
    reqs.iter()
        .filter(|r| r.url.path() == p)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_entered_phone_is_found_not_duplicated() {
    let tmp = tempfile::tempdir().unwrap();
    let hs = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/search"))
        .respond_with(hubspot_search)
        .mount(&hs)
        .await;
    mount_creates(&hs).await;
    let (store, p) = pipeline(tmp.path()).await;
    // The contact's row in HubSpot; and a number HubSpot does not have.
    let jobs = [
        crm_job(&hs.uri(), &record("c1a1", "+12125550102")),
        crm_job(&hs.uri(), &record("c2a1", "+13125550177")),
    ];
    store.enqueue_jobs(&jobs, Utc::now()).await.unwrap();
    let pool = OutboxPool::spawn(Arc::clone(&p));
    drain(&pool).await;
    pool.stop().await;
    let all = store.all_jobs().await.unwrap();
    assert!(all.iter().all(|j| j.state == "done"), "{all:?}");

    let reqs = hs.received_requests().await.unwrap();
    for r in &reqs {
        let auth = r.headers.get("authorization").and_then(|v| v.to_str().ok());
        assert_eq!(auth, Some(format!("Bearer {TOKEN}").as_str()));
    }
    let created = bodies(&reqs, "/crm/v3/objects/contacts");
    assert_eq!(created.len(), 1, "only the unknown number is created: {created:?}");
    assert_eq!(created[0]["properties"]["phone"], "+13125550177");
    assert_eq!(created[0]["associations"], json!([]));
    let calls = bodies(&reqs, "/crm/v3/objects/calls");
    assert_eq!(calls.len(), 2);
    let on = |id: &str| calls.iter().filter(|c| c["associations"][0]["to"]["id"] == id).count();
    assert_eq!((on("42"), on("501")), (1, 1), "{calls:?}");
    for c in &calls {
        let props = c["properties"].as_object().unwrap();
        assert!(props.values().all(Value::is_string), "{props:?}");
        assert_eq!(c["properties"]["hs_call_duration"], "42500");
        assert!(c["properties"]["hs_timestamp"].as_str().unwrap().ends_with('Z'));
        let t = &c["associations"][0]["types"][0];
        assert_eq!(t["associationCategory"], "HUBSPOT_DEFINED");
        assert_eq!(t["associationTypeId"], 194);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_holds_every_job_of_the_account_as_long_as_told() {
    let tmp = tempfile::tempdir().unwrap();
    let hs = MockServer::start().await;
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = Arc::clone(&arrivals);
    // The first search is refused for 2 s (HubSpot's ten-secondly limit, with Retry-After).
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/search"))
        .respond_with(move |_: &Request| {
            let mut seen = seen.lock().unwrap();
            seen.push(Instant::now());
            if seen.len() == 1 {
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "2")
                    .insert_header("X-HubSpot-RateLimit-Max", "100")
                    .insert_header("X-HubSpot-RateLimit-Remaining", "0")
                    .insert_header("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
                    .set_body_json(
                        json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                        "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}),
                    )
            } else {
                ResponseTemplate::new(200).set_body_json(json!({"total": 0, "results": []}))
            }
        })
        .mount(&hs)
        .await;
    mount_creates(&hs).await;
    let (store, p) = pipeline(tmp.path()).await;
    // One job first, so that the 429 comes before the others are claimed.
    store
        .enqueue_jobs(&[crm_job(&hs.uri(), &record("c1a1", "+12125550102"))], Utc::now())
        .await
        .unwrap();
    let pool = OutboxPool::spawn(Arc::clone(&p));
    while arrivals.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let more: Vec<_> = (2..6)
        .map(|i| crm_job(&hs.uri(), &record(&format!("c{i}a1"), &format!("+1212555010{i}"))))
        .collect();
    store.enqueue_jobs(&more, Utc::now()).await.unwrap();
    drain(&pool).await;
    pool.stop().await;

    let all = store.all_jobs().await.unwrap();
    assert!(all.iter().all(|j| j.state == "done"), "{all:?}");
    // Waiting as told spent no attempt (max_attempts is 3).
    assert!(all.iter().all(|j| j.attempts == 1), "{all:?}");
    let reqs = hs.received_requests().await.unwrap();
    assert_eq!(bodies(&reqs, "/crm/v3/objects/calls").len(), 5);
    // Nothing reached the account for the 2 s it asked for, from any of the five jobs.
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 6, "one refused search, then one per job");
    for a in &arrivals[1..] {
        let after = a.duration_since(arrivals[0]);
        assert!(after >= Duration::from_secs(2), "a search {after:?} after the 429");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_conflict_logs_the_call_on_the_existing_contact() {
    let tmp = tempfile::tempdir().unwrap();
    let hs = MockServer::start().await;
    // The search does not see the contact yet (HubSpot's index lags writes); the create says who it is.
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"total": 0, "results": []})))
        .mount(&hs)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"status": "error",
            "message": "Contact already exists. Existing ID: 7301", "category": "CONFLICT",
            "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf"})))
        .mount(&hs)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/calls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "9001"})))
        .mount(&hs)
        .await;
    let (store, p) = pipeline(tmp.path()).await;
    let mut rec = record("c1a1", "+12125550102");
    rec.contact_fields.insert("email".into(), "ana@example.com".into());
    store
        .enqueue_jobs(&[crm_job(&hs.uri(), &rec)], Utc::now())
        .await
        .unwrap();
    let pool = OutboxPool::spawn(Arc::clone(&p));
    drain(&pool).await;
    pool.stop().await;
    let all = store.all_jobs().await.unwrap();
    assert_eq!(all[0].state, "done", "{all:?}");
    let reqs = hs.received_requests().await.unwrap();
    let search = &bodies(&reqs, "/crm/v3/objects/contacts/search")[0];
    assert!(search.to_string().contains("ana@example.com"), "{search}");
    let calls = bodies(&reqs, "/crm/v3/objects/calls");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["associations"][0]["to"]["id"], "7301");
}
