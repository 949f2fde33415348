//! The conversations API and the live events stream against a running daemon over loopback:
//! every call record is listed exactly once through the cursor, newest first; each filter keeps
//! exactly the records `dialerd export` says it should; one record's fields agree with its
//! transcript and analysis; refusals are 400 / 401 / 404 with the parameter named; a campaign's
//! abandonment history ends at what its status says. And
//! `GET /v1/events` streams one `ended` event per attempt that `dialerd export` shows.

mod common;

use common::{Daemon, campaign_toml, export, http, wait_until, write_contacts};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

const READ: &str = "read-token-conv";

fn start(root: &Path, dir: &Path) -> (Daemon, String) {
    let mut d = Daemon::start_env(
        dir,
        &root.join("d.db"),
        false,
        &[],
        &[("DIALERD__LISTEN", "127.0.0.1:0"), ("DIALERD__API__READ_TOKEN", READ)],
    );
    let addr = d.listen_addr(Duration::from_secs(60));
    (d, format!("http://{addr}"))
}

fn get(url: &str) -> Value {
    let (code, body) = http("GET", url, Some(READ));
    assert_eq!(code, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn add_campaign(dir: &Path, id: &str, n: usize) {
    write_contacts(&dir.join(format!("{id}.csv")), n);
    let toml = campaign_toml(id, "[trunk.sim]\ntime_scale = 0.02\n\n[analysis]\n");
    std::fs::write(dir.join(format!("{id}.toml")), toml).unwrap();
}

/// Every page of `query` through the cursor, with `limit` per page.
fn walk(base: &str, query: &str, limit: u32) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/conversations?limit={limit}{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = get(&url);
        let items = page["conversations"].as_array().unwrap().clone();
        assert!(items.len() <= limit as usize);
        all.extend(items);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return all,
        }
    }
}

#[test]
fn conversations_are_listed_filtered_and_read_as_the_database_has_them() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("campaigns");
    std::fs::create_dir_all(&dir).unwrap();
    add_campaign(&dir, "spring", 80);
    add_campaign(&dir, "autumn", 40);
    let (mut d, base) = start(root.path(), &dir);
    d.wait_for("Campaign finished", 2, Duration::from_secs(180));
    let db = root.path().join("d.db");
    let rows: Vec<_> = ["spring", "autumn"]
        .iter()
        .flat_map(|c| export(&db, c))
        .filter(|r| r.attempt > 0)
        .collect();

    // Every call record once, newest end first, through pages of 7.
    let all = walk(&base, "", 7);
    let ids: Vec<&str> = all.iter().map(|c| c["id"].as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a conversation listed twice");
    let expected: BTreeSet<String> = rows
        .iter()
        .map(|r| format!("c{}a{}", r.contact_id, r.attempt))
        .collect();
    assert_eq!(unique, expected.iter().map(String::as_str).collect());
    let ends: Vec<(&str, &str)> = all
        .iter()
        .map(|c| (c["ended_at"].as_str().unwrap(), c["id"].as_str().unwrap()))
        .collect();
    assert!(ends.windows(2).all(|w| w[0] >= w[1]), "not newest first");

    // Each filter keeps exactly what the export says.
    let count = |pred: &dyn Fn(&common::Row) -> bool| rows.iter().filter(|r| pred(r)).count();
    let human = walk(&base, "&outcome=human", 50);
    assert!(!human.is_empty());
    assert!(human.iter().all(|c| c["outcome"] == "human"));
    assert_eq!(human.len(), count(&|r| r.outcome.as_deref() == Some("human")));
    let autumn = walk(&base, "&campaign=autumn", 500);
    assert_eq!(autumn.len(), count(&|r| r.campaign == "autumn"));
    let contact = all[0]["contact_id"].as_i64().unwrap();
    let of_contact = walk(&base, &format!("&contact={contact}"), 500);
    assert_eq!(of_contact.len(), count(&|r| r.contact_id == contact));
    let done = walk(&base, "&campaign=spring&disposition=completed", 500);
    assert_eq!(
        done.len(),
        count(&|r| r.campaign == "spring" && r.disposition.as_deref() == Some("completed"))
    );
    let mid = ends[ends.len() / 2].0;
    let before = walk(&base, &format!("&ended_before={mid}"), 500);
    let after = walk(&base, &format!("&ended_after={mid}"), 500);
    assert_eq!(before.len() + after.len(), all.len(), "the two halves split the list");
    assert!(before.iter().all(|c| c["ended_at"].as_str().unwrap() < mid));

    // One answered conversation: its fields agree with its transcript and its analysis.
    wait_until("the analyses", Duration::from_secs(60), || {
        let id = human[0]["id"].as_str().unwrap();
        get(&format!("{base}/v1/conversations/{id}"))["analysis_status"] == "done"
    });
    let id = human[0]["id"].as_str().unwrap();
    let one = get(&format!("{base}/v1/conversations/{id}"));
    let transcript = get(&format!("{base}/v1/conversations/{id}/transcript"));
    let messages = transcript["messages"].as_array().unwrap();
    assert!(!messages.is_empty(), "a human call of the sim trunk has a transcript");
    assert_eq!(one["turn_count"].as_u64(), Some(messages.len() as u64));
    assert_eq!(one["resolution"], "unknown", "no model configured: the default rating");
    assert!(one["provenance"]["call_summary"]["status"] == "skipped");
    let secs = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(one[k].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let talk = (secs("ended_at") - secs("answered_at")) as f64 / 1000.0;
    assert!((one["duration_seconds"].as_f64().unwrap() - talk).abs() < 0.002);
    assert_eq!(one["has_recording"], false);

    // Refusals: no token, bad parameters named, unknown ids, no recording on the sim trunk.
    let (code, _) = http("GET", &format!("{base}/v1/conversations"), None);
    assert_eq!(code, 401);
    let (code, _) = http(
        "GET",
        &format!("{base}/v1/conversations/{id}/transcript"),
        Some("wrong"),
    );
    assert_eq!(code, 401);
    for (q, name) in [
        ("limit=0", "limit"),
        ("contact=abc", "contact"),
        ("ended_after=monday", "ended_after"),
        ("colour=red", "colour"),
    ] {
        let (code, body) = http("GET", &format!("{base}/v1/conversations?{q}"), Some(READ));
        assert_eq!(code, 400, "{q}");
        assert!(body.contains(&format!("`{name}`")), "{q}: {body}");
    }
    for path in [
        "c999999a1",
        "c999999a1/transcript",
        "c999999a1/audio",
        &format!("{id}/audio"),
    ] {
        let (code, body) = http("GET", &format!("{base}/v1/conversations/{path}"), Some(READ));
        assert_eq!(code, 404, "{path}: {body}");
    }

    // Abandonment over time: each point's windows from the recorded attempts; the last point
    // agrees with the status (same attempts) and with the export's person-answered count.
    let h = get(&format!(
        "{base}/v1/campaigns/spring/abandonment?hours=1&step_minutes=5"
    ));
    let points = h["points"].as_array().unwrap();
    assert!((12..=13).contains(&points.len()), "{h}");
    let status = get(&format!("{base}/v1/campaigns/spring"));
    let last = points.last().unwrap();
    for k in ["human", "abandoned"] {
        assert_eq!(last["last_24h"][k], status["abandonment_24h"][k], "{k}: {h}");
        assert_eq!(last["last_30d"][k], status["abandonment_30d"][k], "{k}: {h}");
    }
    let answered = count(&|r| {
        r.campaign == "spring" && matches!(r.outcome.as_deref(), Some("human" | "callback_requested" | "abandoned"))
    });
    assert_eq!(last["last_24h"]["human"].as_u64(), Some(answered as u64));
    let humans: Vec<u64> = points
        .iter()
        .map(|p| p["last_30d"]["human"].as_u64().unwrap())
        .collect();
    assert!(
        humans.windows(2).all(|w| w[0] <= w[1]),
        "a 30-day count fell within the hour: {humans:?}"
    );
    assert_eq!(h["abandon_cap"], status["compliance"]["abandon_cap"]);
    for (q, code, name) in [
        ("hours=0", 400, "`hours`"),
        ("hours=24&step_minutes=1", 400, "`step_minutes`"),
        ("span=1", 400, "`span`"),
    ] {
        let (got, body) = http(
            "GET",
            &format!("{base}/v1/campaigns/spring/abandonment?{q}"),
            Some(READ),
        );
        assert_eq!(got, code, "{q}: {body}");
        assert!(body.contains(name), "{q}: {body}");
    }
    let (code, _) = http("GET", &format!("{base}/v1/campaigns/nope/abandonment"), Some(READ));
    assert_eq!(code, 404);
    let (code, _) = http("GET", &format!("{base}/v1/campaigns/spring/abandonment"), None);
    assert_eq!(code, 401);

    // A recording the trunk reported (what Twilio's recording callback stores): 302 to it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recording = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1";
    rt.block_on(async {
        let store = dialerd::store::Store::open(db.to_str().unwrap()).await.unwrap();
        let trunk_id = one["trunk_call_id"].as_str().unwrap();
        assert!(store.set_recording_url(trunk_id, recording).await.unwrap());
        assert!(!store.set_recording_url("no-such-call", recording).await.unwrap());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = client
            .get(format!("{base}/v1/conversations/{id}/audio"))
            .bearer_auth(READ)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()["location"], recording);
    });
    assert_eq!(get(&format!("{base}/v1/conversations/{id}"))["has_recording"], true);
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(60)).success());
}

#[test]
fn the_event_stream_carries_every_call_transition_the_export_shows() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("campaigns");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut d, base) = start(root.path(), &dir);

    // Subscribe before the campaign exists, then drop its file in.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(String, Value)>();
    let url = format!("{base}/v1/events?campaign=spring");
    let reader = std::thread::spawn(move || {
        rt.block_on(async {
            let mut resp = reqwest::Client::new().get(&url).bearer_auth(READ).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["content-type"], "text/event-stream");
            let mut buf = String::new();
            while let Ok(Some(chunk)) = resp.chunk().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(i) = buf.find("\n\n") {
                    let block: String = buf.drain(..i + 2).collect();
                    let kind = block
                        .lines()
                        .find_map(|l| l.strip_prefix("event: "))
                        .unwrap_or("")
                        .to_string();
                    if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                        let v: Value = serde_json::from_str(data).unwrap();
                        if tx.send((kind, v)).is_err() {
                            return;
                        }
                    }
                }
            }
        })
    });
    std::thread::sleep(Duration::from_millis(500));
    add_campaign(&dir, "autumn", 10); // another campaign's events are filtered out
    add_campaign(&dir, "spring", 40);
    d.wait_for("Campaign finished", 2, Duration::from_secs(180));

    let mut ended = BTreeMap::new();
    let mut dialing = BTreeSet::new();
    let mut states = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !states.contains(&"finished".to_string()) {
        let left = deadline.saturating_duration_since(Instant::now());
        let (kind, v) = rx.recv_timeout(left).expect("the stream ended before `finished`");
        assert_eq!(v["campaign"], "spring", "the filter lets only spring's events through");
        assert_eq!(v["type"].as_str(), Some(kind.as_str()));
        let key = (v["contact"].as_i64().unwrap_or(0), v["attempt"].as_u64().unwrap_or(0));
        match (kind.as_str(), v["state"].as_str().unwrap_or("")) {
            ("call", "dialing") => assert!(dialing.insert(key), "{key:?} dialled twice"),
            ("call", "ended") => {
                assert!(dialing.contains(&key), "{key:?} ended before it was dialled");
                ended.insert(key, v["outcome"].as_str().unwrap().to_string());
            }
            ("call", _) => {}
            ("campaign", s) => states.push(s.to_string()),
            (k, _) => assert_eq!(k, "pacing"),
        }
    }
    assert_eq!(states.first().map(String::as_str), Some("started"));
    let rows = export(&root.path().join("d.db"), "spring");
    let from_export: BTreeMap<(i64, u64), String> = rows
        .iter()
        .filter(|r| r.attempt > 0)
        .map(|r| ((r.contact_id, u64::from(r.attempt)), r.outcome.clone().unwrap()))
        .collect();
    assert_eq!(ended, from_export, "one `ended` event per attempt, with its outcome");

    // The stream ends when the daemon stops, so shutdown is not held by it.
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(60)).success());
    reader.join().unwrap();
    assert!(
        !d.seen.iter().any(|l| l.contains("still had requests in flight")),
        "an open event stream held the listener's shutdown"
    );
}
