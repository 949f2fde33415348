//! The HTTP listener over loopback: health, JSON errors for every refusal (unknown route,
//! wrong method, oversized body, slow body, wrong media type, bad signature, bad query, missing
//! field), and that no refused request reaches a campaign while a valid one does.

use dialerd::api::twilio::{STATUS_PATH, TwilioSurface};
use dialerd::api::{ApiState, Listener, router};
use dialerd::core::CallEvent;
use dialerd::settings::{ApiSettings, Secret};
use dialerd::trunk::TrunkEvent;
use dialerd::trunk::twilio::TwilioHub;
use dialerd::trunk::twilio::signature::compute;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const TOKEN: &str = "test-auth-token";

struct Server {
    base: String,
    events: mpsc::Receiver<TrunkEvent>,
}

async fn serve(twilio: bool) -> Server {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hub = Arc::new(TwilioHub::new());
    let (tx, events) = mpsc::channel(64);
    hub.register("spring", tx);
    let mut state = ApiState::new(&base);
    if twilio {
        state.twilio = Some(TwilioSurface {
            auth_token: Secret::new(TOKEN),
            hub,
            store: None,
        });
    }
    let limits = ApiSettings {
        max_body_bytes: 4096,
        request_timeout: Duration::from_millis(500),
        ..ApiSettings::default()
    };
    let app = router(Arc::new(state), &limits);
    tokio::spawn(listener.serve(app, std::future::pending()));
    Server { base, events }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Posts `form` to `path_query`, signed for `base` + `path_query` with `token`.
async fn post_signed(base: &str, path_query: &str, form: &[(&str, &str)], token: &str) -> reqwest::Response {
    let url = format!("{base}{path_query}");
    let sig = compute(token, &url, &pairs(form));
    reqwest::Client::new()
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
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
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    (status, body["error"].as_str().unwrap().to_string())
}

const QUERY: &str = "?campaign=spring&contact=7&attempt=1";
const RINGING: &[(&str, &str)] = &[("CallSid", "CA01"), ("CallStatus", "ringing"), ("SequenceNumber", "1")];

#[tokio::test]
async fn health_answers_ok() {
    let s = serve(false).await;
    let resp = reqwest::get(format!("{}/healthz", s.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn every_refusal_is_json_and_none_reaches_the_campaign() {
    let mut s = serve(true).await;
    let c = reqwest::Client::new();
    let status_url = format!("{}{STATUS_PATH}{QUERY}", s.base);

    let r = c.get(format!("{}/nope", s.base)).send().await.unwrap();
    assert_eq!(error_code(r).await, (404, "not_found".into()));

    let r = c.get(&status_url).send().await.unwrap();
    assert_eq!(error_code(r).await, (405, "method_not_allowed".into()));

    let big = "x".repeat(5000);
    let r = c
        .post(&status_url)
        .form(&[("CallSid", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (413, "payload_too_large".into()));

    let r = c
        .post(&status_url)
        .json(&serde_json::json!({"CallSid": "CA01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (415, "unsupported_media_type".into()));

    // Unsigned, wrongly signed (other token), and signed for another URL: 403.
    let r = c.post(&status_url).form(RINGING).send().await.unwrap();
    assert_eq!(error_code(r).await, (403, "forbidden".into()));
    let r = post_signed(&s.base, &format!("{STATUS_PATH}{QUERY}"), RINGING, "other-token").await;
    assert_eq!(error_code(r).await, (403, "forbidden".into()));
    let sig = compute(
        TOKEN,
        &format!("{}{STATUS_PATH}?campaign=spring&contact=8&attempt=1", s.base),
        &pairs(RINGING),
    );
    let r = c
        .post(&status_url)
        .header("X-Twilio-Signature", sig)
        .form(RINGING)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (403, "forbidden".into()));

    // Signed, but the query has no attempt: 400; a field missing or of an unknown value: 422.
    let r = post_signed(
        &s.base,
        &format!("{STATUS_PATH}?campaign=spring&contact=7"),
        RINGING,
        TOKEN,
    )
    .await;
    assert_eq!(error_code(r).await, (400, "bad_request".into()));
    let no_status = &[("CallSid", "CA01"), ("SequenceNumber", "1")];
    let r = post_signed(&s.base, &format!("{STATUS_PATH}{QUERY}"), no_status, TOKEN).await;
    assert_eq!(error_code(r).await, (422, "unprocessable".into()));
    let odd = &[("CallSid", "CA01"), ("CallStatus", "exploded"), ("SequenceNumber", "1")];
    let r = post_signed(&s.base, &format!("{STATUS_PATH}{QUERY}"), odd, TOKEN).await;
    assert_eq!(error_code(r).await, (422, "unprocessable".into()));
    let bad_seq = &[
        ("CallSid", "CA01"),
        ("CallStatus", "ringing"),
        ("SequenceNumber", "one"),
    ];
    let r = post_signed(&s.base, &format!("{STATUS_PATH}{QUERY}"), bad_seq, TOKEN).await;
    assert_eq!(error_code(r).await, (422, "unprocessable".into()));

    // A campaign that is not running: 404.
    let r = post_signed(
        &s.base,
        &format!("{STATUS_PATH}?campaign=autumn&contact=7&attempt=1"),
        RINGING,
        TOKEN,
    )
    .await;
    assert_eq!(error_code(r).await, (404, "not_found".into()));

    assert!(s.events.try_recv().is_err(), "a refused request reached the campaign");

    // The same callback, signed: 204 and one Ringing event for contact 7, attempt 1.
    let r = post_signed(&s.base, &format!("{STATUS_PATH}{QUERY}"), RINGING, TOKEN).await;
    assert_eq!(r.status(), 204);
    let ev = s.events.try_recv().unwrap();
    assert_eq!((ev.key.contact, ev.key.attempt, ev.event), (7, 1, CallEvent::Ringing));
    assert_eq!(ev.call_id, "CA01");
}

#[tokio::test]
async fn without_an_auth_token_twilio_routes_are_unavailable() {
    let s = serve(false).await;
    let r = post_signed(&s.base, &format!("{STATUS_PATH}{QUERY}"), RINGING, TOKEN).await;
    assert_eq!(error_code(r).await, (503, "unavailable".into()));
}

#[tokio::test]
async fn a_body_slower_than_the_timeout_gets_408() {
    let s = serve(true).await;
    let addr = s.base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {STATUS_PATH}{QUERY} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nCallSid=CA"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(read.is_ok(), "no answer within 5 s");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\":\"timeout\""), "{text}");
}

#[path = "common/mod.rs"]
mod common;

#[test]
fn dialerd_run_serves_health_on_its_listen_address() {
    let dir = tempfile::tempdir().unwrap();
    let campaigns = dir.path().join("campaigns");
    std::fs::create_dir(&campaigns).unwrap();
    let db = dir.path().join("d.db");
    let mut d = common::Daemon::start_env(&campaigns, &db, false, &[], &[("DIALERD__LISTEN", "127.0.0.1:0")]);
    let addr = d.listen_addr(Duration::from_secs(30));
    let line = d
        .seen
        .iter()
        .find(|l| l.contains("HTTP listener started"))
        .unwrap()
        .clone();
    let addr = addr.as_str();
    assert!(line.contains(&format!("public_url=http://{addr}")), "{line}");
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    let mut resp = String::new();
    sock.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp}");
    assert!(resp.ends_with(r#"{"status":"ok"}"#), "{resp}");
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(30)).success(), "{}", d.seen.join("\n"));
}

#[tokio::test]
async fn shuffled_duplicated_status_callbacks_reach_the_campaign_once_in_order() {
    let mut s = serve(true).await;
    let pq = format!("{STATUS_PATH}{QUERY}");
    let cb = |status: &'static str, seq: &'static str| {
        [("CallSid", "CA77"), ("CallStatus", status), ("SequenceNumber", seq)]
    };
    for form in [
        cb("completed", "3"),
        cb("ringing", "1"),
        cb("in-progress", "2"),
        cb("completed", "3"),
        cb("initiated", "0"),
    ] {
        assert_eq!(post_signed(&s.base, &pq, &form, TOKEN).await.status(), 204);
    }
    let mut got = Vec::new();
    while let Ok(ev) = s.events.try_recv() {
        got.push(ev.event);
    }
    use dialerd::core::{AnswerKind, EndReason};
    assert_eq!(
        got,
        [
            CallEvent::Ringing,
            CallEvent::Answered(AnswerKind::Unknown),
            CallEvent::Ended(EndReason::Hangup)
        ]
    );
}

#[tokio::test]
async fn amd_callbacks_are_verified_parsed_and_kept() {
    let s = serve(true).await;
    let pq = format!("{}{QUERY}", dialerd::api::twilio::AMD_PATH);
    let bad = [("CallSid", "CA5"), ("AnsweredBy", "robot")];
    let (status, code) = error_code(post_signed(&s.base, &pq, &bad, TOKEN).await).await;
    assert_eq!((status, code.as_str()), (422, "unprocessable"));
    let good = [
        ("CallSid", "CA5"),
        ("AnsweredBy", "machine_end_beep"),
        ("MachineDetectionDuration", "3100"),
    ];
    let (status, _) = error_code(post_signed(&s.base, &pq, &good, "wrong").await).await;
    assert_eq!(status, 403);
    assert_eq!(post_signed(&s.base, &pq, &good, TOKEN).await.status(), 204);
}
