//! Logs in the journal, end to end: `dialerd run --log-format journald` against a real
//! `systemd-journald` (started by `tests/run.sh`, which sets `DIALERD_TEST_JOURNAL`), read back
//! with `journalctl CAMPAIGN=…`: one "Call ended." entry per attempt with the attempt's own
//! `CONTACT`, `ATTEMPT` and `OUTCOME`, and no secret in any entry.

mod common;

use common::{Daemon, campaign_dir, export};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// The journal entries whose `field` equals `value`, as `journalctl -o json` gives them.
fn journal(field: &str, value: &str) -> Vec<serde_json::Value> {
    let out = Command::new("journalctl")
        .args(["--no-pager", "-o", "json", "--all"])
        .arg(format!("{field}={value}"))
        .output()
        .expect("journalctl");
    assert!(
        out.status.success(),
        "journalctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("journalctl -o json line"))
        .collect()
}

#[test]
fn journalctl_finds_each_call_by_campaign_with_its_fields() {
    if std::env::var_os("DIALERD_TEST_JOURNAL").is_none() {
        eprintln!("SKIPPED: DIALERD_TEST_JOURNAL is unset (tests/run.sh starts systemd-journald and sets it)");
        return;
    }
    // A campaign id no earlier run of this test used, since the journal outlives the test.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("journal{}x{}", std::process::id(), nanos % 1_000_000_000);
    let root = tempfile::tempdir().unwrap();
    let dir = campaign_dir(root.path(), &id, 40, "[trunk.sim]\nseed = 4\ntime_scale = 0.01\n");
    let db = root.path().join("j.db");
    let secret = "whsec-journal-test-not-for-logs";
    let token = "read-token-journal-test-not-for-logs";
    let mut d = Daemon::start_env(
        &dir,
        &db,
        true,
        &["--log-format", "journald"],
        &[
            ("DIALERD__WEBHOOK_SECRET", secret),
            ("DIALERD__API__READ_TOKEN", token),
            ("DIALERD__LISTEN", "127.0.0.1:0"),
        ],
    );
    let status = d.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "dialerd: {status:?}");
    let rows = export(&db, &id);
    assert!(rows.len() >= 40, "every contact was dialled: {} attempts", rows.len());

    // journald writes asynchronously: wait until every attempt's entry is readable.
    let mut ended = Vec::new();
    for _ in 0..100 {
        ended = journal("CAMPAIGN", &id)
            .into_iter()
            .filter(|e| e["MESSAGE"] == "Call ended.")
            .collect();
        if ended.len() >= rows.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut by_attempt = BTreeMap::new();
    for e in &ended {
        assert_eq!(e["SYSLOG_IDENTIFIER"], "dialerd", "{e}");
        // tracing-journald maps INFO to 5 (notice), so `journalctl -p info` still shows it.
        assert_eq!(e["PRIORITY"], "5", "info level: {e}");
        let field = |k: &str| {
            e[k].as_str()
                .unwrap_or_else(|| panic!("{k} missing in {e}"))
                .to_string()
        };
        let key = (
            field("CONTACT").parse::<i64>().unwrap(),
            field("ATTEMPT").parse::<u32>().unwrap(),
        );
        assert!(
            by_attempt.insert(key, field("OUTCOME")).is_none(),
            "attempt {key:?} logged twice"
        );
    }
    let expected: BTreeMap<(i64, u32), String> = rows
        .iter()
        .map(|r| {
            (
                (r.contact_id, r.attempt),
                r.outcome.clone().expect("every attempt ended"),
            )
        })
        .collect();
    assert_eq!(by_attempt, expected, "one entry per attempt, with its outcome");

    // The journal field narrows to one contact as an operator would narrow it.
    let (contact, _) = *expected.keys().next().unwrap();
    let one = journal("CONTACT", &contact.to_string());
    assert!(
        one.iter()
            .any(|e| e["CAMPAIGN"] == id.as_str() && e["MESSAGE"] == "Call ended.")
    );

    let all = serde_json::to_string(&journal("SYSLOG_IDENTIFIER", "dialerd")).unwrap();
    assert!(
        !all.contains(secret) && !all.contains(token),
        "a secret reached the journal"
    );
}
