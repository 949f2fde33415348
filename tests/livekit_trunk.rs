//! The LiveKit trunk against the LiveKit mock on loopback (`tests/livekit_mock`, with the
//! semantics of LiveKit's `cmd/test-server`): the adapter's requests pass the mock's grant checks,
//! the mock speaks protobuf and JSON and refuses a token without the method's grant, every
//! scripted SIP status becomes its end reason and outcome, answer actions reach LiveKit as room
//! metadata and room deletions, and the listener accepts LiveKit-signed webhooks while refusing
//! tampered or foreign ones without any change of state, and ignores a repeated event id.

#[path = "livekit_mock/mod.rs"]
mod livekit_mock;

use dialerd::api::livekit::{LivekitSurface, WEBHOOK_PATH};
use dialerd::api::{ApiState, Listener, router};
use dialerd::campaign::livekit_file::LivekitFile;
use dialerd::core::{AnswerAction, AnswerKind, AttemptKey, Call, CallEvent, EndReason, Outcome};
use dialerd::settings::{ApiSettings, LivekitSettings, Secret};
use dialerd::trunk::livekit::{LivekitAccount, LivekitHub};
use dialerd::trunk::{DialRequest, OpenCall, Recovered, Trunk, TrunkError, TrunkEvent};
use livekit_api::access_token::{AccessToken, SIPGrants, VideoGrants};
use livekit_mock::{API_KEY, API_SECRET, Mock, Script, send_signed};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

fn settings(url: &str) -> LivekitSettings {
    LivekitSettings {
        url: Some(url.into()),
        api_key: Some(Secret::new(API_KEY)),
        api_secret: Some(Secret::new(API_SECRET)),
        timeout: Duration::from_secs(10),
    }
}

fn file() -> LivekitFile {
    LivekitFile {
        sip_trunk_id: "ST_outbound".into(),
        agent_name: "renewals-agent".into(),
        room_prefix: None,
        max_call_duration: Some(Duration::from_secs(900)),
        message_timeout: Some(Duration::from_millis(200)),
    }
}

fn request(contact: i64, to: &str) -> DialRequest {
    DialRequest {
        campaign: "spring".into(),
        key: AttemptKey { contact, attempt: 1 },
        to: to.into(),
        from: "+14155550100".into(),
        agent_id: "agent_456".into(),
        ring_timeout: Duration::from_secs(20),
        voicemail_message: Some("Hi Kira, this is Acme.".into()),
        safe_harbor_message: Some("This is Acme; we will call you back at +1 415 555 0100.".into()),
    }
}

async fn next(rx: &mut mpsc::Receiver<TrunkEvent>) -> TrunkEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("the channel is open")
}

/// A mock, a hub, the account and the `spring` campaign's trunk with its event channel.
async fn setup(
    scripts: &[(&str, Script)],
) -> (
    Mock,
    Arc<LivekitHub>,
    dialerd::trunk::livekit::LivekitTrunk,
    mpsc::Receiver<TrunkEvent>,
) {
    let scripts: HashMap<String, Vec<Script>> = scripts.iter().map(|(n, s)| (n.to_string(), vec![*s])).collect();
    let mock = Mock::start(scripts, false).await;
    let hub = Arc::new(LivekitHub::new());
    let account = LivekitAccount::new(&settings(&mock.url), Arc::clone(&hub)).unwrap();
    let (tx, rx) = mpsc::channel(64);
    let trunk = account.trunk("spring", &file(), tx);
    (mock, hub, trunk, rx)
}

#[tokio::test]
async fn the_adapter_s_requests_pass_the_mock_s_grant_checks() {
    let answer = Script::Answer {
        ring_ms: 50,
        talk_ms: 60_000,
    };
    let (mock, _hub, trunk, mut rx) = setup(&[("+12122201000", answer)]).await;
    let room = trunk.dial(request(7, "+12122201000")).await.unwrap();
    assert_eq!(room, "dialerd-spring-7-1");
    let ev = next(&mut rx).await;
    assert_eq!((ev.key.contact, ev.call_id.as_str()), (7, room.as_str()));
    assert_eq!(ev.event, CallEvent::Answered(AnswerKind::Unknown));
    let open = |contact: i64, call_id: Option<&str>| OpenCall {
        campaign: "spring".into(),
        key: AttemptKey { contact, attempt: 1 },
        call_id: call_id.map(str::to_string),
        to: "+12122201000".into(),
        claimed_at: chrono::Utc::now(),
        voicemail_message: None,
        safe_harbor_message: None,
    };
    // Found by its stored id, and by the room name alone when the id was never stored.
    let live = Recovered::Live {
        call_id: room.clone(),
        answered: true,
        amd: None,
    };
    assert_eq!(trunk.recover(&open(7, Some(&room))).await, live);
    assert_eq!(trunk.recover(&open(7, None)).await, live);
    assert_eq!(trunk.recover(&open(8, None)).await, Recovered::Unknown);
    mock.seen(|s| {
        assert!(s.refused.is_empty(), "{:?}", s.refused);
        let d = &s.dispatches[0];
        assert_eq!(
            (d.agent_name.as_str(), d.room.as_str()),
            ("renewals-agent", room.as_str())
        );
        let meta: serde_json::Value = serde_json::from_str(&d.metadata).unwrap();
        assert_eq!(meta["contact"], 7);
        assert_eq!(meta["attempt"], 1);
        assert_eq!(meta["agent_id"], "agent_456");
        assert_eq!(
            meta["safe_harbor_message"],
            "This is Acme; we will call you back at +1 415 555 0100."
        );
        let dial = &s.dials[0];
        assert!(!dial.json, "livekit-api speaks protobuf");
        let r = &dial.request;
        assert_eq!(r.sip_trunk_id, "ST_outbound");
        assert_eq!(r.sip_call_to, "+12122201000");
        assert_eq!(r.sip_number, "+14155550100");
        assert_eq!(r.participant_identity, "callee");
        assert!(r.wait_until_answered);
        assert_eq!(r.ringing_timeout.as_ref().map(|d| d.seconds), Some(20));
        assert_eq!(r.max_call_duration.as_ref().map(|d| d.seconds), Some(900));
    });

    // A person with no free agent slot: the agent is asked to play the safe-harbor message, then
    // the room is deleted after message_timeout.
    trunk.act(&room, AnswerAction::PlaySafeHarbor).await.unwrap();
    mock.seen(|s| {
        let (r, meta) = &s.room_metadata[0];
        assert_eq!(r, &room);
        let meta: serde_json::Value = serde_json::from_str(meta).unwrap();
        assert_eq!(meta["action"], "safe_harbor");
        assert_eq!(
            meta["message"],
            "This is Acme; we will call you back at +1 415 555 0100."
        );
        assert!(s.deleted_rooms.is_empty());
    });
    // A second action on an ending call changes nothing.
    trunk.act(&room, AnswerAction::Hangup).await.unwrap();
    assert!(mock.seen(|s| s.deleted_rooms.is_empty() && s.room_metadata.len() == 1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(mock.seen(|s| s.deleted_rooms.clone()), std::slice::from_ref(&room));
    // Once the room is gone, or for a call never placed, an action is refused.
    for r in [room.as_str(), "dialerd-spring-99-1"] {
        assert!(matches!(
            trunk.act(r, AnswerAction::Hangup).await,
            Err(TrunkError::Rejected(_))
        ));
    }
    assert_eq!(mock.seen(|s| s.deleted_rooms.len()), 1);
}

#[tokio::test]
async fn a_hangup_deletes_the_room() {
    let answer = Script::Answer {
        ring_ms: 10,
        talk_ms: 60_000,
    };
    let (mock, _hub, trunk, mut rx) = setup(&[("+12122201001", answer)]).await;
    let room = trunk.dial(request(8, "+12122201001")).await.unwrap();
    assert_eq!(next(&mut rx).await.event, CallEvent::Answered(AnswerKind::Unknown));
    trunk.act(&room, AnswerAction::ConnectAgent).await.unwrap();
    assert!(mock.seen(|s| s.deleted_rooms.is_empty() && s.room_metadata.is_empty()));
    trunk.act(&room, AnswerAction::Hangup).await.unwrap();
    assert_eq!(mock.seen(|s| s.deleted_rooms.clone()), [room]);
}

#[tokio::test]
async fn each_sip_status_ends_the_call_with_its_outcome() {
    let cases = [
        (486, EndReason::Busy, Outcome::Busy),
        (600, EndReason::Busy, Outcome::Busy),
        (603, EndReason::Busy, Outcome::Busy),
        (480, EndReason::NoAnswer, Outcome::NoAnswer),
        (408, EndReason::NoAnswer, Outcome::NoAnswer),
        (487, EndReason::NoAnswer, Outcome::NoAnswer),
        (404, EndReason::Failed, Outcome::Failed),
        (503, EndReason::Failed, Outcome::Failed),
    ];
    let numbers: Vec<String> = (0..cases.len()).map(|i| format!("+1212220{:04}", 1100 + i)).collect();
    let scripts: Vec<(&str, Script)> = numbers
        .iter()
        .zip(cases)
        .map(|(n, (code, _, _))| (n.as_str(), Script::Sip { code, ring_ms: 20 }))
        .collect();
    let (mock, _hub, trunk, mut rx) = setup(&scripts).await;
    for (i, (code, reason, outcome)) in cases.into_iter().enumerate() {
        let room = trunk.dial(request(i as i64, &numbers[i])).await.unwrap();
        let ev = next(&mut rx).await;
        assert_eq!(ev.call_id, room);
        assert_eq!(ev.event, CallEvent::Ended(reason), "SIP {code}");
        let call = Call::new(1, ev.at);
        assert_eq!(call.outcome(reason), outcome, "SIP {code}");
    }
    // Each failed dial's room is deleted, so the dispatched agent leaves.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mock.seen(|s| s.deleted_rooms.len()), cases.len());
    assert!(mock.seen(|s| s.refused.is_empty()));
}

/// A Twirp request in JSON with a token of `grants` (and optionally the SIP `call` grant).
async fn json_request(
    mock: &Mock,
    method: &str,
    body: serde_json::Value,
    video: VideoGrants,
    sip_call: bool,
    secret: &str,
) -> (u16, serde_json::Value) {
    let mut token = AccessToken::with_api_key(API_KEY, secret).with_grants(video);
    if sip_call {
        token = token.with_sip_grants(SIPGrants {
            call: true,
            ..Default::default()
        });
    }
    let resp = reqwest::Client::new()
        .post(format!("{}/twirp/{method}", mock.url))
        .bearer_auth(token.to_jwt().unwrap())
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_mock_speaks_json_and_refuses_a_token_without_the_method_s_grant() {
    let mock = Mock::start(HashMap::new(), false).await;
    let dispatch = serde_json::json!({"agentName": "renewals-agent", "room": "dialerd-spring-1-1", "metadata": "{}"});
    let admin = |room: &str| VideoGrants {
        room_admin: true,
        room: room.into(),
        ..Default::default()
    };
    let (st, body) = json_request(
        &mock,
        "livekit.AgentDispatchService/CreateDispatch",
        dispatch.clone(),
        admin("dialerd-spring-1-1"),
        false,
        API_SECRET,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["agentName"], "renewals-agent");
    assert_eq!(body["room"], "dialerd-spring-1-1");
    // roomAdmin for another room, no roomAdmin at all, a token signed with another secret.
    let (st, body) = json_request(
        &mock,
        "livekit.AgentDispatchService/CreateDispatch",
        dispatch.clone(),
        admin("other"),
        false,
        API_SECRET,
    )
    .await;
    assert_eq!((st, body["code"].as_str()), (403, Some("permission_denied")));
    let (st, _) = json_request(
        &mock,
        "livekit.AgentDispatchService/CreateDispatch",
        dispatch.clone(),
        VideoGrants::default(),
        true,
        API_SECRET,
    )
    .await;
    assert_eq!(st, 403);
    let (st, body) = json_request(
        &mock,
        "livekit.AgentDispatchService/CreateDispatch",
        dispatch,
        admin("dialerd-spring-1-1"),
        false,
        "not-the-secret",
    )
    .await;
    assert_eq!((st, body["code"].as_str()), (401, Some("unauthenticated")));
    // CreateSIPParticipant needs sip.call; roomAdmin is not enough.
    let dial = serde_json::json!({"sipTrunkId": "ST_outbound", "sipCallTo": "+12122201200", "roomName": "r1"});
    let (st, _) = json_request(
        &mock,
        "livekit.SIP/CreateSIPParticipant",
        dial.clone(),
        admin("r1"),
        false,
        API_SECRET,
    )
    .await;
    assert_eq!(st, 403);
    // With the grant, an unscripted number fails as SIP 404 does on LiveKit.
    let (st, body) = json_request(
        &mock,
        "livekit.SIP/CreateSIPParticipant",
        dial,
        VideoGrants::default(),
        true,
        API_SECRET,
    )
    .await;
    assert_eq!((st, body["code"].as_str()), (404, Some("not_found")));
    assert_eq!(body["meta"]["sip_status_code"], "404");
    assert_eq!(mock.seen(|s| s.dials.iter().filter(|d| d.json).count()), 1);
    assert_eq!(mock.seen(|s| s.refused.len()), 4);
}

async fn listener(hub: Arc<LivekitHub>) -> String {
    let l = Listener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let mut state = ApiState::new(&base);
    state.livekit = Some(LivekitSurface::new(API_KEY, API_SECRET, hub));
    tokio::spawn(l.serve(router(Arc::new(state), &ApiSettings::default()), std::future::pending()));
    format!("{base}{WEBHOOK_PATH}")
}

fn event(id: &str, kind: &str, room: &str, identity: Option<&str>) -> String {
    let mut ev =
        serde_json::json!({"event": kind, "id": id, "createdAt": "1767225600", "room": {"name": room, "sid": "RM_x"}});
    if let Some(i) = identity {
        ev["participant"] = serde_json::json!({"identity": i, "kind": "SIP"});
    }
    ev.to_string()
}

#[tokio::test]
async fn webhooks_are_verified_deduplicated_and_end_the_call() {
    let hub = Arc::new(LivekitHub::new());
    let (tx, mut rx) = mpsc::channel(16);
    hub.register("spring", "dialerd-", tx);
    let url = listener(Arc::clone(&hub)).await;
    let key = AttemptKey { contact: 7, attempt: 1 };
    let room = "dialerd-spring-7-1";
    hub.dialing("spring", room).await.unwrap();
    hub.dial_result(
        "spring",
        room,
        key,
        dialerd::trunk::livekit::DialResult::Answered,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut rx).await.event, CallEvent::Answered(AnswerKind::Unknown));

    let left = event("EV_1", "participant_left", room, Some("callee"));
    // Tampered: the token signs another body (another room's end).
    let token = livekit_mock::webhook_token(
        &event("EV_1", "participant_left", "dialerd-spring-8-1", Some("callee")),
        API_KEY,
        API_SECRET,
    );
    let resp = reqwest::Client::new()
        .post(&url)
        .header("Authorization", token)
        .body(left.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Signed with another project's secret, or not signed at all.
    assert_eq!(send_signed(&url, &left, API_KEY, "another-secret").await, 401);
    assert_eq!(send_signed(&url, &left, "APIother", API_SECRET).await, 401);
    let unsigned = reqwest::Client::new()
        .post(&url)
        .body(left.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(rx.try_recv().is_err(), "a refused webhook changed nothing");

    // Signed as LiveKit signs: the call ends once, whatever repeats.
    assert_eq!(send_signed(&url, &left, API_KEY, API_SECRET).await, 200);
    let ev = next(&mut rx).await;
    assert_eq!((ev.key, ev.event), (key, CallEvent::Ended(EndReason::Hangup)));
    assert_eq!(send_signed(&url, &left, API_KEY, API_SECRET).await, 200);
    let finished = event("EV_2", "room_finished", room, None);
    assert_eq!(send_signed(&url, &finished, API_KEY, API_SECRET).await, 200);
    // A signed event that is not JSON is a bad request; other rooms are acknowledged and ignored.
    assert_eq!(send_signed(&url, "{not json", API_KEY, API_SECRET).await, 400);
    let other = event("EV_3", "room_finished", "support-desk", None);
    assert_eq!(send_signed(&url, &other, API_KEY, API_SECRET).await, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.try_recv().is_err(), "nothing after the one end");
}
