//! Caller-ID pools in the running daemon (real binary, real SQLite file, sim trunk): local
//! presence by area code and by state, every retry of a contact from the number it saw first,
//! and a number whose answers the sim trunk takes away (`[trunk.sim.answer_factor]`, as a
//! "spam likely" label would) rested, logged, shown in `dialerd status`, and given no new
//! contact for the rest of its rest.

mod common;

use common::{Daemon, campaign_toml, export, run, status};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const DEFAULT: &str = "+14155550100";
const NYC: &str = "+12125550101";
const NYC2: &str = "+12125550102";
const MIAMI: &str = "+13055550103";

/// 120 Manhattan (212), 20 Orlando (407, Florida) and 20 Portland (503, Oregon) contacts,
/// interleaved so every area is dialled all through the run.
fn list() -> String {
    let mut s = String::from("phone,first_name\n");
    for i in 0..160 {
        let area = match i % 8 {
            6 => "407",
            7 => "503",
            _ => "212",
        };
        s.push_str(&format!("+1{area}{:03}{:04},Name{i}\n", 220 + i / 100, 1000 + i));
    }
    s
}

/// Every call record of `campaign`, read from the store.
fn call_records(db: &std::path::Path, campaign: &str) -> Vec<dialerd::store::Conversation> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = dialerd::store::Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let f = dialerd::store::ConversationFilter {
                campaign: Some(campaign.into()),
                limit: dialerd::store::MAX_PAGE,
                after: after.take(),
                ..Default::default()
            };
            let (page, next) = store.conversations(&f).await.unwrap();
            out.extend(page);
            match next {
                Some(c) => after = Some(c),
                None => return out,
            }
        }
    })
}

#[test]
fn local_presence_sticky_retries_and_a_rested_number_in_status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("campaigns");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("p.csv"), list()).unwrap();
    let pool = format!(
        "\n[caller_id]\ndefault = \"{DEFAULT}\"\npool = [\"{NYC}\", \"{NYC2}\", \"{MIAMI}\"]\nmin_calls = 8\nrest_below = 0.5\nrest_for = \"1h\"\nhealth_window = \"1h\"\n"
    );
    let sim = format!(
        "\n[trunk.sim]\nseed = 11\ntime_scale = 0.01\np_human = 0.45\np_machine = 0.15\np_no_answer = 0.3\np_busy = 0.05\np_failed = 0.05\n\n[trunk.sim.answer_factor]\n\"{NYC}\" = 0.0\n"
    );
    let toml = campaign_toml("p", &format!("{pool}{sim}")).replace(&format!("caller_id = \"{DEFAULT}\"\n"), "");
    assert!(
        !toml.contains("caller_id = \""),
        "the single caller_id is gone:\n{toml}"
    );
    std::fs::write(dir.join("p.toml"), toml).unwrap();
    // Preflight says which number each contact's first attempt presents, before any call.
    let out = run(&["preflight", dir.join("p.toml").to_str().unwrap(), "--csv"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut planned: BTreeMap<String, String> = BTreeMap::new();
    for r in csv::Reader::from_reader(out.stdout.as_slice()).records() {
        let r = r.unwrap();
        planned.insert(r[1].to_string(), r[7].to_string());
    }
    assert_eq!(planned.len(), 160);
    let count = |n: &str| planned.values().filter(|v| v.as_str() == n).count();
    // The two Manhattan numbers split the 120 Manhattan contacts evenly.
    assert_eq!(
        (count(NYC), count(NYC2), count(MIAMI), count(DEFAULT)),
        (60, 60, 20, 20)
    );

    let db = tmp.path().join("p.db");
    let mut d = Daemon::start(&dir, &db, true);
    assert!(d.wait_exit(Duration::from_secs(240)).success());

    let rows = export(&db, "p");
    // Where no rest intervenes (every contact outside 212), the daemon presents what preflight said.
    for r in rows.iter().filter(|r| !r.phone_e164.starts_with("+1212")) {
        assert_eq!(r.caller_id.as_ref(), planned.get(&r.phone_e164), "{r:?}");
    }
    assert!(rows.len() >= 160, "{} attempts", rows.len());
    // Every attempt presents a number of the pool, and every retry the contact's first one.
    let mut by_contact: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for r in &rows {
        let c = r
            .caller_id
            .clone()
            .unwrap_or_else(|| panic!("attempt without a caller ID: {r:?}"));
        assert!([DEFAULT, NYC, NYC2, MIAMI].contains(&c.as_str()), "{c}");
        by_contact.entry(r.contact_id).or_default().insert(c);
    }
    let retried = rows.iter().filter(|r| r.attempt > 1).count();
    assert!(retried > 20, "only {retried} retries: the sticky rule is barely tested");
    for (c, numbers) in &by_contact {
        assert_eq!(numbers.len(), 1, "contact {c} was called from {numbers:?}");
    }
    // Local presence: Manhattan from 212, Orlando from the Florida number, Portland from the default.
    for r in &rows {
        let expected: &[&str] = match &r.phone_e164[2..5] {
            "212" => &[NYC, NYC2],
            "407" => &[MIAMI],
            _ => &[DEFAULT],
        };
        assert!(
            expected.contains(&r.caller_id.as_deref().unwrap()),
            "{} called from {:?}",
            r.phone_e164,
            r.caller_id
        );
    }

    // Each call record presents the number its attempt did.
    let records = call_records(&db, "p");
    assert!(records.len() >= 100, "{} call records", records.len());
    for c in &records {
        let attempt = rows
            .iter()
            .find(|r| r.contact_id == c.contact_id && i64::from(r.attempt) == c.attempt)
            .unwrap();
        assert_eq!(Some(&c.from), attempt.caller_id.as_ref(), "{c:?}");
    }

    // The number nobody answers is rested, logged once, and shown in status.
    let rested: Vec<&String> = d.seen.iter().filter(|l| l.contains("Caller ID rested")).collect();
    assert_eq!(rested.len(), 1, "{rested:?}");
    assert!(
        rested[0].contains(NYC) && rested[0].contains("answer_rate=\"0.000\""),
        "{}",
        rested[0]
    );
    let s = status(&db);
    let numbers = s[0]["caller_ids"].as_array().expect("caller_ids in status --json");
    let nyc = numbers.iter().find(|n| n["number"] == NYC).expect("NYC in status");
    let until = nyc["rested_until"].as_str().expect("NYC rested in status");
    assert_eq!(nyc["answer_rate"].as_f64(), Some(0.0), "{nyc}");
    let nyc2 = numbers.iter().find(|n| n["number"] == NYC2).unwrap();
    assert!(
        nyc2["rested_until"].is_null() && nyc2["answer_rate"].as_f64().unwrap() > 0.3,
        "{nyc2}"
    );
    let text = run(&["status", "--database", db.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("{NYC}: ")) && text.contains("RESTED until"),
        "{text}"
    );

    // From its rest on, no new contact is called from it; its earlier contacts' retries still are.
    let rest_start = chrono::DateTime::parse_from_rfc3339(until)
        .unwrap()
        .with_timezone(&chrono::Utc)
        - chrono::TimeDelta::hours(1);
    let after: Vec<_> = rows
        .iter()
        .filter(|r| r.attempt == 1 && r.phone_e164.starts_with("+1212"))
        .filter(|r| chrono::DateTime::parse_from_rfc3339(&r.started_at).unwrap() > rest_start)
        .collect();
    let mut per_number: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *per_number.entry(r.caller_id.as_deref().unwrap()).or_default() += 1;
    }
    eprintln!(
        "attempts {}, retries {retried}, by caller ID {per_number:?}, new Manhattan contacts after the rest {} (all from {NYC2})",
        rows.len(),
        after.len()
    );
    assert!(
        after.len() > 10,
        "only {} new Manhattan contacts after the rest",
        after.len()
    );
    assert!(
        after.iter().all(|r| r.caller_id.as_deref() == Some(NYC2)),
        "new contacts from the rested number: {:?}",
        after.iter().filter(|r| r.caller_id.as_deref() == Some(NYC)).count()
    );
}

#[test]
fn a_number_at_its_daily_cap_takes_no_new_contact_and_its_retries_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("campaigns");
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = String::from("phone,first_name\n");
    for i in 0..20 {
        csv.push_str(&format!("+1212230{:04},Name{i}\n", 1000 + i));
    }
    std::fs::write(dir.join("cap.csv"), csv).unwrap();
    // Nobody answers, so every contact is retried a second after each attempt.
    let extra = format!(
        "\n[caller_id]\ndefault = \"{DEFAULT}\"\npool = [\"{NYC}\"]\ndaily_cap = 5\n\n[trunk.sim]\nseed = 3\ntime_scale = 0.01\np_human = 0.0\np_machine = 0.0\np_no_answer = 1.0\np_busy = 0.0\np_failed = 0.0\n"
    );
    let toml = campaign_toml("cap", &extra).replace(&format!("caller_id = \"{DEFAULT}\"\n"), "");
    std::fs::write(dir.join("cap.toml"), toml).unwrap();
    let db = tmp.path().join("cap.db");
    let mut d = Daemon::start(&dir, &db, false);
    // Every contact but the capped number's five has all three attempts: 5 + 15 × 3 ends.
    d.wait_for("Call ended.", 50, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(6));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(60)).success());

    let rows = export(&db, "cap");
    let from_nyc: Vec<_> = rows.iter().filter(|r| r.caller_id.as_deref() == Some(NYC)).collect();
    assert_eq!(from_nyc.len(), 5, "{from_nyc:?}");
    assert!(
        from_nyc.iter().all(|r| r.attempt == 1),
        "a capped number's retry was dialled: {from_nyc:?}"
    );
    let others = rows.iter().filter(|r| r.caller_id.as_deref() == Some(DEFAULT));
    assert_eq!(others.clone().count(), 45, "{rows:?}");
    let s = status(&db);
    let c = s.as_array().unwrap().iter().find(|c| c["id"] == "cap").unwrap();
    let waited = c["compliance"]["refusals"]["caller_id_cap"].as_u64().unwrap_or(0);
    assert!(
        waited >= 5,
        "the five retries were refused for the cap: {}",
        c["compliance"]
    );
    // They wait for the first dial to leave the 24 hours, not for ever.
    assert_eq!(c["contacts"]["scheduled"].as_u64(), Some(5), "{}", c["contacts"]);
    let nyc = c["caller_ids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["number"] == NYC)
        .unwrap();
    assert_eq!(nyc["dials_24h"].as_u64(), Some(5), "{nyc}");
}
