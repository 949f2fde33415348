//! A Twilio call-flow emulator on loopback, for the tests that run `kind = "twilio"` campaigns:
//! it serves the Calls resource (`POST Calls.json`, `POST`/`GET Calls/{Sid}.json`,
//! `GET Calls.json?To=`), plays each call from a script chosen per number and attempt (ringing,
//! answer, an async AMD verdict, busy, no-answer, failed, 429, 21211), posts signed status and
//! AMD callbacks shuffled and duplicated, follows call updates (the voicemail or safe-harbor
//! `Twiml`, `Status=completed`), and keeps each call's real outcome as Twilio would know it.
//! It also serves the caller-ID lookups (`GET IncomingPhoneNumbers.json?PhoneNumber=`, which
//! matches partial numbers as Twilio does, and `GET OutgoingCallerIds.json?PhoneNumber=`, exact)
//! from [`Emu::incoming_numbers`] and [`Emu::caller_ids`].
#![allow(dead_code)]

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use dialerd::trunk::twilio::signature::compute;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ACCOUNT: &str = "AC00000000000000000000000000000001";
pub const TOKEN: &str = "emulator-auth-token-91c2";

/// What a call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// A person answers and talks for `talk_ms`.
    Human { talk_ms: u64 },
    /// A machine answers; its verdict (`machine_end_beep`, `machine_end_other`, `fax`) follows
    /// after the answer. It hangs up by itself after `hold_ms` unless the call is updated.
    Machine { verdict: &'static str, hold_ms: u64 },
    /// Busy.
    Busy,
    /// Rings out (`no-answer`, SIP 487).
    NoAnswer,
    /// Fails with SIP 404.
    Failed404,
    /// `Calls.json` answers 429 / 20429 (nothing created).
    TooMany,
    /// `Calls.json` answers 400 / 21211 (nothing created).
    Reject21211,
}

/// One call the emulator created.
#[derive(Clone, Debug)]
pub struct Call {
    pub to: String,
    /// The caller ID the create presented (`From`).
    pub from: String,
    pub status_cb: String,
    pub amd_cb: String,
    /// `RecordingStatusCallback`, when the create asked for `Record=true`.
    pub recording_cb: Option<String>,
    pub script: Script,
    pub status: &'static str,
    pub answered_by: Option<&'static str>,
    pub created: chrono::DateTime<chrono::Utc>,
    /// When the `in-progress` callback was posted.
    pub answered_at: Option<Instant>,
    /// The updates received: (when, `Twiml` or `Status=completed`).
    pub updates: Vec<(Instant, String)>,
    /// The real outcome, once the call is over, in dialerd's vocabulary.
    pub outcome: Option<&'static str>,
    /// The emulator's HTTP client, which posts this call's callbacks.
    pub client: reqwest::Client,
}

/// Chooses a call's script from its number and 1-based attempt.
pub type ScriptFn = Box<dyn Fn(&str, usize) -> Script + Send + Sync>;

/// The emulator's state.
pub struct Emu {
    pub script: ScriptFn,
    pub creates: HashMap<String, usize>,
    pub live: HashSet<String>,
    pub twice_at_once: Vec<String>,
    pub calls: HashMap<String, Call>,
    pub refused: Vec<(String, u16)>,
    /// Request arrival → dialerd's answer, of every `Calls.json` that created a call.
    pub created_at: Vec<Instant>,
    next: u64,
    /// Delay before a call's first callback.
    pub ring_ms: u64,
    /// Calls whose recording callback was posted (answered calls created with `Record=true`).
    pub recorded: Vec<String>,
    /// The account's IncomingPhoneNumbers (E.164), listed by `IncomingPhoneNumbers.json`.
    pub incoming_numbers: Vec<String>,
    /// The account's verified OutgoingCallerIds (E.164), listed by `OutgoingCallerIds.json`.
    pub caller_ids: Vec<String>,
    /// Every caller-ID lookup received: (`IncomingPhoneNumbers` or `OutgoingCallerIds`, its
    /// `PhoneNumber`), in arrival order.
    pub lookups: Vec<(&'static str, String)>,
    /// Lookups of these `PhoneNumber`s answer with this HTTP status and Twilio error code.
    pub lookup_errors: HashMap<String, (u16, u32)>,
    /// One client for every callback (of this emulator's runtime): building one per request
    /// loads the TLS roots each time, which cost more CPU than the daemon's whole handling and
    /// made the emulator the bottleneck of `benches/twilio.rs`.
    client: reqwest::Client,
}

pub type Shared = Arc<Mutex<Emu>>;

/// Starts the emulator with `script` (number, 1-based attempt → script); returns it and its URL.
pub async fn start(script: impl Fn(&str, usize) -> Script + Send + Sync + 'static) -> (Shared, String) {
    let emu: Shared = Arc::new(Mutex::new(Emu {
        script: Box::new(script),
        creates: HashMap::new(),
        live: HashSet::new(),
        twice_at_once: Vec::new(),
        calls: HashMap::new(),
        refused: Vec::new(),
        created_at: Vec::new(),
        next: 0,
        ring_ms: 50,
        recorded: Vec::new(),
        incoming_numbers: Vec::new(),
        caller_ids: Vec::new(),
        lookups: Vec::new(),
        lookup_errors: HashMap::new(),
        client: reqwest::Client::new(),
    }));
    let app = Router::new()
        .route("/2010-04-01/Accounts/{account}/Calls.json", post(create).get(list))
        .route("/2010-04-01/Accounts/{account}/Calls/{file}", post(update).get(fetch))
        .route(
            "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json",
            get(incoming_numbers),
        )
        .route("/2010-04-01/Accounts/{account}/OutgoingCallerIds.json", get(caller_ids))
        .with_state(emu.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (emu, url)
}

/// The daemon's environment for this emulator.
pub fn env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DIALERD__LISTEN", "127.0.0.1:0".into()),
        ("DIALERD__TWILIO__ACCOUNT_SID", ACCOUNT.into()),
        ("DIALERD__TWILIO__AUTH_TOKEN", TOKEN.into()),
        ("DIALERD__TWILIO__BASE_URL", url.into()),
        ("DIALERD__TWILIO__CALLS_PER_SECOND", "100".into()),
    ]
}

async fn post_signed(client: &reqwest::Client, url: &str, form: &[(&str, String)]) {
    let pairs: Vec<(String, String)> = form.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let sig = compute(TOKEN, url, &pairs);
    let sent = client
        .post(url)
        .header("X-Twilio-Signature", sig)
        .form(&pairs)
        .send()
        .await;
    // The daemon may be gone (killed on purpose): Twilio would retry or give up; so do we.
    if let Ok(resp) = sent {
        assert!(
            resp.status().is_success() || resp.status().is_server_error() || resp.status() == StatusCode::NOT_FOUND,
            "callback {url} {form:?}: {}",
            resp.status()
        );
    }
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"code": code, "message": message, "status": status.as_u16()})),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str())
}

fn resource(sid: &str, c: &Call) -> serde_json::Value {
    serde_json::json!({
        "sid": sid, "status": c.status, "to": c.to, "answered_by": c.answered_by,
        "date_created": c.created.to_rfc2822(),
    })
}

async fn create(State(emu): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let arrived = Instant::now();
    if !authorized(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let events: Vec<_> = form
        .iter()
        .filter(|(n, _)| n == "StatusCallbackEvent")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(events, ["initiated", "ringing", "answered", "completed"]);
    assert_eq!(get("AsyncAmd"), "true");
    let to = get("To");
    let (sid, call) = {
        let mut e = emu.lock().unwrap();
        let n = {
            let c = e.creates.entry(to.clone()).or_default();
            *c += 1;
            *c
        };
        let script = (e.script)(&to, n);
        match script {
            Script::TooMany => {
                e.refused.push((to, 429));
                return twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            }
            Script::Reject21211 => {
                e.refused.push((to, 400));
                return twilio_error(StatusCode::BAD_REQUEST, 21211, "Invalid 'To' Phone Number");
            }
            _ => {}
        }
        if !e.live.insert(to.clone()) {
            e.twice_at_once.push(to.clone());
        }
        e.next += 1;
        let sid = format!("CA{:032}", e.next);
        let call = Call {
            to: to.clone(),
            from: get("From"),
            status_cb: get("StatusCallback"),
            amd_cb: get("AsyncAmdStatusCallback"),
            recording_cb: (get("Record") == "true").then(|| get("RecordingStatusCallback")),
            script,
            status: "queued",
            answered_by: None,
            created: chrono::Utc::now(),
            answered_at: None,
            updates: Vec::new(),
            outcome: None,
            client: e.client.clone(),
        };
        e.calls.insert(sid.clone(), call.clone());
        e.created_at.push(arrived);
        (sid, call)
    };
    tokio::spawn(play(emu.clone(), sid.clone(), call.clone()));
    (StatusCode::CREATED, Json(resource(&sid, &call))).into_response()
}

/// Sets the call's status (and its outcome when it is over); false when it already ended.
fn set(emu: &Shared, sid: &str, status: &'static str, outcome: Option<&'static str>) -> bool {
    let mut e = emu.lock().unwrap();
    let c = e.calls.get_mut(sid).unwrap();
    if c.outcome.is_some() {
        return false;
    }
    c.status = status;
    if status == "in-progress" {
        c.answered_at = Some(Instant::now());
    }
    if let Some(o) = outcome {
        c.outcome = Some(o);
        let to = c.to.clone();
        e.live.remove(&to);
    }
    true
}

async fn status(call: &Call, sid: &str, status: &str, seq: u32, sip: Option<u16>) {
    let mut form = vec![
        ("AccountSid", ACCOUNT.to_string()),
        ("CallSid", sid.to_string()),
        ("CallStatus", status.to_string()),
        ("SequenceNumber", seq.to_string()),
        ("To", call.to.clone()),
        ("CallbackSource", "call-progress-events".to_string()),
    ];
    if let Some(code) = sip {
        form.push(("SipResponseCode", code.to_string()));
    }
    post_signed(&call.client, &call.status_cb, &form).await;
}

/// Ends an answered call with `outcome` and posts its `completed` callback (twice).
async fn complete(emu: &Shared, sid: &str, outcome: &'static str) {
    if !set(emu, sid, "completed", Some(outcome)) {
        return;
    }
    let call = emu.lock().unwrap().calls[sid].clone();
    status(&call, sid, "completed", 3, None).await;
    status(&call, sid, "completed", 3, None).await;
    status(&call, sid, "ringing", 1, None).await;
    if let Some(url) = &call.recording_cb {
        let form = [
            ("AccountSid", ACCOUNT.to_string()),
            ("CallSid", sid.to_string()),
            ("RecordingSid", recording_sid(sid)),
            ("RecordingUrl", recording_url(sid)),
            ("RecordingStatus", "completed".to_string()),
            ("RecordingDuration", "3".to_string()),
        ];
        post_signed(&call.client, url, &form).await;
        emu.lock().unwrap().recorded.push(sid.to_string());
    }
}

/// The recording of answered call `sid` (`RE` + its digits).
pub fn recording_sid(sid: &str) -> String {
    format!("RE{}", sid.trim_start_matches("CA"))
}

/// The `RecordingUrl` the emulator reports for answered call `sid`, as Twilio forms it.
pub fn recording_url(sid: &str) -> String {
    format!(
        "https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{}",
        recording_sid(sid)
    )
}

/// Plays a call's callbacks: shuffled, with duplicates and a late `ringing` after the end.
async fn play(emu: Shared, sid: String, call: Call) {
    let ring = Duration::from_millis(emu.lock().unwrap().ring_ms);
    tokio::time::sleep(ring).await;
    let (s, c) = (&sid, &call);
    match call.script {
        Script::Busy | Script::NoAnswer | Script::Failed404 => {
            let (last, sip, outcome) = match call.script {
                Script::Busy => ("busy", None, "busy"),
                Script::NoAnswer => ("no-answer", Some(487), "no_answer"),
                _ => ("failed", Some(404), "failed"),
            };
            set(&emu, s, last, Some(outcome));
            status(c, s, last, 2, sip).await;
            status(c, s, "ringing", 1, None).await;
            status(c, s, "initiated", 0, None).await;
            status(c, s, last, 2, sip).await;
        }
        Script::Human { talk_ms } => {
            status(c, s, "ringing", 1, None).await;
            set(&emu, s, "in-progress", None);
            status(c, s, "in-progress", 2, None).await;
            status(c, s, "initiated", 0, None).await;
            amd(&emu, c, s, "human").await;
            status(c, s, "in-progress", 2, None).await;
            tokio::time::sleep(Duration::from_millis(talk_ms)).await;
            complete(&emu, s, "human").await;
        }
        Script::Machine { verdict, hold_ms } => {
            status(c, s, "ringing", 1, None).await;
            set(&emu, s, "in-progress", None);
            status(c, s, "in-progress", 2, None).await;
            // Detection takes a moment after the answer; the agent is already connected.
            tokio::time::sleep(Duration::from_millis(150)).await;
            amd(&emu, c, s, verdict).await;
            amd(&emu, c, s, verdict).await;
            // A machine nobody updates records the agent's silence and hangs up.
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
            complete(&emu, s, "machine").await;
        }
        Script::TooMany | Script::Reject21211 => unreachable!(),
    }
}

async fn amd(emu: &Shared, call: &Call, sid: &str, verdict: &'static str) {
    emu.lock().unwrap().calls.get_mut(sid).unwrap().answered_by = Some(verdict);
    let form = [
        ("CallSid", sid.to_string()),
        ("AnsweredBy", verdict.to_string()),
        ("MachineDetectionDuration", "2400".into()),
    ];
    post_signed(&call.client, &call.amd_cb, &form).await;
}

async fn update(
    State(emu): State<Shared>,
    Path((_, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    assert!(authorized(&headers));
    let sid = file.trim_end_matches(".json").to_string();
    let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap();
    let what = form
        .get("Twiml")
        .cloned()
        .or_else(|| form.get("Status").map(|s| format!("Status={s}")))
        .unwrap();
    let outcome = {
        let mut e = emu.lock().unwrap();
        let Some(call) = e.calls.get_mut(&sid) else {
            return twilio_error(StatusCode::NOT_FOUND, 20404, "The requested resource was not found");
        };
        if call.outcome.is_some() {
            return twilio_error(StatusCode::BAD_REQUEST, 21220, "Call is not in-progress");
        }
        call.updates.push((Instant::now(), what.clone()));
        match (call.script, what.starts_with("<Response><Say>")) {
            (Script::Machine { .. }, true) => "voicemail_left",
            (Script::Machine { .. }, false) => "machine",
            (_, true) => "abandoned",
            (_, false) => "human",
        }
    };
    let emu2 = emu.clone();
    let s = sid.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        complete(&emu2, &s, outcome).await;
    });
    (
        StatusCode::OK,
        Json(serde_json::json!({"sid": sid, "status": "in-progress"})),
    )
        .into_response()
}

async fn fetch(State(emu): State<Shared>, Path((_, file)): Path<(String, String)>, headers: HeaderMap) -> Response {
    assert!(authorized(&headers));
    let sid = file.trim_end_matches(".json").to_string();
    let e = emu.lock().unwrap();
    match e.calls.get(&sid) {
        Some(c) => Json(resource(&sid, c)).into_response(),
        None => twilio_error(StatusCode::NOT_FOUND, 20404, "The requested resource was not found"),
    }
}

async fn list(State(emu): State<Shared>, Query(q): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    assert!(authorized(&headers));
    let to = q.get("To").cloned().unwrap_or_default();
    let e = emu.lock().unwrap();
    let mut calls: Vec<_> = e.calls.iter().filter(|(_, c)| c.to == to).collect();
    calls.sort_by_key(|(sid, _)| std::cmp::Reverse((*sid).clone()));
    let calls: Vec<_> = calls.into_iter().map(|(sid, c)| resource(sid, c)).collect();
    Json(serde_json::json!({"calls": calls})).into_response()
}

/// Whether `number` holds `filter` somewhere, `*` standing for any one digit: how Twilio matches
/// `PhoneNumber` when listing IncomingPhoneNumbers ("partial numbers").
fn partial_match(filter: &str, number: &str) -> bool {
    let (f, n): (Vec<char>, Vec<char>) = (filter.chars().collect(), number.chars().collect());
    !f.is_empty()
        && n.len() >= f.len()
        && (0..=n.len() - f.len()).any(|i| {
            f.iter()
                .zip(&n[i..])
                .all(|(a, b)| a == b || (*a == '*' && b.is_ascii_digit()))
        })
}

/// One page of a list resource as Twilio answers it: `key` holds the items, then the paging fields.
fn list_page(resource: &str, key: &str, phone: &str, items: Vec<serde_json::Value>) -> serde_json::Value {
    let uri = format!(
        "/2010-04-01/Accounts/{ACCOUNT}/{resource}.json?PhoneNumber={}&PageSize=50&Page=0",
        phone.replace('+', "%2B")
    );
    let end = items.len().saturating_sub(1);
    serde_json::json!({
        key: items, "page": 0, "page_size": 50, "start": 0, "end": end,
        "uri": uri, "first_page_uri": uri, "next_page_uri": null, "previous_page_uri": null,
    })
}

/// `GET IncomingPhoneNumbers.json` or `OutgoingCallerIds.json` (`resource`): the account's numbers
/// `PhoneNumber` matches (partially for IncomingPhoneNumbers, exactly for OutgoingCallerIds), or
/// the error [`Emu::lookup_errors`] names for it.
fn lookup(emu: &Shared, resource: &'static str, q: &HashMap<String, String>, headers: &HeaderMap) -> Response {
    if !authorized(headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let phone = q.get("PhoneNumber").cloned().unwrap_or_default();
    let mut e = emu.lock().unwrap();
    e.lookups.push((resource, phone.clone()));
    if let Some(&(status, code)) = e.lookup_errors.get(&phone) {
        let status = StatusCode::from_u16(status).unwrap();
        return twilio_error(status, code, status.canonical_reason().unwrap_or("error"));
    }
    let (key, numbers, exact) = match resource {
        "IncomingPhoneNumbers" => ("incoming_phone_numbers", &e.incoming_numbers, false),
        _ => ("outgoing_caller_ids", &e.caller_ids, true),
    };
    let items: Vec<_> = numbers
        .iter()
        .enumerate()
        .filter(|(_, n)| phone.is_empty() || if exact { **n == phone } else { partial_match(&phone, n) })
        .map(|(i, n)| {
            let sid = format!("PN{:032}", i + 1);
            serde_json::json!({
                "sid": sid, "account_sid": ACCOUNT, "phone_number": n, "friendly_name": n,
                "uri": format!("/2010-04-01/Accounts/{ACCOUNT}/{resource}/{sid}.json"),
            })
        })
        .collect();
    Json(list_page(resource, key, &phone, items)).into_response()
}

async fn incoming_numbers(
    State(emu): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    lookup(&emu, "IncomingPhoneNumbers", &q, &headers)
}

async fn caller_ids(
    State(emu): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    lookup(&emu, "OutgoingCallerIds", &q, &headers)
}

/// A zone where it is now mid-day, so the legal hours (08:00-21:00 local) are open.
pub fn midday_zone() -> String {
    use chrono::Timelike;
    let hour = chrono::Utc::now().hour() as i32;
    let offset = (14 - hour).rem_euclid(24);
    let offset = if offset > 12 { offset - 24 } else { offset };
    match offset {
        0 => "Etc/GMT".to_string(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// Writes `dir/<id>.csv` with `phones` and `dir/<id>.toml` with `dialer` and `extra` sections.
pub fn campaign(dir: &std::path::Path, id: &str, phones: &[String], dialer: &str, extra: &str) {
    let zone = midday_zone();
    let mut csv = String::from("phone,first_name,timezone\n");
    for (i, p) in phones.iter().enumerate() {
        csv.push_str(&format!("{p},Name{i},{zone}\n"));
    }
    std::fs::write(dir.join(format!("{id}.csv")), csv).unwrap();
    let toml = format!(
        r#"name = "Twilio {id}"
agent_id = "agent_456"
caller_id = "+14155550100"
default_region = "US"
default_timezone = "America/New_York"

[contacts]
file = "{id}.csv"
timezone = "timezone"

[schedule]
windows = ["* * * * * *"]

[dialer]
{dialer}

[trunk]
kind = "twilio"

[trunk.twilio]
connect = "stream"
stream_url = "wss://agent.example.com/media"
{extra}
"#
    );
    std::fs::write(dir.join(format!("{id}.toml")), toml).unwrap();
}

/// `n` distinct valid US numbers from `base` (e.g. 2000 → +12122202000 …).
pub fn phones(base: usize, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+1212220{:04}", base + i)).collect()
}
