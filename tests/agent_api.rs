//! The agent events API over loopback, in process: every refusal (no token configured, missing or
//! wrong bearer, not JSON, malformed event naming its field, unknown call, ended call) answers its
//! status with a JSON error and changes nothing; a valid batch reaches the call's runner channel in
//! order, a repeated `id` is ignored, `end_call` hangs up; the OpenAPI document is served without
//! auth, parses, has the paths, and documents every event type the handler accepts.

use async_trait::async_trait;
use dialerd::api::agent::{AgentSurface, OPENAPI};
use dialerd::api::{ApiState, Listener, router};
use dialerd::call::agent::{EVENT_TYPES, parse_events};
use dialerd::core::{AnswerAction, AnswerKind, AttemptKey, CallEvent};
use dialerd::engine::agent_hub::AgentHub;
use dialerd::settings::{ApiSettings, Secret};
use dialerd::trunk::{DialRequest, OpenCall, Recovered, Trunk, TrunkError, TrunkEvent};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

const TOKEN: &str = "agent-test-token-5f1c";

/// A trunk that records the actions asked of it.
#[derive(Default)]
struct Recorder {
    acts: Mutex<Vec<(String, AnswerAction)>>,
}

#[async_trait]
impl Trunk for Recorder {
    async fn dial(&self, _req: DialRequest) -> Result<String, TrunkError> {
        Err(TrunkError::Rejected("not a dialing trunk".into()))
    }
    async fn act(&self, call_id: &str, action: AnswerAction) -> Result<(), TrunkError> {
        self.acts.lock().unwrap().push((call_id.to_string(), action));
        Ok(())
    }
    async fn recover(&self, _call: &OpenCall) -> Recovered {
        Recovered::Unknown
    }
}

struct Server {
    base: String,
    hub: Arc<AgentHub>,
    events: mpsc::Receiver<TrunkEvent>,
    trunk: Arc<Recorder>,
}

const KEY: AttemptKey = AttemptKey { contact: 7, attempt: 2 };

async fn serve(token: Option<&str>) -> Server {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hub = Arc::new(AgentHub::new());
    let (tx, events) = mpsc::channel(64);
    let trunk = Arc::new(Recorder::default());
    hub.register_campaign("spring", tx, Arc::clone(&trunk) as Arc<dyn Trunk>);
    hub.open_call("spring", KEY, "SIM000000000042", chrono::Utc::now());
    let mut state = ApiState::new(&base);
    state.agents = Some(AgentSurface {
        token: token.map(Secret::new),
        hub: Arc::clone(&hub),
    });
    let app = router(Arc::new(state), &ApiSettings::default());
    tokio::spawn(listener.serve(app, std::future::pending()));
    Server {
        base,
        hub,
        events,
        trunk,
    }
}

async fn post(base: &str, call: &str, auth: Option<&str>, ct: &str, body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/calls/{call}/events"))
        .header("content-type", ct)
        .body(body.to_string());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "status {status}: content type `{ct}`"
    );
    (status, resp.json().await.unwrap())
}

/// One refused request: call id, Authorization, Content-Type, body, status, error code, message part.
type Case<'a> = (&'a str, Option<&'a str>, &'a str, &'a str, u16, &'a str, &'a str);

#[tokio::test]
async fn refusals_change_nothing_and_a_valid_batch_reaches_the_call() {
    let mut s = serve(Some(TOKEN)).await;
    let bearer = format!("Bearer {TOKEN}");
    let good = Some(bearer.as_str());
    let json_ct = "application/json";
    let speech = r#"{"type":"agent_speech","text":"Hello!","id":"t1"}"#;
    let cases: &[Case] = &[
        ("c7a2", None, json_ct, speech, 401, "unauthorized", ""),
        ("c7a2", Some("Bearer wrong"), json_ct, speech, 401, "unauthorized", ""),
        ("c7a2", Some(TOKEN), json_ct, speech, 401, "unauthorized", ""),
        ("c7a2", good, "text/plain", speech, 415, "unsupported_media_type", ""),
        ("c7a2", good, json_ct, "{not json", 400, "bad_request", "not JSON"),
        (
            "c7a2",
            good,
            json_ct,
            r#"{"type":"agent_speech"}"#,
            422,
            "unprocessable",
            "event.text: missing",
        ),
        (
            "c7a2",
            good,
            json_ct,
            r#"{"events":[{"type":"opt_out"},{"type":"sing","id":"x"}]}"#,
            422,
            "unprocessable",
            "events[1].type: unknown event type `sing`",
        ),
        (
            "c7a2",
            good,
            json_ct,
            r#"{"type":"callback_requested","callback_at":"tomorrow"}"#,
            422,
            "unprocessable",
            "event.callback_at",
        ),
        ("c9a1", good, json_ct, speech, 404, "not_found", "c9a1"),
    ];
    for (i, (call, auth, ct, body, status, code, msg)) in cases.iter().enumerate() {
        let (got, b) = post(&s.base, call, *auth, ct, body).await;
        assert_eq!((got, b["error"].as_str().unwrap()), (*status, *code), "case {i}: {b}");
        assert!(b["message"].as_str().unwrap().contains(msg), "case {i}: {b}");
        assert!(!b.to_string().contains(TOKEN), "case {i} echoes the token: {b}");
        assert!(s.events.try_recv().is_err(), "case {i} reached the runner");
    }
    assert!(s.trunk.acts.lock().unwrap().is_empty());

    // A valid batch, by the trunk's call id: the core events arrive in order.
    let batch = json!({"events": [
        {"type": "agent_speech", "id": "t1", "at": "2026-12-01T15:00:01Z", "text": "Hi, this is Acme."},
        {"type": "message_received", "id": "t2", "at": "2026-12-01T15:00:03Z", "text": "Hi."},
        {"type": "opt_out", "id": "t3"},
        {"type": "answered_by", "id": "t4", "answered_by": "machine"},
        {"type": "callback_requested", "id": "t5", "callback_at": "2026-12-02T15:00:00-05:00"}
    ]});
    let (got, b) = post(&s.base, "SIM000000000042", good, json_ct, &batch.to_string()).await;
    assert_eq!(got, 202, "{b}");
    assert_eq!((b["accepted"].as_u64(), b["duplicates"].as_u64()), (Some(5), Some(0)));
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let mut got_events = Vec::new();
    while let Ok(ev) = s.events.try_recv() {
        assert_eq!((ev.key, ev.call_id.as_str()), (KEY, "SIM000000000042"));
        got_events.push(ev.event);
    }
    assert_eq!(
        got_events,
        vec![
            CallEvent::AgentSpoke(t("2026-12-01T15:00:01Z")),
            CallEvent::OptOut,
            CallEvent::AmdVerdict(AnswerKind::Machine),
            CallEvent::CallbackRequestedAt(t("2026-12-02T20:00:00Z")),
        ]
    );
    // An agent retry: the same ids are skipped; a new turn and end_call are taken.
    let retry = json!({"events": [
        {"type": "agent_speech", "id": "t1", "text": "Hi, this is Acme."},
        {"type": "agent_speech", "id": "t6", "at": "2026-12-01T15:00:05Z", "text": "Bye."},
        {"type": "end_call", "id": "t7"}
    ]});
    let (got, b) = post(&s.base, "c7a2", good, json_ct, &retry.to_string()).await;
    assert_eq!(got, 202, "{b}");
    assert_eq!((b["accepted"].as_u64(), b["duplicates"].as_u64()), (Some(2), Some(1)));
    assert!(
        s.events.try_recv().is_err(),
        "a second agent speech is no new first speech"
    );
    assert_eq!(
        *s.trunk.acts.lock().unwrap(),
        vec![("SIM000000000042".to_string(), AnswerAction::Hangup)]
    );
    let detail = s.hub.take_detail(KEY, chrono::Utc::now()).unwrap();
    let texts: Vec<&str> = detail.transcript.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, vec!["Hi, this is Acme.", "Hi.", "Bye."]);
    assert_eq!(detail.first_agent_speech_at, Some(t("2026-12-01T15:00:01Z")));
    // The call ended: 409, and nothing more is taken.
    let (got, b) = post(&s.base, "c7a2", good, json_ct, speech).await;
    assert_eq!((got, b["error"].as_str().unwrap()), (409, "conflict"), "{b}");
    assert!(s.events.try_recv().is_err());
    assert!(s.hub.take_detail(KEY, chrono::Utc::now()).is_none());
}

#[tokio::test]
async fn no_configured_token_answers_503() {
    let mut s = serve(None).await;
    for auth in [None, Some("Bearer "), Some("Bearer anything")] {
        let (got, b) = post(&s.base, "c7a2", auth, "application/json", r#"{"type":"end_call"}"#).await;
        assert_eq!((got, b["error"].as_str().unwrap()), (503, "unavailable"), "{b}");
        assert!(b["message"].as_str().unwrap().contains("agent_token"), "{b}");
    }
    assert!(s.events.try_recv().is_err());
    assert!(s.trunk.acts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_openapi_document_is_served_and_documents_every_event_type() {
    let s = serve(Some(TOKEN)).await;
    let resp = reqwest::get(format!("{}/v1/openapi.json", s.base)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let served: Value = resp.json().await.unwrap();
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    assert_eq!(served, doc);
    assert_eq!(doc["openapi"], "3.1.0");
    let post = &doc["paths"]["/v1/calls/{call_id}/events"]["post"];
    assert!(post.is_object(), "no events path");
    assert!(doc["paths"]["/v1/openapi.json"]["get"].is_object());
    for status in ["202", "400", "401", "404", "409", "415", "422", "503"] {
        assert!(post["responses"][status].is_object(), "status {status} undocumented");
    }
    let mapping = doc["components"]["schemas"]["Event"]["discriminator"]["mapping"]
        .as_object()
        .unwrap();
    let documented: Vec<&str> = mapping.keys().map(String::as_str).collect();
    let mut accepted: Vec<&str> = EVENT_TYPES.to_vec();
    accepted.sort();
    let mut documented_sorted = documented.clone();
    documented_sorted.sort();
    assert_eq!(
        documented_sorted, accepted,
        "documented event types differ from the handler's"
    );
    for (name, r) in mapping {
        let schema = r.as_str().unwrap().rsplit('/').next().unwrap();
        assert_eq!(
            doc["components"]["schemas"][schema]["properties"]["type"]["const"], *name,
            "{schema}"
        );
    }
    // The documented example is a body the handler takes, and it uses every event type.
    let example = &post["requestBody"]["content"]["application/json"]["example"];
    let parsed = parse_events(example).unwrap();
    let used: std::collections::BTreeSet<&str> = example["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(used.len(), EVENT_TYPES.len());
    assert_eq!(parsed.len(), example["events"].as_array().unwrap().len());
}

#[tokio::test]
async fn a_trunk_call_id_two_live_calls_share_names_neither() {
    let mut s = serve(Some(TOKEN)).await;
    let other = AttemptKey { contact: 8, attempt: 1 };
    s.hub.open_call("spring", other, "SIM000000000042", chrono::Utc::now());
    let bearer = format!("Bearer {TOKEN}");
    let body = r#"{"type":"opt_out"}"#;
    let (got, b) = post(&s.base, "SIM000000000042", Some(&bearer), "application/json", body).await;
    assert_eq!((got, b["error"].as_str().unwrap()), (404, "not_found"), "{b}");
    assert!(b["message"].as_str().unwrap().contains("stable id"), "{b}");
    assert!(s.events.try_recv().is_err());
    for (id, key) in [("c7a2", KEY), ("c8a1", other)] {
        let (got, b) = post(&s.base, id, Some(&bearer), "application/json", body).await;
        assert_eq!(got, 202, "{b}");
        assert_eq!(s.events.try_recv().unwrap().key, key);
    }
}
