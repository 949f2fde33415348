//! The HTTP API against its own OpenAPI file (`GET /v1/openapi.json`), checked by schemathesis
//! (PyPI) over loopback on a daemon that has run a campaign, so the conversations have data:
//! no 5xx, every status and body as documented, and no operation that answers without a token.
//! The live stream (`/v1/events`, which never ends) is left to `tests/conversations_api.rs`.
//! Skips, saying so, when the `schemathesis` command is missing (`tests/run.sh` installs it).

mod common;

use common::{Daemon, campaign_dir, http};
use std::process::Command;
use std::time::Duration;

const READ: &str = "read-token-schema";

#[test]
fn the_api_answers_as_its_openapi_file_says() {
    if Command::new("schemathesis").arg("--version").output().is_err() {
        eprintln!("SKIPPED: schemathesis is not installed (tests/run.sh installs it from PyPI)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = campaign_dir(
        root.path(),
        "spring",
        60,
        "[trunk.sim]\ntime_scale = 0.02\n\n[analysis]\n",
    );
    let mut d = Daemon::start_env(
        &dir,
        &root.path().join("d.db"),
        false,
        &[],
        &[
            ("DIALERD__LISTEN", "127.0.0.1:0"),
            ("DIALERD__API__READ_TOKEN", READ),
            ("DIALERD__API__AGENT_TOKEN", "agent-token-schema"),
        ],
    );
    let base = format!("http://{}", d.listen_addr(Duration::from_secs(60)));
    d.wait_for("Campaign finished", 1, Duration::from_secs(120));

    // Every documented operation refuses a request without a token (the agent's route included).
    let (code, spec) = http("GET", &format!("{base}/v1/openapi.json"), None);
    assert_eq!(code, 200);
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op["security"].as_array().is_none_or(|s| s.is_empty()) {
                continue;
            }
            let url = format!(
                "{base}{}",
                path.replace("{id}", "spring")
                    .replace("{action}", "pause")
                    .replace("{call_id}", "c1a1")
            );
            let (code, body) = http(&method.to_uppercase(), &url, None);
            assert_eq!(code, 401, "{method} {path} without a token: {body}");
        }
    }

    let report = root.path().join("schemathesis.txt");
    let out = Command::new("schemathesis")
        .args(["run", &format!("{base}/v1/openapi.json")])
        .args(["-H", &format!("Authorization: Bearer {READ}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ignored_auth",
        ])
        .args(["--exclude-path", "/v1/events"])
        .args(["--max-examples", "40", "--workers", "1", "--request-timeout", "10", "--seed", "1"])
        .env("NO_COLOR", "1")
        .current_dir(root.path())
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&report, &text).unwrap();
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    assert!(text.contains("passed"), "schemathesis ran nothing:\n{text}");
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(60)).success());
}
