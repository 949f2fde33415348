//! Twilio campaigns against the call-flow emulator (`twilio_emu`): the daemon dials a `kind =
//! "twilio"` campaign through the emulator's `Calls.json`, which plays a scripted call per
//! number (answered; a machine answered first as a person, then `machine_end_beep`; a
//! `machine_end_other` with the hang-up action; a fax; busy; no-answer; failed with SIP 404;
//! 21211; a 429 then an answer) and posts signed callbacks shuffled and duplicated. The campaign
//! runs to idle with the same invariants as on the sim trunk (no contact past `max_attempts`,
//! none dialled twice at once, every attempt with an outcome), every attempt's outcome equals the
//! emulator's, voicemail is left only after `machine_end_*`, and the safe-harbor message reaches
//! a person who found no free slot within 2 s of the answer.

#[path = "common/mod.rs"]
mod common;
#[path = "twilio_emu/mod.rs"]
mod twilio_emu;

use std::collections::HashMap;
use std::time::Duration;
use twilio_emu::{Script, TOKEN};

/// Runs the campaigns in `dir` to idle against the emulator at `url`; returns the log.
async fn run_to_idle(dir: &std::path::Path, db: &std::path::Path, url: &str) -> String {
    let env = twilio_emu::env(url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = common::Daemon::start_env(dir, db, true, &[], &env);
    let (status, log) = tokio::task::spawn_blocking(move || {
        let s = d.wait_exit(Duration::from_secs(150));
        (s, d.seen.join("\n"))
    })
    .await
    .unwrap();
    assert!(status.success(), "{log}");
    assert!(!log.contains(TOKEN), "the auth token is in the log:\n{log}");
    log
}

/// Each number's attempts (attempt, outcome, outcome reason), in attempt order.
fn attempts(db: &std::path::Path, campaign: &str, log: &str) -> HashMap<String, Vec<(u32, String, String)>> {
    let mut out: HashMap<String, Vec<(u32, String, String)>> = HashMap::new();
    for r in common::export(db, campaign) {
        let outcome = r.outcome.clone().unwrap_or_default();
        assert!(!outcome.is_empty(), "attempt without an outcome: {r:?}\n{log}");
        out.entry(r.phone_e164.clone()).or_default().push((
            r.attempt,
            outcome,
            r.outcome_reason.clone().unwrap_or_default(),
        ));
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

fn script(phones: &[String], to: &str, n: usize) -> Script {
    let i = phones.iter().position(|p| p == to).unwrap();
    match (i, n) {
        (0, _) => Script::Human { talk_ms: 300 },
        (1, _) => Script::Machine {
            verdict: "machine_end_beep",
            hold_ms: 5000,
        },
        (2, _) => Script::Busy,
        (3, _) => Script::NoAnswer,
        (4, _) => Script::Failed404,
        (5, _) => Script::Reject21211,
        (6, 1) => Script::TooMany,
        (6, _) => Script::Human { talk_ms: 200 },
        _ => Script::Machine {
            verdict: "fax",
            hold_ms: 5000,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_campaign_runs_to_idle_with_the_emulator_s_outcomes() {
    let phones = twilio_emu::phones(1000, 8);
    let p = phones.clone();
    let (emu, url) = twilio_emu::start(move |to, n| script(&p, to, n)).await;
    // A second campaign hangs up on machines: its `machine_end_other` ends `machine`.
    let hang_phones = twilio_emu::phones(1100, 1);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("campaigns");
    std::fs::create_dir(&dir).unwrap();
    let dialer = "max_concurrent = 4\ncalls_per_second = 20\nring_timeout = \"20s\"\n\n[retry]\nmax_attempts = 2\ndelay = \"1s\"\nno_answer = \"1s\"\nbusy = \"1s\"";
    let leave = "\n[voicemail]\naction = \"leave_message\"\nmessage = \"Hi {{first_name}}, this is Acme. Call us back.\"\n\n[compliance]\namd_false_positive_rate = 0.02\n";
    twilio_emu::campaign(&dir, "flow", &phones, dialer, leave);
    let flow_file = dir.join("flow.toml");
    let recorded = std::fs::read_to_string(&flow_file)
        .unwrap()
        .replace("kind = \"twilio\"\n", "kind = \"twilio\"\nrecord = true\n");
    std::fs::write(&flow_file, recorded).unwrap();
    let hang = "\n[voicemail]\naction = \"hangup\"\n\n[compliance]\namd_false_positive_rate = 0.02\n";
    twilio_emu::campaign(&dir, "hang", &hang_phones, dialer, hang);
    {
        let hp = hang_phones[0].clone();
        let p = phones.clone();
        emu.lock().unwrap().script = Box::new(move |to, n| {
            if to == hp {
                Script::Machine {
                    verdict: "machine_end_other",
                    hold_ms: 5000,
                }
            } else {
                script(&p, to, n)
            }
        });
    }
    let db = root.path().join("d.db");
    let log = run_to_idle(&dir, &db, &url).await;
    common::assert_status_keeps_secrets(&db, "flow", &[TOKEN]);

    let flow = attempts(&db, "flow", &log);
    let of = |i: usize| flow.get(&phones[i]).cloned().unwrap_or_default();
    let outcomes = |i: usize| of(i).into_iter().map(|(_, o, _)| o).collect::<Vec<_>>();
    assert_eq!(outcomes(0), ["human"], "{log}");
    // Answered first (as `unknown`, connected to the agent), then machine_end_beep.
    assert_eq!(outcomes(1), ["voicemail_left"], "{log}");
    assert_eq!(outcomes(2), ["busy", "busy"], "{log}");
    assert_eq!(outcomes(3), ["no_answer", "no_answer"], "{log}");
    assert_eq!(outcomes(4), ["failed", "failed"], "{log}");
    // 21211: failed once with the code as its reason, never dialled again.
    assert_eq!(of(5).len(), 1, "{log}");
    assert_eq!(of(5)[0].1, "failed");
    assert!(of(5)[0].2.starts_with("twilio 21211"), "{:?}", of(5));
    // The 429 created nothing and is not an attempt: the answered call is attempt 1.
    assert_eq!(of(6), [(1, "human".to_string(), String::new())], "{log}");
    // A fax is hung up on, even in a campaign that leaves messages.
    assert_eq!(outcomes(7), ["machine", "machine"], "{log}");
    let hang = attempts(&db, "hang", &log);
    assert_eq!(
        hang[&hang_phones[0]].iter().map(|a| a.1.as_str()).collect::<Vec<_>>(),
        ["machine", "machine"]
    );

    // `record = true`: every answered call of `flow` has the recording Twilio reported, and
    // `hang` (which does not record) has none.
    let store = dialerd::store::Store::open(db.to_str().unwrap()).await.unwrap();
    let mut stored = HashMap::new();
    for campaign in ["flow", "hang"] {
        let filter = dialerd::store::ConversationFilter {
            campaign: Some(campaign.into()),
            limit: 500,
            ..Default::default()
        };
        for c in store.conversations(&filter).await.unwrap().0 {
            if let Some(url) = c.recording_url {
                assert_eq!(campaign, "flow", "{} recorded without record = true", c.id);
                stored.insert(c.trunk_call_id.clone(), url);
            }
        }
    }
    let e = emu.lock().unwrap();
    let posted: HashMap<String, String> = e
        .recorded
        .iter()
        .map(|sid| (sid.clone(), twilio_emu::recording_url(sid)))
        .collect();
    assert!(!posted.is_empty(), "no recording was posted");
    assert_eq!(
        stored, posted,
        "every recording Twilio reported is stored with its call"
    );
    for c in e.calls.values() {
        assert_eq!(
            c.recording_cb.is_some(),
            phones.contains(&c.to),
            "Record=true only for `flow`"
        );
    }
    assert!(
        e.twice_at_once.is_empty(),
        "dialled twice at once: {:?}",
        e.twice_at_once
    );
    assert_eq!(e.creates[&phones[5]], 1, "21211 was dialled again");
    assert_eq!(e.creates[&phones[6]], 2, "the 429 then the call");
    // Every attempt's outcome is the emulator's, call by call.
    let mut real: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut sids: Vec<_> = e.calls.keys().collect();
    sids.sort();
    for sid in sids {
        let c = &e.calls[sid];
        real.entry(c.to.as_str()).or_default().push(c.outcome.unwrap_or("open"));
    }
    for (to, list) in flow.iter().chain(hang.iter()) {
        let ours: Vec<&str> = list.iter().filter(|a| a.2.is_empty()).map(|a| a.1.as_str()).collect();
        assert_eq!(ours, real.get(to.as_str()).cloned().unwrap_or_default(), "{to}\n{log}");
    }
    // Voicemail only after machine_end_*: the one `<Say>` went to the machine_end_beep call.
    for (sid, c) in &e.calls {
        for (_, u) in &c.updates {
            if u.starts_with("<Response><Say>") {
                assert_eq!(c.answered_by, Some("machine_end_beep"), "{sid}: {u}");
                assert_eq!(
                    u,
                    "<Response><Say>Hi Name1, this is Acme. Call us back.</Say><Hangup/></Response>"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_harbor_reaches_the_second_of_two_answers_within_2_s() {
    // One agent slot; people answer fast. Ratio pacing dials two at once as soon as enough
    // person-answered calls give the abandonment cap room, and the second answer finds no slot.
    let phones = twilio_emu::phones(3000, 40);
    let (emu, url) = twilio_emu::start(|_, _| Script::Human { talk_ms: 150 }).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("campaigns");
    std::fs::create_dir(&dir).unwrap();
    let dialer = "mode = \"ratio\"\nratio = 2.0\nmax_dial_ratio = 2.0\nmax_concurrent = 1\ncalls_per_second = 20\nring_timeout = \"20s\"\n\n[retry]\nmax_attempts = 1\ndelay = \"1s\"";
    let extra = "\n[compliance]\nabandon_policy = \"us_tsr\"\nsafe_harbor_message = \"This is Acme calling; we will call you back at +1 415 555 0100.\"\n";
    twilio_emu::campaign(&dir, "harbor", &phones, dialer, extra);
    let db = root.path().join("d.db");
    let log = run_to_idle(&dir, &db, &url).await;
    let rows = attempts(&db, "harbor", &log);
    let abandoned = rows.values().flatten().filter(|a| a.1 == "abandoned").count();
    assert!(abandoned >= 1, "no call was abandoned: {rows:?}\n{log}");
    let e = emu.lock().unwrap();
    let mut harbored = 0;
    for c in e.calls.values() {
        for (at, u) in &c.updates {
            assert!(u.contains("This is Acme calling"), "{u}");
            let answered = c.answered_at.expect("updated before it was answered");
            let waited = at.duration_since(answered);
            println!("safe-harbor update {waited:?} after the answer callback");
            // The FTC TSR bound (16 CFR 310.4(b)(4)(iii)), not a speed benchmark.
            assert!(
                waited < Duration::from_secs(2),
                "safe-harbor {waited:?} after the answer"
            );
            harbored += 1;
        }
    }
    assert_eq!(harbored, abandoned, "{log}");
    for (to, list) in &rows {
        let real: Vec<_> = e
            .calls
            .values()
            .filter(|c| &c.to == to)
            .map(|c| c.outcome.unwrap())
            .collect();
        assert_eq!(list.iter().map(|a| a.1.as_str()).collect::<Vec<_>>(), real, "{to}");
    }
}
