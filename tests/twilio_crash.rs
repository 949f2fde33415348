//! `kill -9` of the daemon in the middle of a Twilio campaign against the call-flow emulator,
//! then a restart: every attempt left open is looked up at the emulator (`GET Calls/{Sid}.json`,
//! or `GET Calls.json?To=` when its SID was never stored) and closed with the call's real
//! outcome, or followed to its end when the call is still live; none is closed `unknown`.

#[path = "common/mod.rs"]
mod common;
#[path = "twilio_emu/mod.rs"]
mod twilio_emu;

use std::collections::HashMap;
use std::time::Duration;
use twilio_emu::Script;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_campaign_then_restart_closes_every_attempt_with_its_real_outcome() {
    let phones = twilio_emu::phones(5000, 30);
    let p = phones.clone();
    let (emu, url) = twilio_emu::start(move |to, _| {
        let i = p.iter().position(|x| x == to).unwrap();
        match i % 5 {
            // Some end while the daemon is down, some are still live when it comes back.
            0 => Script::Human { talk_ms: 600 },
            1 => Script::Human { talk_ms: 5000 },
            2 => Script::Machine {
                verdict: "machine_end_beep",
                hold_ms: 1500,
            },
            3 => Script::Busy,
            _ => Script::NoAnswer,
        }
    })
    .await;
    emu.lock().unwrap().ring_ms = 400;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("campaigns");
    std::fs::create_dir(&dir).unwrap();
    let dialer = "max_concurrent = 8\ncalls_per_second = 10\nring_timeout = \"20s\"\n\n[retry]\nmax_attempts = 1\ndelay = \"1s\"";
    let extra = "\n[voicemail]\naction = \"leave_message\"\nmessage = \"Hi {{first_name}}, call Acme back.\"\n\n[compliance]\namd_false_positive_rate = 0.02\n";
    twilio_emu::campaign(&dir, "crash", &phones, dialer, extra);
    let db = root.path().join("d.db");
    // One address for both runs: the callbacks of calls placed by the first go to the second.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut env = twilio_emu::env(&url);
    env.retain(|(k, _)| *k != "DIALERD__LISTEN");
    env.push(("DIALERD__LISTEN", listen.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let mut first = common::Daemon::start_env(&dir, &db, true, &[], &env);
    let first = tokio::task::spawn_blocking(move || {
        first.wait_for("outcome=\"connected\"", 3, Duration::from_secs(60));
        first.wait_for("Dialing.", 12, Duration::from_secs(60));
        first.child.kill().unwrap();
        first.child.wait().unwrap();
        first.seen.join("\n")
    })
    .await
    .unwrap();
    // Calls go on at the emulator while the daemon is down; some end.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let mut second = common::Daemon::start_env(&dir, &db, true, &[], &env);
    let (status, log) = tokio::task::spawn_blocking(move || {
        let s = second.wait_exit(Duration::from_secs(120));
        (s, second.seen.join("\n"))
    })
    .await
    .unwrap();
    assert!(status.success(), "{log}");
    let log = format!("--- first run ---\n{first}\n--- second run ---\n{log}");
    let ended = log.matches("closed with its real outcome").count();
    let followed = log.matches("followed to its end").count();
    let released = log.matches("never created this call").count();
    println!("recovered: {ended} ended while down, {followed} followed live, {released} never created");
    assert!(ended + followed > 0, "the kill left no call open:\n{log}");

    let rows = common::export(&db, "crash");
    let e = emu.lock().unwrap();
    assert!(
        e.twice_at_once.is_empty(),
        "dialled twice at once: {:?}",
        e.twice_at_once
    );
    let mut real: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in e.calls.values() {
        real.entry(c.to.as_str()).or_default().push(c.outcome.unwrap_or("open"));
    }
    let mut by_phone: HashMap<String, Vec<String>> = HashMap::new();
    for r in &rows {
        let o = r.outcome.clone().unwrap_or_default();
        assert!(!o.is_empty() && o != "unknown", "attempt closed {o:?}: {r:?}\n{log}");
        by_phone.entry(r.phone_e164.clone()).or_default().push(o);
    }
    for p in &phones {
        assert_eq!(
            by_phone.get(p).cloned().unwrap_or_default(),
            real.get(p.as_str()).cloned().unwrap_or_default(),
            "{p}\n{log}"
        );
    }
}
