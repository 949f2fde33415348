//! `dialerd receive`, the operator's webhook receiver, over loopback: it answers 200 to a body
//! signed with the daemon's secret and appends it to `--out` byte for byte; it answers 401 to a
//! forged, tampered or unsigned body and writes nothing; and, run as the binary with the secret
//! from `DIALERD__WEBHOOK_SECRET`, it receives and verifies what a real daemon run sends.

mod analysis_common;
mod common;

use dialerd::analysis::receiver::{Receiver, ReceiverError};
use dialerd::analysis::webhook::sign;
use dialerd::settings::Secret;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

const SECRET: &str = "receiver-secret";

async fn post(url: &str, body: &str, signature: Option<&str>, id: &str) -> u16 {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Event-Type", "call_ended")
        .header("X-Webhook-Id", id)
        .body(body.to_string());
    if let Some(s) = signature {
        req = req.header("X-Webhook-Signature", s);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_good_signatures_and_refuses_bad_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("events.jsonl");
    let rx = Receiver::bind("127.0.0.1:0".parse().unwrap(), Some(Secret::new(SECRET)), Some(&out))
        .await
        .unwrap();
    let url = format!("http://{}/hooks/dialerd", rx.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rx.serve(async {
        let _ = stop_rx.await;
    }));

    let good = r#"{"event":"call_ended","request_id":"evt_1","data":{"call_id":"c1a1","duration_s":12.5}}"#;
    let other = r#"{"event":"call_ended","request_id":"evt_2","data":{"call_id":"c2a1"}}"#;
    let good_sig = sign(SECRET.as_bytes(), good.as_bytes());
    assert_eq!(post(&url, good, Some(&good_sig), "evt_1").await, 200);
    // Signed with another secret.
    let forged = sign(b"not-the-secret", other.as_bytes());
    assert_eq!(post(&url, other, Some(&forged), "evt_2").await, 401);
    // A valid signature of a different body (tampered in transit).
    assert_eq!(post(&url, other, Some(&good_sig), "evt_2").await, 401);
    // No signature, and a malformed one.
    assert_eq!(post(&url, other, None, "evt_2").await, 401);
    assert_eq!(post(&url, other, Some("sha256=zz"), "evt_2").await, 401);
    // Signed but not JSON.
    let text = "hello";
    assert_eq!(
        post(&url, text, Some(&sign(SECRET.as_bytes(), text.as_bytes())), "evt_3").await,
        400
    );
    // A resend of the same event is accepted again (delivery is at least once).
    assert_eq!(post(&url, good, Some(&good_sig), "evt_1").await, 200);
    let get = reqwest::get(&url).await.unwrap().status().as_u16();
    assert_eq!(get, 405);

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        written,
        format!("{good}\n{good}\n"),
        "only verified bodies, byte for byte"
    );
}

#[tokio::test]
async fn refuses_to_start_without_a_secret() {
    let addr = "127.0.0.1:0".parse().unwrap();
    assert!(matches!(
        Receiver::bind(addr, None, None).await,
        Err(ReceiverError::NoSecret)
    ));
    assert!(matches!(
        Receiver::bind(addr, Some(Secret::new("")), None).await,
        Err(ReceiverError::NoSecret)
    ));
}

/// The `dialerd receive` process, killed when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_verifies_what_the_daemon_sends() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("events.jsonl");
    let mut child = common::bin()
        .args(["--log-format", "json", "receive", "--listen", "127.0.0.1:0", "--out"])
        .arg(&out)
        .env("RUST_LOG", "info")
        .env("DIALERD__WEBHOOK_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Running)
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<Value>();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let addr = loop {
        let v = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the receiver never said where it listens");
        if let Some(a) = v["listen"].as_str() {
            break a.to_string();
        }
    };
    let url = format!("http://{addr}/hooks/dialerd");

    // A small campaign whose events go to the receiver, signed with the same secret.
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
webhook_events = ["call_started", "call_ended", "call_analyzed"]
"#
    );
    let dir = common::campaign_dir(tmp.path(), "rx", 3, &extra);
    let db = tmp.path().join("d.db");
    let env = [
        ("DIALERD__WEBHOOK_SECRET", SECRET),
        ("DIALERD__OUTBOX__BACKOFF_BASE", "50ms"),
    ];
    let mut d = common::Daemon::start_env(&dir, &db, true, &[], &env);
    let status = tokio::task::spawn_blocking(move || (d.wait_exit(Duration::from_secs(120)), d))
        .await
        .unwrap();
    assert!(status.0.success(), "{}", status.1.seen.join("\n"));
    // A forged request to the same process.
    let body = r#"{"event":"call_ended"}"#;
    let forged = sign(b"wrong", body.as_bytes());
    assert_eq!(post(&url, body, Some(&forged), "evt_forged").await, 401);

    // Collect the receiver's log lines until the forged one is seen.
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = lines.recv_timeout(left).expect("the forged request was never logged");
        if v["webhook_id"] == "evt_forged" {
            assert_eq!(v["signature"], "invalid");
            assert_eq!(v["level"], "WARN");
            break;
        }
        if v["message"] == "Webhook received." {
            received.push(v);
        }
    }
    assert_eq!(received.len(), 9, "3 calls × call_started, call_ended, call_analyzed");
    assert!(received.iter().all(|v| v["signature"] == "valid"));
    let events: Vec<&str> = received.iter().filter_map(|v| v["event"].as_str()).collect();
    assert_eq!(events.iter().filter(|e| **e == "call_analyzed").count(), 3);

    // The out file holds those 9 envelopes; ids in the file match the logged X-Webhook-Id.
    let text = std::fs::read_to_string(&out).unwrap();
    let bodies: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(bodies.len(), 9);
    let pairs = |v: &[Value], id: &str| {
        let mut p: Vec<(String, String)> = v.iter().map(|x| (x[id].to_string(), x["event"].to_string())).collect();
        p.sort();
        p
    };
    assert_eq!(pairs(&received, "webhook_id"), pairs(&bodies, "request_id"));
    let analysed = bodies.iter().find(|b| b["event"] == "call_analyzed").unwrap();
    assert!(analysed["data"]["transcript"].as_array().is_some_and(|t| !t.is_empty()));
    assert!(analysed["data"]["metrics"]["duration_s"].as_f64().unwrap() > 0.0);
}
