//! `X-Twilio-Signature` against its reference: Python `twilio`'s `RequestValidator` (installed
//! and named by tests/run.sh in DIALERD_TEST_TWILIO_PYTHON; unset, the tests say they skipped).
//! Callbacks it signs are accepted by the listener, with `public_url` behind a reverse proxy and
//! with or without the default port; a changed parameter, URL or token is refused with 403 and
//! a log line that does not hold the token. Our signature equals the oracle's on varied forms.

use dialerd::api::twilio::{STATUS_PATH, TwilioSurface};
use dialerd::api::{ApiState, Listener, router};
use dialerd::settings::{ApiSettings, Secret};
use dialerd::trunk::twilio::TwilioHub;
use dialerd::trunk::twilio::signature::compute;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc;

const TOKEN: &str = "oracle-auth-token-7f3a";
const PUBLIC: &str = "https://dialer.example.com";

/// One signing question: (auth token, URL, form parameters).
type Case = (String, String, Vec<(String, String)>);

/// Asks Python's RequestValidator for the signature of each case.
fn oracle(cases: &[Case]) -> Option<Vec<String>> {
    let Ok(python) = std::env::var("DIALERD_TEST_TWILIO_PYTHON") else {
        eprintln!("skipped: DIALERD_TEST_TWILIO_PYTHON is not set (tests/run.sh installs Python twilio and sets it)");
        return None;
    };
    let script = r#"
import json, sys
from twilio.request_validator import RequestValidator
out = [RequestValidator(t).compute_signature(u, dict(p)) for t, u, p in json.load(sys.stdin)]
json.dump(out, sys.stdout)
"#;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the oracle failed");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .init();
        logs
    })
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn status_form(seq: &str, status: &str) -> Vec<(String, String)> {
    pairs(&[
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("CallStatus", status),
        ("CallbackSource", "call-progress-events"),
        ("Direction", "outbound-api"),
        ("From", "+14155550100"),
        ("To", "+14155550101"),
        ("SequenceNumber", seq),
        ("Timestamp", "Tue, 01 Dec 2026 21:00:00 +0000"),
    ])
}

#[tokio::test]
async fn callbacks_signed_by_twilio_s_validator_are_accepted_and_changes_refused() {
    let logs = logs();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let local = format!("http://{}", listener.local_addr().unwrap());
    let hub = Arc::new(TwilioHub::new());
    let (tx, mut events) = mpsc::channel(64);
    hub.register("spring", tx);
    let mut state = ApiState::new(PUBLIC);
    state.twilio = Some(TwilioSurface {
        auth_token: Secret::new(TOKEN),
        hub,
        store: None,
    });
    let app = router(Arc::new(state), &ApiSettings::default());
    tokio::spawn(listener.serve(app, std::future::pending()));

    let path = format!("{STATUS_PATH}?campaign=spring&contact=7&attempt=1");
    let signed_url = format!("{PUBLIC}{path}");
    let with_port = format!("{PUBLIC}:443{path}");
    let other_url = format!("{PUBLIC}{STATUS_PATH}?campaign=spring&contact=8&attempt=1");
    let ringing = status_form("1", "ringing");
    let answered = status_form("2", "in-progress");
    let completed = status_form("3", "completed");
    let cases = vec![
        (TOKEN.to_string(), signed_url.clone(), ringing.clone()),
        (TOKEN.to_string(), with_port.clone(), answered.clone()),
        (TOKEN.to_string(), other_url, completed.clone()),
        ("another-token".to_string(), signed_url.clone(), completed.clone()),
        (TOKEN.to_string(), signed_url.clone(), completed.clone()),
    ];
    let Some(sigs) = oracle(&cases) else { return };
    let post = |form: Vec<(String, String)>, sig: String| {
        let url = format!("{local}{path}");
        async move {
            reqwest::Client::new()
                .post(url)
                .header("X-Twilio-Signature", sig)
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    // Accepted: signed for the public URL, and for it with :443.
    assert_eq!(post(ringing.clone(), sigs[0].clone()).await, 204);
    assert_eq!(post(answered.clone(), sigs[1].clone()).await, 204);
    // Refused: signed for another URL, with another token, or a parameter changed after signing.
    assert_eq!(post(completed.clone(), sigs[2].clone()).await, 403);
    assert_eq!(post(completed.clone(), sigs[3].clone()).await, 403);
    let mut changed = completed.clone();
    changed.iter_mut().find(|(k, _)| k == "CallStatus").unwrap().1 = "busy".into();
    assert_eq!(post(changed, sigs[4].clone()).await, 403);
    let mut added = completed.clone();
    added.push(("AnsweredBy".into(), "human".into()));
    assert_eq!(post(added, sigs[4].clone()).await, 403);
    // The untouched callback with the same signature is accepted.
    assert_eq!(post(completed.clone(), sigs[4].clone()).await, 204);

    let mut got = Vec::new();
    while let Ok(ev) = events.try_recv() {
        got.push(ev.event);
    }
    use dialerd::core::{AnswerKind, CallEvent, EndReason};
    assert_eq!(
        got,
        [
            CallEvent::Ringing,
            CallEvent::Answered(AnswerKind::Unknown),
            CallEvent::Ended(EndReason::Hangup)
        ]
    );

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let refusals = text.lines().filter(|l| l.contains("Refused a Twilio callback")).count();
    assert_eq!(refusals, 4, "{text}");
    assert!(!text.contains(TOKEN), "a log line holds the auth token:\n{text}");
}

#[test]
fn our_signature_equals_the_oracle_s_on_varied_forms() {
    let forms: Vec<Vec<(String, String)>> = vec![
        vec![],
        pairs(&[("B", "2"), ("A", "1"), ("a", "0")]),
        pairs(&[("Body", "héllo wörld ✓ & <tags> = + %20"), ("From", "+44 20 7946 0958")]),
        pairs(&[
            ("Empty", ""),
            ("Z", "last"),
            ("SequenceNumber", "10"),
            ("SequenceNumber2", "9"),
        ]),
        pairs(&[("Digits", "1234#*"), ("SpeechResult", "Yes, please call me tomorrow.")]),
    ];
    let urls = [
        "https://dialer.example.com/v1/trunk/twilio/status?campaign=spring&contact=7&attempt=1",
        "http://127.0.0.1:8686/v1/trunk/twilio/amd?campaign=a%20b&contact=1&attempt=2",
        "https://mycompany.com/myapp.php?foo=1&bar=2",
    ];
    let mut cases = Vec::new();
    for (i, f) in forms.iter().enumerate() {
        for u in urls {
            cases.push((format!("tok-{i}"), u.to_string(), f.clone()));
        }
    }
    let Some(expected) = oracle(&cases) else { return };
    for ((token, url, form), want) in cases.iter().zip(expected) {
        assert_eq!(compute(token, url, form), want, "{url} {form:?}");
    }
}
