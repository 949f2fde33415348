//! State and provincial calling rules: the shipped `jurisdictions.toml` at each rule's edges
//! (the last minute allowed, the first refused, a Sunday, a state holiday, the call over the
//! rolling 24-hour cap), the signals that give a contact its jurisdictions, and a proptest that a
//! contact with several jurisdictions is dialled only when every one of them allows it, against
//! an oracle that reads the rule data directly.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use dialerd::campaign::state_rules_file::{parse_rules, shipped};
use dialerd::core::jurisdiction_map::{
    area_code_jurisdiction, contact_jurisdictions, parse_state, postal_jurisdictions,
};
use dialerd::core::{JurisdictionCode, RefusalReason, StateRule, StateRules};
use proptest::prelude::*;
use std::path::Path;

fn code(s: &str) -> JurisdictionCode {
    JurisdictionCode::parse(s).unwrap()
}

fn local(tz: Tz, date: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    tz.from_local_datetime(&date.and_hms_opt(h, m, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

/// The first date on or after `from` with weekday `wd` that is none of `code`'s holidays.
fn next_weekday(rules: &StateRules, c: &str, from: NaiveDate, wd: chrono::Weekday) -> NaiveDate {
    let r = rules.get(code(c)).unwrap();
    let mut d = from;
    while d.weekday() != wd || r.holidays.contains(&d) {
        d = d.succ_opt().unwrap();
    }
    d
}

/// One jurisdiction's expected rules, from its statute (independent of the data file).
struct Expect {
    code: &'static str,
    zone: Tz,
    /// Monday's window as (start, end) local hours and minutes.
    monday: ((u32, u32), (u32, u32)),
    /// Sunday's window, `None` when the statute bans Sunday calls.
    sunday: Option<((u32, u32), (u32, u32))>,
    /// A date the data must list as a no-call holiday.
    holiday: Option<(i32, u32, u32)>,
    /// The rolling 24-hour cap.
    cap: Option<u32>,
}

fn expectations() -> Vec<Expect> {
    use chrono_tz::America::*;
    let d = |a, b, c, e| ((a, b), (c, e));
    vec![
        // Fla. Stat. 501.616(6): 8 a.m. to 8 p.m., three calls in 24 hours.
        Expect {
            code: "US-FL",
            zone: New_York,
            monday: d(8, 0, 20, 0),
            sunday: Some(d(8, 0, 20, 0)),
            holiday: None,
            cap: Some(3),
        },
        // 15 O.S. 775C.4: 8 a.m. to 8 p.m., three calls in 24 hours.
        Expect {
            code: "US-OK",
            zone: Chicago,
            monday: d(8, 0, 20, 0),
            sunday: Some(d(8, 0, 20, 0)),
            holiday: None,
            cap: Some(3),
        },
        // Md. Com. Law 14-4502: 8 a.m. to 8 p.m., three calls in 24 hours.
        Expect {
            code: "US-MD",
            zone: New_York,
            monday: d(8, 0, 20, 0),
            sunday: Some(d(8, 0, 20, 0)),
            holiday: None,
            cap: Some(3),
        },
        // RCW 19.158.040(2), RCW 80.36.390: 8 a.m. to 8 p.m.
        Expect {
            code: "US-WA",
            zone: Los_Angeles,
            monday: d(8, 0, 20, 0),
            sunday: Some(d(8, 0, 20, 0)),
            holiday: None,
            cap: None,
        },
        // Tex. Bus. & Com. Code 301.051: 9 a.m. to 9 p.m.; Sunday from noon.
        Expect {
            code: "US-TX",
            zone: Chicago,
            monday: d(9, 0, 21, 0),
            sunday: Some(d(12, 0, 21, 0)),
            holiday: None,
            cap: None,
        },
        // La. R.S. 45:811: 8 a.m. to 8 p.m., no Sunday or legal holiday calls.
        Expect {
            code: "US-LA",
            zone: Chicago,
            monday: d(8, 0, 20, 0),
            sunday: None,
            holiday: Some((2026, 12, 25)),
            cap: None,
        },
        // Miss. Code 77-3-723(1): 8 a.m. to 8 p.m. Central *Standard* Time, not on Sunday; the data
        // keeps the stricter 09:00-20:00 local all year (during daylight time 8 CST is 9 CDT).
        Expect {
            code: "US-MS",
            zone: Chicago,
            monday: d(9, 0, 20, 0),
            sunday: None,
            holiday: None,
            cap: None,
        },
        // Ala. Admin. Code r. 770-X-5-.17: 8 a.m. to 8 p.m., not on Sunday or a state holiday.
        Expect {
            code: "US-AL",
            zone: Chicago,
            monday: d(8, 0, 20, 0),
            sunday: None,
            holiday: Some((2026, 12, 25)),
            cap: None,
        },
        // Utah Code 13-25a-103: 8 a.m. to 9 p.m., not on Sunday or a legal holiday.
        Expect {
            code: "US-UT",
            zone: Denver,
            monday: d(8, 0, 21, 0),
            sunday: None,
            holiday: Some((2026, 12, 25)),
            cap: None,
        },
        // CRTC Telemarketing Rules: weekdays 09:00-21:30, weekends 10:00-18:00.
        Expect {
            code: "CA",
            zone: Toronto,
            monday: d(9, 0, 21, 30),
            sunday: Some(d(10, 0, 18, 0)),
            holiday: None,
            cap: None,
        },
    ]
}

#[test]
fn the_shipped_file_names_its_sources() {
    let rules = shipped().expect("the shipped jurisdictions.toml is valid");
    for e in expectations() {
        let r = rules
            .get(code(e.code))
            .unwrap_or_else(|| panic!("{} is shipped", e.code));
        assert!(
            !r.statute.is_empty() && !r.name.is_empty(),
            "{} cites its statute",
            e.code
        );
        assert!(r.checked.year() >= 2026, "{} was checked this year", e.code);
    }
}

#[test]
fn each_jurisdiction_at_its_edges() {
    let rules = shipped().unwrap();
    let start = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    for e in expectations() {
        let c = [code(if e.code == "CA" { "CA-ON" } else { e.code })];
        let zones = [e.zone];
        let ok = |t: DateTime<Utc>| rules.check(&c, &zones, &[], t);
        let monday = next_weekday(&rules, e.code, start, chrono::Weekday::Mon);
        let ((sh, sm), (eh, em)) = e.monday;
        let last = local(e.zone, monday, eh, em) - Duration::minutes(1);
        assert_eq!(
            ok(local(e.zone, monday, sh, sm)),
            Ok(()),
            "{} opens at {sh}:{sm:02}",
            e.code
        );
        assert_eq!(ok(last), Ok(()), "{}: the last minute allowed", e.code);
        let first_refused = local(e.zone, monday, eh, em);
        let (reason, until) = ok(first_refused).expect_err("the first minute refused");
        assert_eq!(reason, RefusalReason::StateHours, "{}", e.code);
        let until = until.unwrap();
        assert!(
            until > first_refused && ok(until).is_ok(),
            "{}: until {until} is allowed",
            e.code
        );
        let early = local(e.zone, monday, sh, sm) - Duration::minutes(1);
        assert_eq!(
            ok(early).map_err(|e| e.0),
            Err(RefusalReason::StateHours),
            "{}: a minute before opening",
            e.code
        );

        let sunday = next_weekday(&rules, e.code, start, chrono::Weekday::Sun);
        match e.sunday {
            None => {
                let (reason, until) = ok(local(e.zone, sunday, 12, 0)).expect_err("no Sunday calls");
                assert_eq!(reason, RefusalReason::StateDay, "{} on a Sunday", e.code);
                assert!(until.unwrap().with_timezone(&e.zone).weekday() != chrono::Weekday::Sun);
            }
            Some(((sh, sm), (eh, em))) => {
                assert_eq!(ok(local(e.zone, sunday, sh, sm)), Ok(()), "{} Sunday opening", e.code);
                let at_end = local(e.zone, sunday, eh, em);
                assert_eq!(
                    ok(at_end - Duration::minutes(1)),
                    Ok(()),
                    "{} Sunday last minute",
                    e.code
                );
                assert_eq!(
                    ok(at_end).map_err(|e| e.0),
                    Err(RefusalReason::StateHours),
                    "{} Sunday end",
                    e.code
                );
            }
        }
        if let Some((y, m, d)) = e.holiday {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let (reason, _) = ok(local(e.zone, day, 12, 0)).expect_err("no holiday calls");
            assert_eq!(reason, RefusalReason::StateDay, "{} on {day}", e.code);
        }
        let noon = local(e.zone, monday, 12, 0);
        match e.cap {
            Some(cap) => {
                let recent: Vec<DateTime<Utc>> = (0..cap)
                    .map(|i| noon - Duration::hours(6) + Duration::hours(i as i64))
                    .collect();
                let (reason, until) = rules
                    .check(&c, &zones, &recent, noon)
                    .expect_err("the call over the cap");
                assert_eq!(
                    reason,
                    RefusalReason::StateCap,
                    "{}: call {} in 24 hours",
                    e.code,
                    cap + 1
                );
                let until = until.unwrap();
                assert!(
                    until >= recent[0] + Duration::hours(24),
                    "{}: not before the oldest call ages out",
                    e.code
                );
                assert!(rules.check(&c, &zones, &recent, until).is_ok());
                assert_eq!(
                    rules.check(&c, &zones, &recent[1..], noon),
                    Ok(()),
                    "{}: {} calls pass",
                    e.code,
                    cap
                );
            }
            None => {
                let recent: Vec<DateTime<Utc>> = (0..5).map(|i| noon - Duration::hours(i + 1)).collect();
                assert_eq!(rules.check(&c, &zones, &recent, noon), Ok(()), "{} has no cap", e.code);
            }
        }
    }
}

#[test]
fn signals_name_jurisdictions_and_disagreeing_ones_all_apply() {
    assert_eq!(parse_state("FL"), Some(code("US-FL")));
    assert_eq!(parse_state(" florida "), Some(code("US-FL")));
    assert_eq!(parse_state("US-TX"), Some(code("US-TX")));
    assert_eq!(parse_state("Ontario"), Some(code("CA-ON")));
    assert_eq!(parse_state("Bavaria"), None);
    assert_eq!(postal_jurisdictions("33101"), vec![code("US-FL")]);
    assert_eq!(postal_jurisdictions("73301-0001"), vec![code("US-TX")]);
    assert_eq!(postal_jurisdictions("M5V 2T6"), vec![code("CA-ON")]);
    assert!(postal_jurisdictions("SW1A 1AA").is_empty());
    assert_eq!(area_code_jurisdiction("+13055550100"), Some(code("US-FL")));
    assert_eq!(area_code_jurisdiction("+14165550100"), Some(code("CA-ON")));
    assert_eq!(area_code_jurisdiction("+442071234567"), None);
    // A Florida number, a Texas state column and a Louisiana ZIP: all three apply.
    let all = contact_jurisdictions("+13055550100", Some("TX"), Some("70112"));
    assert_eq!(all, vec![code("US-FL"), code("US-LA"), code("US-TX")]);
    let rules = shipped().unwrap();
    // Monday 20:30 Central: Texas allows it, Florida (8 p.m.) does not.
    let t = local(
        chrono_tz::America::Chicago,
        NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
        20,
        30,
    );
    assert!(
        rules
            .check(&[code("US-TX")], &[chrono_tz::America::Chicago], &[], t)
            .is_ok()
    );
    assert!(rules.check(&all, &[chrono_tz::America::Chicago], &[], t).is_err());
}

#[test]
fn an_operator_file_overrides_and_extends_with_errors_naming_the_entry() {
    let text = "[[jurisdiction]]\ncode = \"US-FL\"\nname = \"Florida\"\nstatute = \"test\"\nchecked = 2026-12-07\n[jurisdiction.hours]\nmon = \"10:00-12:00\"\n\n[[jurisdiction]]\ncode = \"US-NY\"\nname = \"New York\"\nstatute = \"test\"\nchecked = 2026-12-07\nmax_calls_24h = 1\n[jurisdiction.hours]\nmon = \"09:00-17:00\"\n";
    let extra = parse_rules(Path::new("ops.toml"), text).unwrap();
    let mut all = shipped().unwrap().rules().to_vec();
    let n = all.len();
    all.extend(extra);
    let merged = StateRules::new(all);
    assert_eq!(merged.rules().len(), n + 1, "US-FL replaced, US-NY added");
    let fl = merged.get(code("US-FL")).unwrap();
    assert_eq!(fl.hours[6], None, "the override's Sunday is closed");
    let bad = text.replace("mon = \"10:00-12:00\"", "mon = \"12:00-10:00\"");
    let err = parse_rules(Path::new("ops.toml"), &bad).unwrap_err();
    assert!(err.to_string().contains("jurisdiction[0] (US-FL).hours.mon"), "{err}");
    let err = parse_rules(Path::new("ops.toml"), &text.replace("US-NY", "Narnia")).unwrap_err();
    assert!(err.to_string().contains("jurisdiction[1] (Narnia).code"), "{err}");
}

/// The oracle: one rule read straight from its data, in one zone.
fn rule_allows(r: &StateRule, tz: Tz, recent: &[DateTime<Utc>], t: DateTime<Utc>) -> bool {
    let l = t.with_timezone(&tz);
    let day = l.date_naive();
    let secs = l.time().num_seconds_from_midnight();
    let hours_ok = !r.holidays.contains(&day)
        && r.hours[day.weekday().num_days_from_monday() as usize]
            .is_some_and(|h| secs >= h.start_secs && secs < h.end_secs);
    let cap_ok = r.max_calls_24h.is_none_or(|cap| {
        (recent
            .iter()
            .filter(|a| **a > t - Duration::hours(24) && **a <= t)
            .count() as u32)
            < cap
    });
    hours_ok && cap_ok
}

const ZONES: [Tz; 5] = [
    chrono_tz::America::New_York,
    chrono_tz::America::Chicago,
    chrono_tz::America::Denver,
    chrono_tz::America::Los_Angeles,
    chrono_tz::America::Toronto,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Several jurisdictions and zones: allowed exactly when every rule allows it in every zone,
    /// and the instant a refusal gives is one every rule allows.
    #[test]
    fn several_jurisdictions_are_dialled_only_when_every_one_allows(
        picks in proptest::collection::btree_set(0usize..64, 1..4),
        zone_picks in proptest::collection::btree_set(0usize..ZONES.len(), 1..3),
        secs in 0i64..(2 * 365 * 86_400),
        recent_offsets in proptest::collection::vec(1i64..(30 * 3600), 0..5),
    ) {
        let rules = shipped().unwrap();
        let all = rules.rules();
        let codes: Vec<JurisdictionCode> = picks.iter().map(|i| {
            let c = all[i % all.len()].code;
            if c.as_str() == "CA" { code("CA-ON") } else { c }
        }).collect();
        let zones: Vec<Tz> = zone_picks.iter().map(|&i| ZONES[i]).collect();
        let now = Utc.timestamp_opt(1_767_225_600 + secs, 0).unwrap();
        let mut recent: Vec<DateTime<Utc>> = recent_offsets.iter().map(|s| now - Duration::seconds(*s)).collect();
        recent.sort();
        let applicable: Vec<&StateRule> = all.iter().filter(|r| codes.iter().any(|c| *c == r.code || c.country() == r.code)).collect();
        let oracle = |t: DateTime<Utc>| applicable.iter().all(|r| zones.iter().all(|z| rule_allows(r, *z, &recent, t)));
        let verdict = rules.check(&codes, &zones, &recent, now);
        prop_assert_eq!(verdict.is_ok(), oracle(now), "{:?} in {:?} at {}: {:?}", codes, zones, now, verdict);
        for c in &codes {
            if rules.check(&[*c], &zones, &recent, now).is_err() {
                prop_assert!(verdict.is_err(), "{} alone refuses, together they allow", c);
            }
        }
        if let Err((_, Some(until))) = verdict {
            prop_assert!(until > now);
            prop_assert!(oracle(until), "until {} is not allowed by every rule", until);
            // No earlier whole minute is allowed by every rule.
            let mut t = now + Duration::minutes(1);
            t -= Duration::seconds(i64::from(t.second()));
            while t < until {
                prop_assert!(!oracle(t), "{} was allowed before until {}", t, until);
                t += Duration::minutes(15);
            }
        }
    }
}
