//! The daemon end to end on the sim trunk, with real SQLite files: a campaign runs to
//! completion, survives `kill -9` and a restart with its invariants intact, reloads an edited
//! file without losing progress, pauses a removed one, refuses a broken one while the others run,
//! and exits 0 on SIGTERM.

mod common;

use common::{Daemon, Row, campaign_dir, campaign_toml, export, status};
use std::collections::BTreeMap;
use std::time::Duration;

const FAST_SIM: &str = "[trunk.sim]\nseed = 3\ntime_scale = 0.01\n";

/// Checks the crash-safety invariants on an export: attempts numbered 1..n without gaps, n within
/// `max_attempts`, every attempt closed, and no two attempts of a contact overlapping in time.
fn check_invariants(rows: &[Row], max_attempts: u32) {
    let mut by_contact: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
    // Attempt 0 rows are contacts never dialled (DNC); they have no attempt to check.
    for r in rows.iter().filter(|r| r.attempt > 0) {
        by_contact.entry(r.contact_id).or_default().push(r);
    }
    for (contact, attempts) in by_contact {
        assert!(
            attempts.len() as u32 <= max_attempts,
            "contact {contact} has {} attempts",
            attempts.len()
        );
        for (i, a) in attempts.iter().enumerate() {
            assert_eq!(a.attempt, i as u32 + 1, "contact {contact}: attempts not numbered 1..n");
            assert!(
                a.ended_at.is_some() && a.outcome.is_some(),
                "contact {contact} attempt {} left open",
                a.attempt
            );
            if i > 0 {
                let prev_end = attempts[i - 1].ended_at.as_deref().unwrap();
                assert!(
                    prev_end <= a.started_at.as_str(),
                    "contact {contact}: attempt {} started before {} ended",
                    a.attempt,
                    i
                );
            }
        }
    }
}

fn contacts_by_status(status: &serde_json::Value, campaign: &str) -> BTreeMap<String, u64> {
    let c = status.as_array().unwrap().iter().find(|c| c["id"] == campaign).unwrap();
    serde_json::from_value(c["contacts"].clone()).unwrap()
}

#[test]
fn runs_to_completion_and_logs_every_transition() {
    let tmp = tempfile::tempdir().unwrap();
    // Predictive pacing in the real daemon: the mode goes in [dialer], the safe-harbor message in [compliance].
    let dir = campaign_dir(tmp.path(), "small", 60, FAST_SIM);
    let toml = dir.join("small.toml");
    let predictive = common::predictive(&std::fs::read_to_string(&toml).unwrap());
    std::fs::write(&toml, predictive).unwrap();
    let db = tmp.path().join("d.db");
    let mut d = Daemon::start(&dir, &db, true);
    assert!(d.wait_exit(Duration::from_secs(120)).success());
    let log = d.seen.join("\n");
    assert!(
        !log.contains("later than 2 s"),
        "a safe-harbor message started late:\n{log}"
    );
    let rows = export(&db, "small");
    check_invariants(&rows, 3);
    let dialing = d.seen.iter().filter(|l| l.contains("Dialing.")).count();
    let ended = d.seen.iter().filter(|l| l.contains("Call ended.")).count();
    assert_eq!(dialing, rows.len(), "one Dialing line per attempt");
    assert_eq!(ended, rows.len(), "one Call ended line per attempt");
    for l in d.seen.iter().filter(|l| l.contains("Call ended.")) {
        for field in ["campaign=small", "contact=", "attempt=", "outcome="] {
            assert!(l.contains(field), "`{field}` missing in: {l}");
        }
    }
    let by_status = contacts_by_status(&status(&db), "small");
    assert_eq!(by_status.values().sum::<u64>(), 60);
    assert!(
        by_status
            .keys()
            .all(|k| ["done", "exhausted", "dnc"].contains(&k.as_str())),
        "{by_status:?}\n{log}"
    );
    // Status shows the pacing the runner published and the measured abandonment.
    let st = status(&db);
    let small = st.as_array().unwrap().iter().find(|c| c["id"] == "small").unwrap();
    assert_eq!(small["pacing"]["mode"], "predictive", "{small}");
    let p_human = small["pacing"]["p_human"].as_f64().unwrap();
    assert!(p_human > 0.0 && p_human < 1.0);
    assert!(small["pacing"]["calls_observed"].as_u64().unwrap() > 0, "{small}");
    let humans = rows
        .iter()
        .filter(|r| matches!(r.outcome.as_deref(), Some("human" | "callback_requested" | "abandoned")))
        .count();
    assert_eq!(small["abandonment_24h"]["human"].as_u64().unwrap() as usize, humans);
    // Every disposition in the export comes from the policy's vocabulary.
    assert!(rows.iter().all(|r| {
        r.disposition
            .as_deref()
            .is_some_and(|d| d.parse::<dialerd::core::Disposition>().is_ok())
    }));
}

#[test]
fn kill_9_mid_campaign_then_restart_keeps_invariants() {
    let tmp = tempfile::tempdir().unwrap();
    // Long-ish calls so that some are surely in flight at the kill.
    let dir = campaign_dir(tmp.path(), "crash", 150, "[trunk.sim]\nseed = 9\ntime_scale = 0.05\n");
    let db = tmp.path().join("d.db");
    let mut d = Daemon::start(&dir, &db, true);
    d.wait_for("Dialing.", 40, Duration::from_secs(60));
    d.child.kill().unwrap(); // SIGKILL
    d.child.wait().unwrap();
    let before = export(&db, "crash");
    let open = before.iter().filter(|r| r.ended_at.is_none()).count();
    assert!(open > 0, "the kill should leave attempts open");

    let mut d2 = Daemon::start(&dir, &db, true);
    assert!(d2.wait_exit(Duration::from_secs(180)).success());
    let after = export(&db, "crash");
    check_invariants(&after, 3);
    let unknown = after.iter().filter(|r| r.outcome.as_deref() == Some("unknown")).count();
    assert_eq!(unknown, open, "each attempt left open is closed as unknown, and counts");
    assert!(d2.seen.iter().any(|l| l.contains("closed as unknown")));
    let by_status = contacts_by_status(&status(&db), "crash");
    assert_eq!(by_status.values().sum::<u64>(), 150);
    assert!(
        by_status
            .keys()
            .all(|k| ["done", "exhausted", "dnc"].contains(&k.as_str())),
        "{by_status:?}"
    );
}

#[test]
fn broken_file_is_refused_while_others_run_and_edits_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = campaign_dir(tmp.path(), "good", 30, "[trunk.sim]\nseed = 5\ntime_scale = 0.2\n");
    std::fs::write(
        dir.join("broken.toml"),
        campaign_toml("broken", "").replace("max_concurrent", "max_concurent"),
    )
    .unwrap();
    let db = tmp.path().join("d.db");
    let mut d = Daemon::start(&dir, &db, false);
    d.wait_for("Campaign file refused.", 1, Duration::from_secs(30));
    let refused = d
        .seen
        .iter()
        .find(|l| l.contains("Campaign file refused."))
        .unwrap()
        .clone();
    assert!(
        refused.contains("broken") && refused.contains("max_concurent") && refused.contains("line=14"),
        "{refused}"
    );
    d.wait_for("Dialing.", 5, Duration::from_secs(30));

    // Edit the good file: more slots. Progress is kept: no attempt numbering restarts.
    let edited = campaign_toml("good", "[trunk.sim]\nseed = 5\ntime_scale = 0.2\n")
        .replace("max_concurrent = 10", "max_concurrent = 12");
    std::fs::write(dir.join("good.toml"), edited).unwrap();
    d.wait_for("reloading without losing progress", 1, Duration::from_secs(30));
    // Remove it: the campaign pauses; nothing is deleted.
    std::fs::remove_file(dir.join("good.toml")).unwrap();
    d.wait_for("Campaign paused", 1, Duration::from_secs(30));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(60)).success(), "SIGTERM exits 0");
    assert!(d.seen.iter().any(|l| l.contains("Stopping: no new dials")));
    let rows = export(&db, "good");
    assert!(!rows.is_empty());
    let by_status = contacts_by_status(&status(&db), "good");
    assert_eq!(by_status.values().sum::<u64>(), 30, "nothing deleted: {by_status:?}");
    let st = status(&db);
    let good = st.as_array().unwrap().iter().find(|c| c["id"] == "good").unwrap();
    assert_eq!(good["state"], "paused");
}

#[test]
fn outside_every_window_it_sleeps_and_says_so_once_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    // The campaign starts in the future: every contact is due, no window is open yet.
    let dir = campaign_dir(tmp.path(), "later", 5, FAST_SIM);
    let toml = dir.join("later.toml");
    let src = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        src.replace("[schedule]\n", "[schedule]\nstart_at = 2099-01-05T14:00:00Z\n"),
    )
    .unwrap();
    let db = tmp.path().join("d.db");
    let mut d = Daemon::start_with(&dir, &db, false, &["--log-format", "json"]);
    d.wait_for("Outside every calling window", 1, Duration::from_secs(30));
    // Give it several more ticks: the sleep is announced once, and nothing is dialled.
    std::thread::sleep(Duration::from_secs(3));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(30)).success());
    let lines: Vec<serde_json::Value> = d
        .seen
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let sleeps: Vec<_> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Outside every calling window"))
        })
        .collect();
    assert_eq!(sleeps.len(), 1, "announced once: {sleeps:?}");
    assert_eq!(sleeps[0]["until"], "2099-01-05T14:00:00+00:00");
    assert_eq!(sleeps[0]["campaign"], "later");
    assert!(
        !lines.iter().any(|l| l["message"] == "Dialing."),
        "nothing dialled before the window"
    );
}
