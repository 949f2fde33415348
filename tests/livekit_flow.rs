//! The example campaign, switched from `kind = "sim"` to `kind = "livekit"`, run to idle by the
//! daemon against the LiveKit mock on loopback (`tests/livekit_mock`): every number plays a script
//! (answered, or SIP 486 / 600 / 603 / 480 / 404 / 408 / 487 after ringing) and the mock posts
//! its signed webhooks twice. Every attempt gets the script's outcome, no contact is dialled past
//! `max_attempts` or twice at once, every request passes the mock's grant checks, and neither the
//! API key nor the secret appears in the daemon's log.

#[path = "common/mod.rs"]
mod common;
#[path = "livekit_mock/mod.rs"]
mod livekit_mock;

use livekit_mock::{API_KEY, API_SECRET, Mock, Script};
use std::collections::HashMap;
use std::time::Duration;

fn phone(i: usize) -> String {
    format!("+1212220{:04}", 2000 + i)
}

const ANSWER: Script = Script::Answer {
    ring_ms: 150,
    talk_ms: 400,
};

fn sip(code: u16) -> Script {
    Script::Sip { code, ring_ms: 100 }
}

/// Each contact's scripts, one per attempt, and the outcome each must give.
fn scripts() -> Vec<(Vec<Script>, Vec<&'static str>)> {
    vec![
        (vec![ANSWER], vec!["human"]),
        (vec![sip(486)], vec!["busy", "busy", "busy"]),
        (vec![sip(600), ANSWER], vec!["busy", "human"]),
        (vec![sip(603)], vec!["busy", "busy", "busy"]),
        (
            vec![sip(480), sip(408), sip(487)],
            vec!["no_answer", "no_answer", "no_answer"],
        ),
        (vec![sip(404)], vec!["failed", "failed", "failed"]),
        (vec![sip(487), ANSWER], vec!["no_answer", "human"]),
    ]
}

/// The example campaign with its trunk switched to LiveKit, its simulator-only `legal_hours`
/// replaced by the `amd_false_positive_rate` a real trunk needs under Ofcom's measure; the contacts
/// are this test's (their numbers are the mock's scripts), in a zone where it is now mid-day,
/// because a real trunk keeps the legal hours.
fn campaign(dir: &std::path::Path, n: usize) {
    use chrono::Timelike;
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/campaigns/example.toml")).unwrap();
    assert!(example.contains("kind = \"sim\""));
    let toml = example
        .replace(
            "kind = \"sim\"",
            "kind = \"livekit\"\n\n[trunk.livekit]\nsip_trunk_id = \"ST_outbound\"\nagent_name = \"renewals-agent\"\nmax_call_duration = \"30m\"",
        )
        .lines()
        // The state rules stay on: only the sim trunk may turn them off.
        .filter(|l| !l.starts_with("state_rules"))
        .map(|l| {
            // What a real trunk needs beyond the kind: the legal hours, and the AMD's measured
            // false-positive rate under Ofcom's measure.
            if l.starts_with("legal_hours") { "amd_false_positive_rate = 0.02" } else { l }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("example.toml"), toml).unwrap();
    let hour = chrono::Utc::now().hour() as i32;
    let offset = (14 - hour).rem_euclid(24);
    let offset = if offset > 12 { offset - 24 } else { offset };
    let zone = match offset {
        0 => "Etc/GMT".to_string(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    let mut csv = String::from("phone,mobile,first_name,last_name,email,timezone,plan,renewal_date\n");
    for i in 0..n {
        csv.push_str(&format!(
            "{},,Name{i},Last{i},n{i}@example.com,{zone},plus,2026-12-21\n",
            phone(i)
        ));
    }
    std::fs::write(dir.join("example-contacts.csv"), csv).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_campaign_on_livekit_runs_to_idle_with_the_mock_s_outcomes() {
    let plan = scripts();
    let by_number: HashMap<String, Vec<Script>> = plan
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (phone(i), s.clone()))
        .collect();
    let mock = Mock::start(by_number, true).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    mock.set_webhook_url(&format!("http://{listen}/v1/trunk/livekit/webhook"));

    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("campaigns");
    std::fs::create_dir(&dir).unwrap();
    campaign(&dir, plan.len());
    let db = root.path().join("d.db");
    let env = [
        ("RUST_LOG", "info,dialerd=debug"),
        ("DIALERD__LISTEN", listen.as_str()),
        ("DIALERD__LIVEKIT__URL", mock.url.as_str()),
        ("DIALERD__LIVEKIT__API_KEY", API_KEY),
        ("DIALERD__LIVEKIT__API_SECRET", API_SECRET),
        ("DIALERD__OUTBOX__DRAIN_TIMEOUT", "1s"),
    ];
    let mut d = common::Daemon::start_env(&dir, &db, true, &[], &env);
    let (status, log) = tokio::task::spawn_blocking(move || {
        let s = d.wait_exit(Duration::from_secs(120));
        (s, d.seen.join("\n"))
    })
    .await
    .unwrap();
    assert!(status.success(), "{log}");
    assert!(!log.contains(API_SECRET), "the API secret is in the log:\n{log}");
    assert!(!log.contains(API_KEY), "the API key is in the log:\n{log}");
    common::assert_status_keeps_secrets(&db, "example", &[API_KEY, API_SECRET]);

    let out = common::run(&["export", "example", "--database", db.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{log}", String::from_utf8_lossy(&out.stderr));
    let mut attempts: HashMap<String, Vec<(u32, String)>> = HashMap::new();
    for r in csv::Reader::from_reader(out.stdout.as_slice()).deserialize::<HashMap<String, String>>() {
        let r = r.unwrap();
        assert!(!r["outcome"].is_empty(), "attempt without an outcome: {r:?}\n{log}");
        attempts
            .entry(r["phone_e164"].clone())
            .or_default()
            .push((r["attempt"].parse().unwrap(), r["outcome"].clone()));
    }
    for (i, (_, want)) in plan.iter().enumerate() {
        let mut got = attempts.get(&phone(i)).cloned().unwrap_or_default();
        got.sort();
        assert!(
            got.iter().all(|(a, _)| *a <= 3),
            "contact {i} past max_attempts: {got:?}"
        );
        let got: Vec<_> = got.into_iter().map(|(_, o)| o).collect();
        assert_eq!(&got, want, "contact {i}\n{log}");
    }

    mock.seen(|s| {
        assert!(
            s.twice_at_once.is_empty(),
            "dialled twice at once: {:?}",
            s.twice_at_once
        );
        assert!(s.refused.is_empty(), "requests refused by the mock: {:?}", s.refused);
        let dials: usize = plan.iter().map(|(_, w)| w.len()).sum();
        assert_eq!(s.dials.len(), dials);
        assert_eq!(s.dispatches.len(), dials, "one agent dispatch per call");
        for dial in &s.dials {
            let r = &dial.request;
            assert_eq!(r.sip_trunk_id, "ST_outbound");
            assert_eq!(r.sip_number, "+14155550100");
            assert!(r.wait_until_answered);
            assert_eq!(r.ringing_timeout.as_ref().map(|t| t.seconds), Some(25));
            assert_eq!(r.max_call_duration.as_ref().map(|t| t.seconds), Some(1800));
            assert!(r.room_name.starts_with("dialerd-example-"), "{}", r.room_name);
        }
        for dispatch in &s.dispatches {
            assert_eq!(dispatch.agent_name, "renewals-agent");
            let meta: serde_json::Value = serde_json::from_str(&dispatch.metadata).unwrap();
            assert_eq!(meta["campaign"], "example");
            assert_eq!(meta["call_id"], dispatch.room.as_str());
            assert!(
                meta["voicemail_message"].as_str().unwrap().starts_with("Hi Name"),
                "the rendered voicemail message rides with the dispatch: {meta}"
            );
        }
        // Every webhook, and its duplicate, was verified and acknowledged.
        assert!(!s.webhooks.is_empty());
        assert!(s.webhooks.iter().all(|(_, _, st)| *st == 200), "{:?}", s.webhooks);
    });
}
