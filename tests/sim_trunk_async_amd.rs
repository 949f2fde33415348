//! The sim trunk under `[trunk.sim] amd = "async"`: every answer reaches the runner as
//! `unknown` and is connected at once; the verdict follows and the core moves each machine to
//! the voicemail message, so machines end `voicemail_left` and people `human`, never the other
//! way round.

mod common;

use std::time::Duration;

#[test]
fn machines_answered_first_as_unknown_end_voicemail_left() {
    let root = tempfile::tempdir().unwrap();
    let extra = r#"
[trunk.sim]
seed = 3
time_scale = 0.01
p_human = 0.5
p_machine = 0.5
p_no_answer = 0.0
p_busy = 0.0
p_failed = 0.0
amd = "async"
amd_time = "2s"
"#;
    let dir = common::campaign_dir(root.path(), "amd", 40, extra);
    let db = root.path().join("d.db");
    let mut d = common::Daemon::start(&dir, &db, true);
    let status = d.wait_exit(Duration::from_secs(120));
    let log = d.seen.join("\n");
    assert!(status.success(), "{log}");
    let rows = common::export(&db, "amd");
    let count = |o: &str| rows.iter().filter(|r| r.outcome.as_deref() == Some(o)).count();
    assert_eq!(rows.len(), 40, "{rows:?}");
    assert!(count("voicemail_left") > 5, "{rows:?}");
    assert!(count("human") + count("callback_requested") > 5, "{rows:?}");
    assert_eq!(count("machine") + count("abandoned") + count("unknown"), 0, "{rows:?}");
    // Each machine was connected first, then moved by its verdict.
    assert!(
        log.matches("outcome=\"leaving_voicemail\"").count() >= count("voicemail_left"),
        "{log}"
    );
}
