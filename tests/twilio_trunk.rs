//! The Twilio trunk's answer actions against a small Twilio peer on loopback: the safe-harbor
//! message and the voicemail message become `Twiml` updates (`<Say>` then `<Hangup/>`), a
//! hang-up is `Status=completed`, connecting the agent needs no request, AMD verdicts reach the
//! runner as `AmdVerdict` events and the voicemail message is played only after a
//! `machine_end_*` verdict, the account's CPS refuses as "not placed", and Twilio's refusals map
//! to the trunk's errors.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use dialerd::core::{AnswerAction, AnswerKind, AttemptKey, CallEvent, VoicemailAction};
use dialerd::settings::{Secret, TwilioSettings};
use dialerd::trunk::twilio::twiml::AgentConnect;
use dialerd::trunk::twilio::{AmdCallback, AmdVerdict, CallbackTarget, TwilioAccount, TwilioClient, TwilioHub};
use dialerd::trunk::{DialRequest, Trunk, TrunkError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

#[derive(Default)]
struct Peer {
    next: u32,
    updates: Vec<(String, HashMap<String, String>)>,
    updated: Arc<Notify>,
}

type Shared = Arc<Mutex<Peer>>;

async fn create(State(p): State<Shared>, body: String) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap();
    match form["To"].as_str() {
        "+14155550429" => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(serde_json::json!({"code": 20429, "message": "Too Many Requests"})),
        )
            .into_response(),
        "+14155550211" => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"code": 21211, "message": "Invalid 'To' Phone Number"})),
        )
            .into_response(),
        _ => {
            let mut p = p.lock().unwrap();
            p.next += 1;
            let sid = format!("CA{:032}", p.next);
            (
                StatusCode::CREATED,
                Json(serde_json::json!({"sid": sid, "status": "queued"})),
            )
                .into_response()
        }
    }
}

async fn update(State(p): State<Shared>, Path((_, file)): Path<(String, String)>, body: String) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap();
    let sid = file.trim_end_matches(".json").to_string();
    let mut p = p.lock().unwrap();
    p.updates.push((sid.clone(), form));
    p.updated.notify_one();
    (
        StatusCode::OK,
        Json(serde_json::json!({"sid": sid, "status": "in-progress"})),
    )
        .into_response()
}

/// The peer, a trunk on it, its hub, and the trunk's event channel (kept open).
type Setup = (
    Shared,
    dialerd::trunk::twilio::TwilioTrunk,
    Arc<TwilioHub>,
    mpsc::Receiver<dialerd::trunk::TrunkEvent>,
);

async fn setup() -> Setup {
    setup_cps(1000).await
}

async fn setup_cps(cps: u32) -> Setup {
    let peer: Shared = Arc::default();
    let app = Router::new()
        .route("/2010-04-01/Accounts/{account}/Calls.json", post(create))
        .route("/2010-04-01/Accounts/{account}/Calls/{file}", post(update))
        .with_state(peer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let settings = TwilioSettings {
        account_sid: Some("AC00000000000000000000000000000002".into()),
        auth_token: Some(Secret::new("trunk-test-token")),
        base_url: base,
        calls_per_second: cps,
        ..TwilioSettings::default()
    };
    let hub = Arc::new(TwilioHub::new());
    let account = TwilioAccount::new(
        TwilioClient::new(&settings).unwrap(),
        Arc::clone(&hub),
        "https://dialer.example.com/".into(),
        &settings,
    );
    let (tx, rx) = mpsc::channel(16);
    let connect = AgentConnect::Stream {
        url: "wss://agent.example.com/media".into(),
    };
    let trunk = account.trunk("spring", connect, VoicemailAction::LeaveMessage, tx);
    (peer, trunk, hub, rx)
}

fn req(contact: i64, to: &str) -> DialRequest {
    DialRequest {
        campaign: "spring".into(),
        key: AttemptKey { contact, attempt: 1 },
        to: to.into(),
        from: "+14155550100".into(),
        agent_id: "agent_456".into(),
        ring_timeout: Duration::from_secs(20),
        voicemail_message: Some("Hi Ann, call Acme back.".into()),
        safe_harbor_message: Some("This is Acme; we will call you back.".into()),
    }
}

async fn wait_updates(peer: &Shared, n: usize) -> Vec<(String, HashMap<String, String>)> {
    let notify = peer.lock().unwrap().updated.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = peer.lock().unwrap().updates.clone();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), notify.notified()).await;
    }
}

#[tokio::test]
async fn answer_actions_become_call_updates() {
    let (peer, trunk, hub, _events) = setup().await;
    let a = trunk.dial(req(1, "+14155550101")).await.unwrap();
    let b = trunk.dial(req(2, "+14155550102")).await.unwrap();
    let c = trunk.dial(req(3, "+14155550103")).await.unwrap();
    // `b` is a machine whose greeting is over, so its voicemail message may play.
    let verdict = AmdCallback {
        call_sid: b.clone(),
        answered_by: AmdVerdict::MachineEndBeep,
        machine_detection_duration: None,
    };
    let target = CallbackTarget {
        campaign: "spring".into(),
        contact: 2,
        attempt: 1,
    };
    hub.amd(&target, &verdict, chrono::Utc::now()).await.unwrap();

    trunk.act(&a, AnswerAction::ConnectAgent).await.unwrap();
    let started = Instant::now();
    trunk.act(&a, AnswerAction::PlaySafeHarbor).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "safe-harbor update took {:?}",
        started.elapsed()
    );
    trunk.act(&b, AnswerAction::LeaveVoicemail).await.unwrap();
    trunk.act(&c, AnswerAction::Hangup).await.unwrap();
    let got = wait_updates(&peer, 3).await;
    let twiml = |i: usize| got[i].1.get("Twiml").cloned().unwrap_or_default();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, a);
    assert_eq!(
        twiml(0),
        "<Response><Say>This is Acme; we will call you back.</Say><Hangup/></Response>"
    );
    assert_eq!(got[1].0, b);
    assert_eq!(
        twiml(1),
        "<Response><Say>Hi Ann, call Acme back.</Say><Hangup/></Response>"
    );
    assert_eq!(
        (got[2].0.as_str(), got[2].1.get("Status").map(String::as_str)),
        (c.as_str(), Some("completed"))
    );

    let e = trunk.act("CA-unknown", AnswerAction::Hangup).await.unwrap_err();
    assert!(matches!(e, TrunkError::Rejected(_)), "{e}");
}

#[tokio::test]
async fn verdicts_go_to_the_runner_and_voicemail_waits_for_the_greeting_s_end() {
    let (peer, trunk, hub, mut events) = setup().await;
    let start = trunk.dial(req(1, "+14155550101")).await.unwrap();
    let beep = trunk.dial(req(2, "+14155550102")).await.unwrap();
    let fax = trunk.dial(req(3, "+14155550103")).await.unwrap();
    let verdict = |sid: &str, v| AmdCallback {
        call_sid: sid.into(),
        answered_by: v,
        machine_detection_duration: None,
    };
    let target = |contact| CallbackTarget {
        campaign: "spring".into(),
        contact,
        attempt: 1,
    };
    let now = chrono::Utc::now();
    for (contact, sid, v) in [
        (1, &start, AmdVerdict::MachineStart),
        (2, &beep, AmdVerdict::MachineEndBeep),
        (3, &fax, AmdVerdict::Fax),
    ] {
        assert_eq!(hub.amd(&target(contact), &verdict(sid, v), now).await.unwrap(), Some(v));
        // A repeat adds nothing.
        assert_eq!(hub.amd(&target(contact), &verdict(sid, v), now).await.unwrap(), None);
    }
    // The trunk acts on nothing by itself: the runner hears the verdict (after the answer it
    // implies) and decides.
    let mut got = Vec::new();
    while let Ok(ev) = events.try_recv() {
        got.push((ev.key.contact, ev.event));
    }
    let mut want = Vec::new();
    for c in 1..=3 {
        want.extend([
            (c, CallEvent::Ringing),
            (c, CallEvent::Answered(AnswerKind::Unknown)),
            (c, CallEvent::AmdVerdict(AnswerKind::Machine)),
        ]);
    }
    assert_eq!(got, want);
    assert!(peer.lock().unwrap().updates.is_empty());
    // The core asks for the voicemail message on every machine; only the one whose greeting is
    // over gets it, the others are hung up.
    for sid in [&start, &beep, &fax] {
        trunk.act(sid, AnswerAction::LeaveVoicemail).await.unwrap();
    }
    let got = wait_updates(&peer, 3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let by_sid: HashMap<_, _> = got.into_iter().collect();
    assert_eq!(by_sid[&start].get("Status").map(String::as_str), Some("completed"));
    assert_eq!(
        by_sid[&beep]["Twiml"],
        "<Response><Say>Hi Ann, call Acme back.</Say><Hangup/></Response>"
    );
    assert_eq!(by_sid[&fax].get("Status").map(String::as_str), Some("completed"));
}

#[tokio::test]
async fn refusals_map_to_the_trunk_s_errors() {
    let (_peer, trunk, _hub, _events) = setup().await;
    let e = trunk.dial(req(1, "+14155550429")).await.unwrap_err();
    assert!(
        matches!(&e, TrunkError::NotPlaced { reason, .. } if reason.contains("20429")),
        "{e}"
    );
    let e = trunk.dial(req(2, "+14155550211")).await.unwrap_err();
    assert!(
        matches!(&e, TrunkError::Permanent { code: Some(21211), reason } if reason.starts_with("twilio 21211")),
        "{e}"
    );
    assert!(!e.to_string().contains("trunk-test-token"));
}

#[tokio::test]
async fn the_account_s_cps_says_not_now_before_any_request() {
    let (peer, trunk, _hub, _events) = setup_cps(1).await;
    trunk.dial(req(1, "+14155550101")).await.unwrap();
    let e = trunk.dial(req(2, "+14155550102")).await.unwrap_err();
    assert!(
        matches!(&e, TrunkError::NotPlaced { retry_after: Some(d), .. } if *d <= Duration::from_secs(1)),
        "{e}"
    );
    assert_eq!(peer.lock().unwrap().next, 1, "the refused dial reached Twilio");
}
