//! The voice agent's events end to end, against `dialerd run` over loopback with a signed-webhook
//! receiver: the sim trunk's own agent plays conversations (a conversion, knowledge-gap markers,
//! an opt-out, a callback request); then, with `[trunk.sim] agent = "external"`, a scripted agent
//! posts the same conversations to `POST /v1/calls/{call_id}/events`, and every `call_analyzed`
//! equals the sim trunk's (ids and timestamps normalised). An agent that first speaks 3 s after
//! the answer makes its call abandoned (status, and the history that seeds pacing after a
//! restart); the bearer token appears in no log line or status output.

mod analysis_common;
mod common;

use analysis_common::Receiver;
use chrono::{DateTime, TimeDelta, Timelike, Utc};
use dialerd::store::Store;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const SECRET: &str = "agent-events-webhook-secret";
const AGENT_TOKEN: &str = "agent-bearer-7d1e9c40b2";

/// A sim campaign `id` with one contact per entry of `phones` (distinct numbers), every call
/// answered by a person, its `call_analyzed` sent to `hook`.
fn campaign(dir: &Path, id: &str, phones: &[u32], hook: &str, sim: &str, windows: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv = String::from("phone,first_name,plan\n");
    for p in phones {
        csv.push_str(&format!("(415) {:03}-{:04},Name{p},basic\n", 220 + p, 1000 + p));
    }
    std::fs::write(dir.join(format!("{id}.csv")), csv).unwrap();
    let extra = format!(
        r#"
[trunk]
kind = "sim"

[trunk.sim]
seed = 7
time_scale = 1.0
p_human = 1.0
p_machine = 0.0
p_no_answer = 0.0
p_busy = 0.0
p_failed = 0.0
human_answer_mean = "1s"
answer_sigma = 0.1
talk_sigma = 0.05
knowledge_gap_rate = 1.0
{sim}

[webhooks]
url = "{hook}"
webhook_events = ["call_analyzed"]
"#
    );
    let mut toml = common::campaign_toml(id, &extra);
    if let Some(w) = windows {
        toml = toml.replace(r#"windows = ["* * * * * *"]"#, &format!(r#"windows = ["{w}"]"#));
    }
    std::fs::write(dir.join(format!("{id}.toml")), toml).unwrap();
}

fn start(dir: &Path, db: &Path, log: &str) -> (common::Daemon, String) {
    let env = [
        ("DIALERD__LISTEN", "127.0.0.1:0"),
        ("DIALERD__API__AGENT_TOKEN", AGENT_TOKEN),
        ("DIALERD__WEBHOOK_SECRET", SECRET),
        ("DIALERD__OUTBOX__POLL_INTERVAL", "20ms"),
        ("RUST_LOG", log),
    ];
    let mut d = common::Daemon::start_env(dir, db, false, &[], &env);
    let addr = d.listen_addr(Duration::from_secs(60));
    (d, format!("http://{addr}"))
}

fn stop(mut d: common::Daemon) -> Vec<String> {
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(60)).success(), "{}", d.seen.join("\n"));
    std::mem::take(&mut d.seen)
}

/// Answered attempts: (campaign, contact, attempt, answered_at).
async fn answered(db: &Path) -> Vec<(String, i64, u32, DateTime<Utc>)> {
    use sqlx::Row;
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db).read_only(true);
    let Ok(pool) = sqlx::SqlitePool::connect_with(opts).await else {
        return Vec::new();
    };
    let rows =
        sqlx::query("SELECT campaign_id, contact_id, attempt, answered_at FROM attempts WHERE state = 'answered'")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    pool.close().await;
    rows.iter()
        .map(|r| {
            let ms: i64 = r.get("answered_at");
            (
                r.get("campaign_id"),
                r.get("contact_id"),
                r.get("attempt"),
                DateTime::from_timestamp_millis(ms).unwrap(),
            )
        })
        .collect()
}

async fn post(base: &str, call_id: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/calls/{call_id}/events"))
        .bearer_auth(AGENT_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or_default())
}

/// The first `call_analyzed` of each campaign (attempt 1), by campaign.
fn analyzed(rx: &Receiver) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for r in rx.accepted().iter().filter(|r| r.event == "call_analyzed") {
        let d = &r.json["data"];
        if d["call_id"].as_str().is_some_and(|c| c.ends_with("a1")) {
            m.entry(d["campaign_id"].as_str().unwrap().to_string())
                .or_insert_with(|| d.clone());
        }
    }
    m
}

/// Asserts `a` equals `b` up to ids and timestamps: ids and RFC 3339 strings are not compared,
/// and durations in seconds (`*_s`) may differ by the loopback's scheduling (under 1 s).
fn assert_same(a: &Value, b: &Value, path: &str) {
    const IDS: &[&str] = &["call_id", "contact_id", "room_name", "user_id"];
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<_> = x.keys().collect();
            let ky: Vec<_> = y.keys().collect();
            assert_eq!(kx, ky, "{path}: keys differ");
            for (k, v) in x {
                if IDS.contains(&k.as_str()) {
                    continue;
                }
                let p = format!("{path}.{k}");
                if k.ends_with("_s") && v.is_number() {
                    let (v1, v2) = (v.as_f64().unwrap(), y[k].as_f64().unwrap());
                    assert!((v1 - v2).abs() < 1.0, "{p}: {v1} vs {v2}");
                } else {
                    assert_same(v, &y[k], &p);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths differ");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                assert_same(v, w, &format!("{path}[{i}]"));
            }
        }
        (Value::String(x), Value::String(y))
            if DateTime::parse_from_rfc3339(x).is_ok() && DateTime::parse_from_rfc3339(y).is_ok() => {}
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// The events that replay `rec` (a sim trunk call) on a call answered at `answered`: each
/// transcript turn and tool call at its offset from the answer, the opt-out or callback request
/// with the turn that says it, `end_call` at the call's end. Returned in time order.
fn script(
    rec: &dialerd::call::CallRecord,
    answered: DateTime<Utc>,
    callback_at: Option<&str>,
) -> Vec<(DateTime<Utc>, Value)> {
    let a0 = rec.answered_at.unwrap();
    let at = |t: DateTime<Utc>| answered + (t - a0);
    let mut out = Vec::new();
    for m in &rec.transcript {
        let kind = match m.role {
            dialerd::call::Role::Agent => "agent_speech",
            dialerd::call::Role::User => "message_received",
        };
        out.push((at(m.at), json!({"type": kind, "text": m.text})));
        if m.text == dialerd::sim::transcript::OPT_OUT_TEXT {
            out.push((at(m.at), json!({"type": "opt_out"})));
        }
        if m.text.contains("call me back") {
            out.push((
                at(m.at),
                json!({"type": "callback_requested", "callback_at": callback_at}),
            ));
        }
    }
    for t in &rec.tool_events {
        let mut ev = json!({"type": "track_conversion", "details": t.arguments["details"]});
        if let Some(e) = t.arguments.get("event_type") {
            ev["event_type"] = e.clone();
        }
        out.push((at(t.at), ev));
    }
    out.push((at(rec.ended_at), json!({"type": "end_call"})));
    out.sort_by_key(|(t, _)| *t);
    for (i, (t, ev)) in out.iter_mut().enumerate() {
        ev["id"] = json!(format!("e{i}"));
        ev["at"] = json!(t.to_rfc3339());
    }
    out
}

async fn sleep_until(t: DateTime<Utc>) {
    if let Ok(d) = (t - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_agent_matches_the_sim_trunk_call_for_call() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(SECRET).await;
    let specs = [
        (
            "conversion",
            1,
            "conversion_rate = 1.0\nopt_out_rate = 0.0\ncallback_rate = 0.0",
        ),
        (
            "optout",
            2,
            "conversion_rate = 0.0\nopt_out_rate = 1.0\ncallback_rate = 0.0",
        ),
        (
            "callback",
            3,
            "conversion_rate = 0.0\nopt_out_rate = 0.0\ncallback_rate = 1.0",
        ),
    ];
    // The sim trunk's own agent.
    let (dir_a, db_a) = (tmp.path().join("a"), tmp.path().join("a.db"));
    for (id, phone, rates) in specs {
        campaign(
            &dir_a,
            id,
            &[phone],
            &rx.url,
            &format!("talk_mean = \"4s\"\n{rates}"),
            None,
        );
    }
    let (d, _) = start(&dir_a, &db_a, "info");
    rx.wait_until(
        Duration::from_secs(90),
        "three call_analyzed from the sim agent",
        |_| analyzed(&rx).len() == 3,
    )
    .await;
    stop(d);
    let sim = analyzed(&rx);
    let store = Store::open(db_a.to_str().unwrap()).await.unwrap();
    let mut records = BTreeMap::new();
    for (id, c) in &sim {
        let rec = store
            .call_record(c["call_id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        records.insert(id.clone(), rec);
    }
    drop(store);
    let conv = &records["conversion"];
    assert!(
        conv.transcript.iter().any(|m| m.text.contains("[KNOWLEDGE_GAP:")),
        "{conv:?}"
    );
    assert_eq!(conv.tool_events.len(), 1, "{conv:?}");
    assert_eq!(sim["optout"]["disposition"], "dnc");
    assert_eq!(sim["callback"]["outcome"], "callback_requested");

    // The callback campaign's window is closed in one local hour (the contact's zone: a 415
    // number is in Los Angeles), twelve hours from now; the person asks for half past that hour
    // tomorrow, so the callback moves to the next hour.
    let zone: chrono_tz::Tz = "America/Los_Angeles".parse().unwrap();
    let now_local = Utc::now().with_timezone(&zone);
    let closed = (now_local.hour() + 12) % 24;
    let hours: Vec<String> = (0..24).filter(|h| *h != closed).map(|h| h.to_string()).collect();
    let tomorrow = now_local.date_naive() + TimeDelta::days(1);
    let local = |h: u32, m: u32| {
        let day = tomorrow + TimeDelta::days(i64::from(h / 24));
        day.and_hms_opt(h % 24, m, 0)
            .unwrap()
            .and_local_timezone(zone)
            .single()
            .unwrap()
    };
    let asked = local(closed, 30);
    let expected = local(closed + 1, 0).to_utc();

    // The same conversations from a scripted external agent.
    let rx_b = Receiver::start(SECRET).await;
    let (dir_b, db_b) = (tmp.path().join("b"), tmp.path().join("b.db"));
    for (id, phone, _) in specs {
        let w = (id == "callback").then(|| format!("0 * {} * * *", hours.join(",")));
        campaign(
            &dir_b,
            id,
            &[phone],
            &rx_b.url,
            "talk_mean = \"120s\"\nagent = \"external\"",
            w.as_deref(),
        );
    }
    let (d, base) = start(&dir_b, &db_b, "info");
    let mut tasks = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the external calls were not all answered"
        );
        for (campaign, contact, attempt, at) in answered(&db_b).await {
            if !seen.insert(campaign.clone()) {
                continue;
            }
            let call_id = format!("c{contact}a{attempt}");
            let cb = (campaign == "callback").then(|| asked.to_rfc3339());
            let steps = script(&records[&campaign], at, cb.as_deref());
            let base = base.clone();
            tasks.push(tokio::spawn(async move {
                for (t, ev) in steps {
                    sleep_until(t).await;
                    let (status, body) = post(&base, &call_id, &ev).await;
                    if status != 202 {
                        return Err(format!("{call_id} {ev}: {status} {body}"));
                    }
                }
                Ok(())
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.unwrap().err());
    }
    if !errors.is_empty() {
        let lines = stop(d);
        panic!("the agent was refused: {errors:?}\n{}", lines.join("\n"));
    }
    rx_b.wait_until(
        Duration::from_secs(60),
        "three call_analyzed from the external agent",
        |_| analyzed(&rx_b).len() == 3,
    )
    .await;
    let lines = stop(d);
    let ext = analyzed(&rx_b);
    for (id, a) in &sim {
        assert_same(a, &ext[id], id);
    }
    assert_eq!(ext["conversion"]["conversions"].as_array().unwrap().len(), 1);
    assert!(!ext["conversion"]["knowledge_gaps"].as_array().unwrap().is_empty());
    assert_eq!(ext["optout"]["disposition"], "dnc");

    // The opt-out put the number on the global list; the callback is at the clamped local time.
    use sqlx::Row;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db_b.display()))
        .await
        .unwrap();
    let dnc: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dnc WHERE scope = 'global'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(dnc, 1);
    let r = sqlx::query("SELECT status, next_attempt_at FROM contacts WHERE campaign_id = 'callback'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(r.get::<String, _>("status"), "scheduled");
    assert_eq!(
        r.get::<i64, _>("next_attempt_at"),
        expected.timestamp_millis(),
        "asked {asked}, expected {expected}"
    );
    assert!(lines.iter().any(|l| l.contains("The voice agent ended the call.")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_speaks_3_s_after_the_answer_abandons_the_call() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(SECRET).await;
    let (dir, db) = (tmp.path().join("c"), tmp.path().join("c.db"));
    campaign(
        &dir,
        "late",
        &[1, 2],
        &rx.url,
        "talk_mean = \"120s\"\nagent = \"external\"",
        None,
    );
    // Debug level: the token must not appear even there.
    let (d, base) = start(&dir, &db, "debug");
    // A wrong token is refused without echoing anything.
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/calls/c1a1/events"))
        .bearer_auth(format!("{AGENT_TOKEN}x"))
        .json(&json!({"type": "end_call"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let mut calls = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while calls.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "calls not answered");
        calls = answered(&db).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    calls.sort_by_key(|c| c.1);
    let mut tasks = Vec::new();
    for (i, (_, contact, attempt, at)) in calls.into_iter().enumerate() {
        let base = base.clone();
        // The first contact's agent greets at once; the second's 3 s after the answer.
        let delay = if i == 0 {
            TimeDelta::zero()
        } else {
            TimeDelta::seconds(3)
        };
        tasks.push(tokio::spawn(async move {
            let id = format!("c{contact}a{attempt}");
            sleep_until(at + delay).await;
            let greet = json!({"type": "agent_speech", "text": "Hi, this is Acme's renewals assistant."});
            assert_eq!(post(&base, &id, &greet).await.0, 202);
            let rest = json!({"events": [
                {"type": "message_received", "text": "Hello?"},
                {"type": "end_call"}
            ]});
            assert_eq!(post(&base, &id, &rest).await.0, 202);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    rx.wait_until(Duration::from_secs(60), "two call_analyzed", |r| {
        r.iter().filter(|r| r.event == "call_analyzed").count() == 2
    })
    .await;
    let mut lines = stop(d);
    assert!(
        lines.iter().any(|l| l.contains("abandoned_silence")),
        "{}",
        lines.join("\n")
    );
    let s = common::status(&db);
    let c = &s.as_array().unwrap()[0];
    let sp = &c["agent_speech"];
    assert_eq!(
        (sp["calls"].as_u64(), sp["over_2s"].as_u64(), sp["abandoned"].as_u64()),
        (Some(2), Some(1), Some(1)),
        "{c}"
    );
    assert!(sp["p99_ms"].as_i64().unwrap() > 2000, "{sp}");
    assert!(sp["p50_ms"].as_i64().unwrap() < 2000, "{sp}");
    assert_eq!(c["abandonment_30d"], json!({"human": 2, "abandoned": 1}), "{c}");
    assert_eq!(c["compliance"]["tsr_30d_rate"].as_f64(), Some(0.5), "{c}");
    // Both calls still ended as conversations: the measure counts the late one, the outcome is kept.
    assert_eq!(c["attempts"]["human"].as_u64(), Some(2), "{c}");
    let text = common::run(&["status", "--database", db.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("over 2 s 1, no speech 0; abandoned for silence 1"),
        "{text}"
    );

    // A restart seeds the core's ledger with the abandoned call.
    let (d, _) = start(&dir, &db, "debug");
    let mut d = d;
    d.wait_for("Abandonment history loaded.", 1, Duration::from_secs(30));
    let loaded = d
        .seen
        .iter()
        .find(|l| l.contains("Abandonment history loaded."))
        .unwrap()
        .clone();
    assert!(
        loaded.contains("abandoned_30d=1") && loaded.contains("human_30d=2"),
        "{loaded}"
    );
    lines.extend(stop(d));

    // No credential in any log line or status output.
    let json_status = serde_json::to_string(&s).unwrap();
    for (what, hay) in [
        ("log", lines.join("\n")),
        ("status", text),
        ("status --json", json_status),
    ] {
        assert!(!hay.contains(AGENT_TOKEN), "the agent token appears in the {what}");
        assert!(!hay.contains(SECRET), "the webhook secret appears in the {what}");
    }
}
