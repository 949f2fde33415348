//! Loopback peers for the analysis tests: a webhook receiver that verifies every signature.
#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver accepted or refused.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub event: String,
    pub body: String,
    pub json: serde_json::Value,
    pub status: u16,
    /// When the receiver got it (UTC).
    pub received_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
pub struct Shared {
    pub secret: Vec<u8>,
    pub log: Mutex<Vec<Received>>,
    pub bad_signatures: AtomicUsize,
    /// While > 0, answer 503 and count down.
    pub fail_next: AtomicU64,
    /// Status to answer instead of 200 while `fail_next` > 0.
    pub fail_status: AtomicU64,
    pub delay_ms: AtomicU64,
}

/// A webhook receiver on 127.0.0.1.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub shared: Arc<Shared>,
}

async fn handle(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let sig = h("x-webhook-signature");
    if !dialerd::analysis::webhook::verify(&s.secret, &body, &sig) {
        s.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let failing = s
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        s.fail_status.load(Ordering::SeqCst) as u16
    } else {
        200
    };
    let text = String::from_utf8_lossy(&body).to_string();
    s.log.lock().unwrap().push(Received {
        id: h("x-webhook-id"),
        event: h("x-event-type"),
        json: serde_json::from_str(&text).unwrap_or_default(),
        body: text,
        status,
        received_at: chrono::Utc::now(),
    });
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    /// Starts a receiver verifying signatures with `secret`.
    pub async fn start(secret: &str) -> Receiver {
        Receiver::start_on(secret, "127.0.0.1:0").await
    }

    /// Starts a receiver verifying signatures with `secret` on `addr` (`127.0.0.1:PORT`).
    pub async fn start_on(secret: &str, addr: &str) -> Receiver {
        let shared = Arc::new(Shared {
            secret: secret.as_bytes().to_vec(),
            fail_status: AtomicU64::new(503),
            ..Default::default()
        });
        let app = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, shared }
    }

    /// Accepted (2xx) requests so far.
    pub fn accepted(&self) -> Vec<Received> {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status == 200)
            .cloned()
            .collect()
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Waits until `pred` holds over the accepted requests; panics after `timeout`.
    pub async fn wait_until(&self, timeout: Duration, what: &str, pred: impl Fn(&[Received]) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.accepted()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; received {}", self.accepted().len());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A loopback address nothing listens on (bound once to get a free port, then released).
pub fn unused_loopback_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Checks per-order-key order: for each key, jobs were first accepted in job-id order.
/// `jobs` are (id, order_key, idempotency_key) from the store.
pub fn assert_in_order(jobs: &[(i64, String, String)], received: &[Received]) {
    use std::collections::HashMap;
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, r) in received.iter().enumerate() {
        first.entry(r.id.as_str()).or_insert(i);
    }
    let mut by_key: HashMap<&str, Vec<(i64, usize)>> = HashMap::new();
    for (id, key, idem) in jobs {
        if let Some(pos) = first.get(idem.as_str()) {
            by_key.entry(key.as_str()).or_default().push((*id, *pos));
        }
    }
    for (key, mut v) in by_key {
        v.sort();
        assert!(
            v.windows(2).all(|w| w[0].1 < w[1].1),
            "order broken for {key}: (job id, first arrival) = {v:?}"
        );
    }
}

/// An OpenAI-compatible chat-completions reply whose message content is `content` as JSON text.
pub fn chat(content: serde_json::Value) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "mock-model",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content.to_string()}}]
    }))
}

/// A copy of the example campaign (`campaigns/example.toml` and its contact list) under
/// `root/campaigns`, with its webhook receiver moved from `127.0.0.1:8787` to `webhook_addr`
/// (`host:port`), `replace` pairs applied to the file, and `extra` appended (new sections only).
pub fn example_campaign(
    root: &std::path::Path,
    webhook_addr: &str,
    replace: &[(&str, &str)],
    extra: &str,
) -> std::path::PathBuf {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns");
    let dir = root.join("campaigns");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("example-contacts.csv"), dir.join("example-contacts.csv")).unwrap();
    let mut toml = std::fs::read_to_string(src.join("example.toml")).unwrap();
    assert!(toml.contains("127.0.0.1:8787"), "the example's receiver moved");
    toml = toml.replace("127.0.0.1:8787", webhook_addr);
    for (from, to) in replace {
        assert!(toml.contains(from), "`{from}` is not in the example campaign");
        toml = toml.replace(from, to);
    }
    toml.push_str(extra);
    std::fs::write(dir.join("example.toml"), toml).unwrap();
    dir
}

/// A HubSpot stand-in (wiremock) that accepts every contact search (no match), contact create
/// (id 501) and call create (id 9001) authorised with `token`.
pub async fn hubspot_stand_in(token: &str) -> wiremock::MockServer {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let s = MockServer::start().await;
    let auth = format!("Bearer {token}");
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/search"))
        .and(header("authorization", auth.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"total": 0, "results": []})))
        .mount(&s)
        .await;
    for (p, id) in [("/crm/v3/objects/contacts", "501"), ("/crm/v3/objects/calls", "9001")] {
        Mock::given(method("POST"))
            .and(path(p))
            .and(header("authorization", auth.as_str()))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": id})))
            .mount(&s)
            .await;
    }
    s
}

/// Outbox jobs of `kind` by state.
pub fn states(jobs: &[dialerd::store::Job], kind: &str) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for j in jobs.iter().filter(|j| j.kind == kind) {
        *m.entry(j.state.clone()).or_insert(0) += 1;
    }
    m
}
