//! The status page in headless Chromium (Debian `chromium`, driven over the DevTools protocol by
//! `tests/peers/page_probe.py`) against a running daemon: it renders every campaign, follows the
//! live event stream, and its figures change as calls complete, within one page load. Skips,
//! saying so, when Chromium or Python's `websocket-client` is missing (`tests/run.sh` installs
//! both). With `DIALERD_SCREENSHOT=FILE` it also writes the README's screenshot.

mod common;

use common::{Daemon, campaign_toml, http, predictive, write_contacts};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const READ: &str = "read-token-page";

#[test]
fn the_page_renders_every_campaign_and_follows_its_calls_live() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("campaigns");
    std::fs::create_dir_all(&dir).unwrap();
    // Slow enough that calls complete all through the page's ten seconds.
    let slow = "[trunk.sim]\ntime_scale = 0.05\n";
    for (id, n, toml) in [
        ("spring", 400, campaign_toml("spring", slow)),
        ("autumn", 300, predictive(&campaign_toml("autumn", slow))),
    ] {
        write_contacts(&dir.join(format!("{id}.csv")), n);
        std::fs::write(dir.join(format!("{id}.toml")), toml).unwrap();
    }
    let mut d = Daemon::start_env(
        &dir,
        &root.path().join("d.db"),
        false,
        &[],
        &[("DIALERD__LISTEN", "127.0.0.1:0"), ("DIALERD__API__READ_TOKEN", READ)],
    );
    let base = format!("http://{}", d.listen_addr(Duration::from_secs(60)));
    d.wait_for("Campaign started", 2, Duration::from_secs(60));

    // The page itself needs no token and carries no data.
    let (code, html) = http("GET", &format!("{base}/"), None);
    assert_eq!(code, 200);
    assert!(html.contains("/v1/events") && !html.contains(READ));

    let shot = std::env::var("DIALERD_SCREENSHOT").ok();
    let mut probe = Command::new("python3");
    probe
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/page_probe.py"))
        .arg(format!("{base}/#token={READ}"))
        .args(["6", "1.5"]);
    if let Some(s) = &shot {
        probe.arg(s);
    }
    let out = probe.output().expect("python3 runs");
    if out.status.code() == Some(2) {
        eprintln!(
            "SKIPPED: status page test: {} (tests/run.sh installs chromium and websocket-client)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    }
    assert!(
        out.status.success(),
        "page probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(samples.len(), 6);

    let ended = |s: &Value, id: &str| -> u64 {
        s["campaigns"][id]["ended"]
            .as_str()
            .unwrap_or_else(|| panic!("campaign {id} not rendered: {s}"))
            .parse()
            .unwrap()
    };
    for s in &samples[1..] {
        for id in ["spring", "autumn"] {
            let c = &s["campaigns"][id];
            assert!(c.is_object(), "campaign {id} missing from the page: {s}");
            for field in [
                "finished",
                "contacts",
                "in_flight",
                "dial_ratio",
                "abandon_24h",
                "abandon_30d",
                "by_status",
            ] {
                assert!(
                    c[field].as_str().is_some_and(|v| !v.is_empty()),
                    "{id}.{field} empty: {s}"
                );
            }
        }
        assert_eq!(s["live"], "live", "the page is not following the event stream: {s}");
    }
    let (first, last) = (&samples[1], &samples[5]);
    assert!(
        last["live_events"].as_u64().unwrap() > first["live_events"].as_u64().unwrap(),
        "no live event reached the page between samples"
    );
    for id in ["spring", "autumn"] {
        assert!(
            ended(last, id) > ended(first, id),
            "{id}: `calls ended` did not move: {first} → {last}"
        );
        assert_eq!(
            last["campaigns"][id]["contacts"].as_str(),
            Some(if id == "spring" { "400" } else { "300" })
        );
    }
    // Each campaign's chart was seeded from its abandonment history and draws both windows.
    assert_eq!(
        last["history"].as_u64(),
        Some(2),
        "history not loaded for both campaigns: {last}"
    );
    assert_eq!(last["charts"].as_u64(), Some(4), "two lines per campaign chart: {last}");
    // What the page shows is what the API says (the API only moves forward meanwhile).
    let (_, body) = http("GET", &format!("{base}/v1/campaigns/spring"), Some(READ));
    let api: Value = serde_json::from_str(&body).unwrap();
    let api_ended: u64 = api["attempts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(ended(last, "spring") <= api_ended);
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(60)).success());
}
