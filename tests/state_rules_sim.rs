//! The state rules in the simulator and in `dialerd preflight`:
//! - 30 simulated days over a list spread across the shipped jurisdictions: every dial is checked
//!   by an oracle written here from the rule data (hours by weekday, holidays, the rolling 24-hour
//!   cap from the run's own dials, federal hours), and the talk time the state rules cost is
//!   reported against the same run without them;
//! - preflight of customers-10000.csv with a state column derived here: a reason for every
//!   contact that cannot be called, and agreement with a simulated day from the same instant
//!   (no contact dialled before the time preflight gives, none dialled that it says never).

mod common;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use dialerd::campaign::state_rules_file::shipped;
use dialerd::core::jurisdiction_map::area_code_jurisdiction;
use dialerd::core::{CallingWindow, LegalHours, PacingMode, RetryPolicy, StateRule, StateRules};
use dialerd::sim::bench::{bench_model, bench_rules};
use dialerd::sim::des::default_start;
use dialerd::sim::{CallModel, SimContact, SimOptions, simulate};
use std::collections::HashMap;
use std::sync::Arc;

/// Area codes across the shipped jurisdictions (and New York, which has none), with the zone
/// each is read in.
const AREAS: [(&str, Tz); 11] = [
    ("305", chrono_tz::America::New_York),
    ("405", chrono_tz::America::Chicago),
    ("410", chrono_tz::America::New_York),
    ("206", chrono_tz::America::Los_Angeles),
    ("214", chrono_tz::America::Chicago),
    ("504", chrono_tz::America::Chicago),
    ("601", chrono_tz::America::Chicago),
    ("205", chrono_tz::America::Chicago),
    ("801", chrono_tz::America::Denver),
    ("416", chrono_tz::America::Toronto),
    ("212", chrono_tz::America::New_York),
];

fn list(n: usize) -> (Vec<SimContact>, Vec<String>) {
    let mut out = Vec::new();
    let mut numbers = Vec::new();
    for i in 0..n {
        let (area, zone) = AREAS[i % AREAS.len()];
        let number = format!("+1{area}555{:04}", i % 10_000);
        out.push(SimContact {
            zones: vec![zone],
            jurisdictions: area_code_jurisdiction(&number).into_iter().collect(),
            consent: None,
        });
        numbers.push(number);
    }
    (out, numbers)
}

/// The oracle's reading of one rule at `t` in `tz` with the contact's earlier dials `before`.
fn allowed(r: &StateRule, tz: Tz, before: &[DateTime<Utc>], t: DateTime<Utc>) -> bool {
    let l = t.with_timezone(&tz);
    let secs = l.time().num_seconds_from_midnight();
    let day = l.date_naive();
    let hours = !r.holidays.contains(&day)
        && r.hours[day.weekday().num_days_from_monday() as usize]
            .is_some_and(|h| secs >= h.start_secs && secs < h.end_secs);
    let cap = r
        .max_calls_24h
        .is_none_or(|c| (before.iter().filter(|b| **b > t - Duration::hours(24)).count() as u32) < c);
    hours && cap
}

#[test]
fn thirty_days_over_every_jurisdiction_break_no_rule() {
    let state = shipped().unwrap();
    let mut rules = bench_rules(5, PacingMode::Progressive);
    rules.window = CallingWindow::legal_only(LegalHours::DEFAULT, None, None);
    rules.policy.retry = RetryPolicy::uniform(8, Duration::minutes(20));
    rules.state_rules = state.clone();
    let model = CallModel::new(&bench_model(0.15, 90)).unwrap();
    let (contacts, numbers) = list(20_000);
    let opts = SimOptions {
        hours: 0.0,
        days: Some(30),
        seed: 5,
        calls_per_second: 20,
        timezone: chrono_tz::America::New_York,
        start: default_start(),
        contacts: Some(contacts.clone()),
    };
    let with = simulate(&rules, &model, &opts);
    let mut off = rules.clone();
    off.state_rules = Arc::new(StateRules::default());
    let without = simulate(&off, &model, &opts);

    let mut history: HashMap<i64, Vec<DateTime<Utc>>> = HashMap::new();
    let mut violations = Vec::new();
    for &(c, t) in &with.dial_log {
        let sc = &contacts[(c - 1) as usize];
        let before = history.entry(c).or_default();
        let federal = sc.zones.iter().all(|z| {
            let h = t.with_timezone(z).hour();
            (8..21).contains(&h)
        });
        let applicable: Vec<&StateRule> = state
            .rules()
            .iter()
            .filter(|r| sc.jurisdictions.iter().any(|j| *j == r.code || j.country() == r.code))
            .collect();
        let states = applicable
            .iter()
            .all(|r| sc.zones.iter().all(|z| allowed(r, *z, before, t)));
        if !(federal && states) {
            violations.push(format!("{} at {t}", numbers[(c - 1) as usize]));
        }
        before.push(t);
    }
    let talk = |r: &dialerd::sim::SimReport| r.talk_minutes_per_slot_hour * 5.0 * r.dialing_hours;
    let (t_with, t_without) = (talk(&with), talk(&without));
    println!(
        "30 days, 5 slots, 20,000 contacts over {} area codes: {} dials with state rules, {} without; \
         talk {:.0} min with, {:.0} min without ({:.1}% lost to the state rules); refusals {:?}",
        AREAS.len(),
        with.dials,
        without.dials,
        t_with,
        t_without,
        100.0 * (1.0 - t_with / t_without.max(1.0)),
        with.refusals
    );
    assert!(with.dials > 10_000, "the run dialled: {}", with.dials);
    assert!(
        violations.is_empty(),
        "{} dials broke a rule, first {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
    for reason in ["state_hours", "state_day", "state_cap"] {
        assert!(
            with.refusals.get(reason).copied().unwrap_or(0) > 0,
            "{reason} was exercised: {:?}",
            with.refusals
        );
    }
    // Without the state rules the same run does break them: the oracle is not vacuous.
    let mut broken = 0;
    let mut hist: HashMap<i64, Vec<DateTime<Utc>>> = HashMap::new();
    for &(c, t) in &without.dial_log {
        let sc = &contacts[(c - 1) as usize];
        let before = hist.entry(c).or_default();
        let ok = state
            .rules()
            .iter()
            .filter(|r| sc.jurisdictions.iter().any(|j| *j == r.code || j.country() == r.code))
            .all(|r| sc.zones.iter().all(|z| allowed(r, *z, before, t)));
        broken += usize::from(!ok);
        before.push(t);
    }
    assert!(
        broken > 0,
        "the run without state rules broke none: the list does not exercise them"
    );
    assert!(t_with <= t_without * 1.02, "state rules do not add talk time");

    // A list of Louisiana, Mississippi, Alabama and Utah numbers only (no Sunday calls, narrower
    // hours): nothing else can fill the slots the rules close, so the loss shows.
    let strict: Vec<SimContact> = contacts
        .iter()
        .zip(&numbers)
        .filter(|(_, n)| ["+1504", "+1601", "+1205", "+1801"].iter().any(|p| n.starts_with(p)))
        .map(|(c, _)| c.clone())
        .collect();
    // A Sunday and the Monday after it, short enough that the list is not used up either way.
    let opts = SimOptions {
        days: Some(2),
        start: Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0).unwrap(),
        contacts: Some(strict.clone()),
        ..opts
    };
    let (a, b) = (simulate(&rules, &model, &opts), simulate(&off, &model, &opts));
    let (ta, tb) = (talk(&a), talk(&b));
    println!(
        "Sunday 2026-12-06 and Monday, 5 slots, {} LA/MS/AL/UT contacts only: talk {ta:.0} min with state rules, {tb:.0} min without ({:.1}% lost)",
        strict.len(),
        100.0 * (1.0 - ta / tb.max(1.0))
    );
    assert!(
        ta < tb * 0.9,
        "a Sunday with no calls allowed costs talk time: {ta:.0} vs {tb:.0}"
    );
}

/// customers-10000.csv with a `State` column (row i gets STATES[i % len]) and a campaign mapping it,
/// with `extra` appended to the campaign file.
fn customers_campaign(dir: &std::path::Path, extra: &str) -> Option<std::path::PathBuf> {
    let src = std::env::var_os("DIALERD_CUSTOMERS_CSV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/customers-10000.csv"));
    let Ok(text) = std::fs::read(&src) else {
        println!("skipped: customers-10000.csv not found (set DIALERD_CUSTOMERS_CSV)");
        return None;
    };
    const STATES: [&str; 8] = ["FL", "Texas", "LA", "", "UT", "NY", "Ontario", "MS"];
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_slice());
    let mut w = csv::Writer::from_path(dir.join("customers.csv")).unwrap();
    let mut header = rdr.headers().unwrap().clone();
    header.push_field("State");
    w.write_record(&header).unwrap();
    for (i, rec) in rdr.records().enumerate() {
        let mut rec = rec.unwrap();
        rec.push_field(STATES[i % STATES.len()]);
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
    let toml = common::campaign_toml("customers", extra)
        .replace("legal_hours = \"00:00-24:00\"\nstate_rules = false\n", "")
        .replace(
            "file = \"customers.csv\"\n",
            "file = \"customers.csv\"\nphone = \"Phone 1\"\nstate = \"State\"\n",
        );
    let path = dir.join("customers.toml");
    std::fs::write(&path, toml).unwrap();
    Some(path)
}

#[test]
fn preflight_of_customers_gives_every_reason_and_agrees_with_a_simulated_day() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(file) = customers_campaign(tmp.path(), "") else {
        return;
    };
    // A Sunday, 15:00 UTC: morning in the Americas, Sunday bans in several states.
    let at = "2026-12-06T15:00:00Z";
    let out = common::run(&["preflight", file.to_str().unwrap(), "--at", at, "--csv"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut rdr = csv::Reader::from_reader(out.stdout.as_slice());
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2_908, "one verdict per contact libphonenumber accepts");
    let mut by_reason: HashMap<String, usize> = HashMap::new();
    let mut next: Vec<Option<DateTime<Utc>>> = Vec::new();
    for r in &rows {
        let callable = &r[2] == "true";
        assert_eq!(callable, r[3].is_empty(), "a contact not callable has a reason: {r:?}");
        for reason in r[3].split(';').filter(|s| !s.is_empty()) {
            *by_reason.entry(reason.to_string()).or_default() += 1;
        }
        next.push((!r[4].is_empty()).then(|| DateTime::parse_from_rfc3339(&r[4]).unwrap().with_timezone(&Utc)));
    }
    println!("preflight at {at}: {by_reason:?}");
    assert!(by_reason.contains_key("state_day"), "Sunday bans show: {by_reason:?}");
    assert!(by_reason.contains_key("outside_hours") || by_reason.contains_key("state_hours"));
    let summary = common::run(&["preflight", file.to_str().unwrap(), "--at", at]);
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(
        text.contains("contacts 2908") && text.contains("next callable"),
        "{text}"
    );

    // The simulator over the day that follows, from the same instant, on the same core.
    let campaign = dialerd::campaign::load_campaign(&file).unwrap();
    let cols = &campaign.contacts.columns;
    let mut contacts = Vec::new();
    dialerd::campaign::contacts::read_contacts(&campaign.contacts, 10_000, |b| {
        contacts.extend(b.rows.iter().map(|r| SimContact {
            zones: dialerd::core::zones::zones_or(&r.timezone, campaign.contacts.default_timezone),
            jurisdictions: dialerd::campaign::contact_signals::jurisdictions(cols, &r.phone_e164, &r.custom_fields),
            consent: None,
        }));
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(contacts.len(), rows.len());
    let start = Utc.with_ymd_and_hms(2026, 12, 6, 15, 0, 0).unwrap();
    let opts = SimOptions {
        hours: 24.0,
        days: None,
        seed: 3,
        calls_per_second: 50,
        timezone: chrono_tz::UTC,
        start,
        contacts: Some(contacts),
    };
    let model = CallModel::new(&campaign.sim).unwrap();
    let mut rules = campaign.rules.clone();
    rules.slots = 200;
    let report = simulate(&rules, &model, &opts);
    let mut first: HashMap<i64, DateTime<Utc>> = HashMap::new();
    for &(c, t) in &report.dial_log {
        first.entry(c).or_insert(t);
    }
    assert!(first.len() > 1_000, "the day dialled most contacts: {}", first.len());
    for (c, t) in &first {
        match next[(*c - 1) as usize] {
            Some(n) => assert!(*t >= n, "contact {c} dialled at {t}, before preflight's {n}"),
            None => panic!("contact {c} dialled at {t}; preflight said never"),
        }
    }
}

/// The daemon on the sim trunk against preflight at the same instant: every contact it dials in
/// a short run is one preflight called callable by then, and it reaches contacts preflight calls
/// callable now.
#[test]
fn the_daemon_dials_only_what_preflight_allows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("campaigns");
    std::fs::create_dir_all(&dir).unwrap();
    let fast = "\n[trunk.sim]\nseed = 2\ntime_scale = 0.01\n";
    let Some(file) = customers_campaign(&dir, fast) else {
        return;
    };
    let toml = std::fs::read_to_string(&file)
        .unwrap()
        .replace("max_concurrent = 10", "max_concurrent = 100")
        // The federal hours widened (the sim trunk may), the state rules kept, and Utah closed on
        // every day by an operator override (beside the folder, so not read as a campaign):
        // whatever the hour, some contacts are callable and the Utah ones are held by their state.
        .replace(
            "[compliance]\n",
            "[compliance]\nlegal_hours = \"00:00-24:00\"\nstate_rules_file = \"../utah_closed.toml\"\n",
        );
    std::fs::write(&file, toml).unwrap();
    std::fs::write(
        tmp.path().join("utah_closed.toml"),
        "[[jurisdiction]]\ncode = \"US-UT\"\nname = \"Utah\"\nstatute = \"test override: no day open\"\n\
         checked = 2026-12-07\n",
    )
    .unwrap();
    let start = Utc::now();
    let at = start.to_rfc3339();
    let out = common::run(&["preflight", file.to_str().unwrap(), "--at", &at, "--csv"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut rdr = csv::Reader::from_reader(out.stdout.as_slice());
    let mut next: HashMap<String, Option<DateTime<Utc>>> = HashMap::new();
    let mut callable_now = 0;
    for r in rdr.records() {
        let r = r.unwrap();
        callable_now += usize::from(&r[2] == "true");
        let t = (!r[4].is_empty()).then(|| DateTime::parse_from_rfc3339(&r[4]).unwrap().with_timezone(&Utc));
        next.insert(r[1].to_string(), t);
    }
    let db = tmp.path().join("c.db");
    let mut d = common::Daemon::start(&dir, &db, false);
    let want = callable_now.min(100);
    if want > 0 {
        d.wait_for("Dialing.", want, std::time::Duration::from_secs(120));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    d.signal("TERM");
    assert!(d.wait_exit(std::time::Duration::from_secs(60)).success());
    let rows = common::export(&db, "customers");
    let mut first: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for r in rows.iter().filter(|r| r.attempt > 0) {
        let t = DateTime::parse_from_rfc3339(&r.started_at).unwrap().with_timezone(&Utc);
        let e = first.entry(r.phone_e164.as_str()).or_insert(t);
        *e = (*e).min(t);
    }
    println!(
        "preflight at {at}: {callable_now} callable now; the daemon dialled {} contacts",
        first.len()
    );
    assert!(first.len() >= want, "the daemon reached the callable contacts");
    assert!(
        callable_now < next.len(),
        "some contacts are held by their state at {at}"
    );
    for (phone, t) in &first {
        match next.get(*phone) {
            Some(Some(n)) => assert!(
                *t >= *n - Duration::seconds(1),
                "{phone} dialled at {t}, before preflight's {n}"
            ),
            Some(None) => panic!("{phone} dialled at {t}; preflight said never"),
            None => panic!("{phone} dialled but not in preflight"),
        }
    }
}
