//! The operator API against a running daemon over loopback: scoped bearer tokens, pause /
//! resume / cancel from the API and the CLI (surviving a restart), `GET /readyz`, and
//! `GET /metrics` parsed by Python's `prometheus_client` and checked against `dialerd export`.

mod common;

use common::{Daemon, campaign_dir, export, http, run, wait_until};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const READ: &str = "read-token-1";
const CONTROL: &str = "control-token-1";

fn start(root: &Path, dir: &Path) -> (Daemon, String) {
    let mut d = Daemon::start_env(
        dir,
        &root.join("d.db"),
        false,
        &[],
        &[
            ("DIALERD__LISTEN", "127.0.0.1:0"),
            ("DIALERD__API__READ_TOKEN", READ),
            ("DIALERD__API__CONTROL_TOKEN", CONTROL),
        ],
    );
    let addr = d.listen_addr(Duration::from_secs(60));
    (d, format!("http://{addr}"))
}

fn campaign(base: &str) -> serde_json::Value {
    let (code, body) = http("GET", &format!("{base}/v1/campaigns/spring"), Some(READ));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn pause_restart_resume_then_cancel_keep_every_invariant() {
    let root = tempfile::tempdir().unwrap();
    let dir = campaign_dir(root.path(), "spring", 300, "[trunk.sim]\ntime_scale = 0.02\n");
    let db = root.path().join("d.db");
    let (mut d, base) = start(root.path(), &dir);
    d.wait_for("Dialing.", 20, Duration::from_secs(60));

    // Tokens: none is 401, a read token cannot pause (403), neither changes anything.
    let pause = format!("{base}/v1/campaigns/spring/pause");
    assert_eq!(http("POST", &pause, None).0, 401);
    assert_eq!(http("POST", &pause, Some("wrong")).0, 401);
    assert_eq!(http("POST", &pause, Some(READ)).0, 403);
    assert_eq!(http("GET", &format!("{base}/v1/campaigns"), None).0, 401);
    assert_eq!(campaign(&base)["control"]["control"], "running");
    assert_eq!(
        http("POST", &format!("{base}/v1/campaigns/autumn/pause"), Some(CONTROL)).0,
        404
    );
    assert_eq!(
        http("POST", &format!("{base}/v1/campaigns/spring/stop"), Some(CONTROL)).0,
        404
    );

    let (code, body) = http("POST", &pause, Some(CONTROL));
    assert_eq!(code, 200, "{body}");
    let rec: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rec["control"], "paused");
    assert_eq!(rec["by"], "api:control");
    let paused_at = chrono::DateTime::parse_from_rfc3339(rec["at"].as_str().unwrap()).unwrap();
    d.wait_for("Campaign paused by the operator", 1, Duration::from_secs(10));
    // Calls in flight end; no attempt starts after the pause.
    wait_until("calls in flight to end", Duration::from_secs(60), || {
        campaign(&base)["in_flight"] == 0
    });
    let before = export(&db, "spring");
    assert!(!before.is_empty());
    for r in &before {
        let started = chrono::DateTime::parse_from_rfc3339(&r.started_at).unwrap();
        assert!(
            started <= paused_at,
            "attempt {r:?} started after the pause at {paused_at}"
        );
        assert!(r.ended_at.is_some(), "{r:?} still open");
    }
    let status = campaign(&base);
    assert_eq!(status["control"]["control"], "paused");
    assert!(status["contacts"]["pending"].as_u64().unwrap_or(0) > 0, "{status}");
    // The ETA: what is left over the pace of the contacts finished so far (all within its
    // 15-minute window, each by exactly one attempt).
    let count = |s: &str| status["contacts"][s].as_u64().unwrap_or(0);
    let eta = &status["eta"];
    assert_eq!(
        eta["remaining"],
        count("pending") + count("scheduled") + count("in_progress"),
        "{eta}"
    );
    assert_eq!(
        eta["finished_in_window"],
        count("done") + count("exhausted") + count("dnc"),
        "{eta}"
    );
    let (window, finished) = (
        eta["window_secs"].as_f64().unwrap(),
        eta["finished_in_window"].as_f64().unwrap(),
    );
    if window >= 10.0 {
        let expected = eta["remaining"].as_f64().unwrap() * window / finished;
        assert!((eta["seconds"].as_f64().unwrap() - expected).abs() < 1e-6, "{eta}");
    } else {
        assert!(eta["seconds"].is_null(), "no ETA from under 10 s of dialing: {eta}");
    }

    // A restart keeps the pause; nothing is dialled while it lasts.
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(60)).success());
    let (mut d, base) = start(root.path(), &dir);
    d.wait_for("Campaign paused by the operator", 1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(export(&db, "spring").len(), before.len(), "dialled while paused");
    let text = run(&["status", "--database", db.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("control: paused by api:control at"), "{text}");
    assert!(text.contains("  ETA: ") && text.contains("contacts left"), "{text}");

    // The CLI resumes it; the running daemon picks that up and the campaign completes.
    let out = run(&["resume", "spring", "--database", db.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("spring: running (by cli:"));
    d.wait_for("Campaign resumed by the operator", 1, Duration::from_secs(10));
    d.wait_for("Campaign finished", 1, Duration::from_secs(180));
    let rows = export(&db, "spring");
    assert!(rows.len() > before.len());
    let mut per_contact: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for r in &rows {
        assert!(r.ended_at.is_some(), "{r:?} still open");
        per_contact.entry(r.contact_id).or_default().push(r.attempt);
    }
    assert_eq!(per_contact.len(), 300, "every contact was dialled");
    for (c, attempts) in &per_contact {
        let expect: Vec<u32> = (1..=attempts.len() as u32).collect();
        assert_eq!(attempts, &expect, "contact {c}: attempts numbered once each");
        assert!(attempts.len() <= 3, "contact {c}: over max_attempts");
    }

    // Cancel is for good: a resume is refused and changes nothing.
    let (code, body) = http("POST", &format!("{base}/v1/campaigns/spring/cancel"), Some(CONTROL));
    assert_eq!(code, 200, "{body}");
    let (code, body) = http("POST", &format!("{base}/v1/campaigns/spring/resume"), Some(CONTROL));
    assert_eq!(code, 409, "{body}");
    assert_eq!(campaign(&base)["control"]["control"], "cancelled");
    let out = run(&["resume", "spring", "--database", db.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cancelled"));
}

#[test]
fn readyz_and_metrics_agree_with_the_database() {
    let root = tempfile::tempdir().unwrap();
    let dir = campaign_dir(root.path(), "spring", 150, "[trunk.sim]\ntime_scale = 0.02\n");
    let db = root.path().join("d.db");
    let (mut d, base) = start(root.path(), &dir);
    wait_until("ready", Duration::from_secs(30), || {
        http("GET", &format!("{base}/readyz"), None).0 == 200
    });
    assert_eq!(http("GET", &format!("{base}/metrics"), None).0, 401);
    d.wait_for("Campaign finished", 1, Duration::from_secs(180));
    let (code, text) = http("GET", &format!("{base}/metrics"), Some(READ));
    assert_eq!(code, 200);

    // Python's prometheus_client parses the exposition; the parsed samples come back as JSON.
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append({"family": fam.name, "type": fam.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
            .map(|s| s["value"].as_f64().unwrap())
            .sum()
    };

    let rows = export(&db, "spring");
    let dialled = rows.iter().filter(|r| r.attempt > 0).count() as f64;
    assert!(dialled >= 150.0);
    assert_eq!(value("dialerd_dials_total", &[("campaign", "spring")]), dialled);
    let mut by_outcome: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.attempt > 0) {
        *by_outcome.entry(r.outcome.clone().unwrap()).or_default() += 1.0;
    }
    for (outcome, n) in &by_outcome {
        assert_eq!(
            value(
                "dialerd_attempts_closed_total",
                &[("campaign", "spring"), ("outcome", outcome)]
            ),
            *n,
            "outcome {outcome}"
        );
    }
    let closed: f64 = value("dialerd_attempts_closed_total", &[("campaign", "spring")]);
    assert_eq!(closed, dialled);
    // Answers by kind: at least every completed call was answered by a person, none twice.
    let answered = value("dialerd_answers_total", &[("campaign", "spring")]);
    let human = value("dialerd_answers_total", &[("campaign", "spring"), ("kind", "human")]);
    let completed = by_outcome.get("human").copied().unwrap_or(0.0);
    assert!(
        completed > 0.0 && human >= completed,
        "{human} human answers < {completed} human outcomes"
    );
    assert!(answered <= dialled);
    // Gauges read from the store at scrape time.
    let status = common::status(&db);
    let contacts = &status[0]["contacts"];
    for (st, n) in contacts.as_object().unwrap() {
        assert_eq!(
            value("dialerd_contacts", &[("campaign", "spring"), ("status", st)]),
            n.as_f64().unwrap(),
            "contacts {st}"
        );
    }
    assert_eq!(value("dialerd_calls_in_flight", &[("campaign", "spring")]), 0.0);
    assert!(
        samples
            .iter()
            .any(|s| s["name"] == "dialerd_abandonment_ratio" && s["labels"]["window"] == "30d")
    );
    assert!(
        samples
            .iter()
            .any(|s| s["name"] == "dialerd_outbox_jobs" && s["labels"]["state"] == "pending")
    );
    assert!(
        samples
            .iter()
            .any(|s| s["name"] == "dialerd_outbox_oldest_pending_age_seconds")
    );
    assert_eq!(value("dialerd_build_info", &[]), 1.0);
    let (code, body) = http("GET", &format!("{base}/readyz"), None);
    assert_eq!(code, 200, "{body}");
}
