//! Caller-ID pools in the core and the campaign file: local presence (area code, then state,
//! then the default), the same number on a retry, rests by answer rate against the rest of the
//! pool, the rolling 24-hour cap, and a proptest that a new contact never gets a rested or
//! capped number and a retry never changes number while its own is in the pool.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use dialerd::core::caller_id::{
    CallerIdPool, HealthChange, HealthPolicy, Pick, PickReason, PoolHealth, PoolNumber, pick,
};
use dialerd::core::jurisdiction_map::contact_jurisdictions;
use proptest::prelude::*;

const DEFAULT: &str = "+14155550100";
const NYC: &str = "+12125550101";
const NYC2: &str = "+12125550102";
const MIAMI: &str = "+13055550103";
const TAMPA: &str = "+18135550104";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 15, 0, 0).unwrap()
}

fn pool(numbers: &[&str], policy: HealthPolicy) -> CallerIdPool {
    CallerIdPool {
        default: DEFAULT.into(),
        numbers: numbers.iter().map(|n| PoolNumber::new(n)).collect(),
        health: policy,
    }
}

fn pick_for(p: &CallerIdPool, h: &PoolHealth, contact: i64, phone: &str, previous: Option<&str>) -> Pick {
    let j = contact_jurisdictions(phone, None, None);
    pick(p, h, contact, phone, &j, previous, t0())
}

fn used(p: Pick) -> (String, PickReason) {
    match p {
        Pick::Use { number, reason } => (number, reason),
        w => panic!("expected a number, got {w:?}"),
    }
}

#[test]
fn local_presence_prefers_the_area_code_then_the_state_then_the_default() {
    let p = pool(&[NYC, MIAMI, TAMPA], HealthPolicy::default());
    let h = PoolHealth::new(p.health.clone());
    // A Manhattan contact gets the 212 number.
    assert_eq!(
        used(pick_for(&p, &h, 1, "+12125559876", None)),
        (NYC.into(), PickReason::AreaCode)
    );
    // An Orlando contact (407, Florida) gets a Florida number: Miami or Tampa.
    let (n, r) = used(pick_for(&p, &h, 2, "+14075551234", None));
    assert_eq!(r, PickReason::State);
    assert!([MIAMI, TAMPA].contains(&n.as_str()), "{n}");
    // A Portland contact (503, Oregon) gets the default.
    assert_eq!(
        used(pick_for(&p, &h, 3, "+15035551234", None)),
        (DEFAULT.into(), PickReason::Default)
    );
    // A state column names Florida for a number from elsewhere: a Florida number fits too.
    let j = contact_jurisdictions("+15035551234", Some("FL"), None);
    let (_, r) = used(pick(&p, &h, 4, "+15035551234", &j, None, t0()));
    assert_eq!(r, PickReason::State);
    // Outside North America there is no area code: the default.
    assert_eq!(used(pick_for(&p, &h, 5, "+442071234567", None)).1, PickReason::Default);
}

#[test]
fn a_retry_keeps_its_number_even_when_rested_but_waits_for_its_cap() {
    let policy = HealthPolicy {
        daily_cap: Some(3),
        ..HealthPolicy::default()
    };
    let p = pool(&[NYC, NYC2], policy);
    let mut h = PoolHealth::new(p.health.clone());
    h.restore_rest(NYC, t0() + TimeDelta::hours(2));
    assert_eq!(
        used(pick_for(&p, &h, 1, "+15035551234", Some(NYC))),
        (NYC.into(), PickReason::Retry)
    );
    // A new Manhattan contact does not get the rested number.
    assert_eq!(used(pick_for(&p, &h, 2, "+12125559876", None)).0, NYC2);
    // Three dials in the last 24 hours: a retry waits until the oldest one leaves the count.
    for m in [600, 300, 60] {
        h.record_dial(NYC2, t0() - TimeDelta::minutes(m));
    }
    assert_eq!(
        pick_for(&p, &h, 3, "+12125559876", Some(NYC2)),
        Pick::Wait {
            number: NYC2.into(),
            until: t0() - TimeDelta::minutes(600) + TimeDelta::hours(24)
        }
    );
    // A new Manhattan contact gets neither: the default.
    assert_eq!(used(pick_for(&p, &h, 4, "+12125559876", None)).0, DEFAULT);
    // A number taken out of the pool is not kept: the contact is picked for afresh.
    assert_eq!(
        used(pick_for(&p, &h, 5, "+13055551234", Some("+13125550199"))).1,
        PickReason::Default
    );
    // The default is never capped.
    for _ in 0..5 {
        h.record_dial(DEFAULT, t0() - TimeDelta::minutes(1));
    }
    assert_eq!(
        used(pick_for(&p, &h, 6, "+15035551234", Some(DEFAULT))).1,
        PickReason::Retry
    );
}

#[test]
fn the_least_dialled_local_number_takes_the_next_new_contact() {
    let p = pool(&[NYC, NYC2], HealthPolicy::default());
    let mut h = PoolHealth::new(p.health.clone());
    let mut counts = std::collections::BTreeMap::new();
    for c in 0..100 {
        let (n, _) = used(pick_for(&p, &h, c, "+12125559876", None));
        h.record_dial(&n, t0() - TimeDelta::seconds(100 - c));
        *counts.entry(n).or_insert(0) += 1;
    }
    assert_eq!(counts.get(NYC), Some(&50), "{counts:?}");
    assert_eq!(counts.get(NYC2), Some(&50), "{counts:?}");
}

#[test]
fn a_number_answered_far_less_than_the_pool_is_rested_then_resumes_clean() {
    let policy = HealthPolicy {
        min_calls: 20,
        rest_below: 0.5,
        rest_for: TimeDelta::hours(1),
        window: TimeDelta::hours(2),
        ..HealthPolicy::default()
    };
    let p = pool(&[NYC, MIAMI, TAMPA], policy);
    let mut h = PoolHealth::new(p.health.clone());
    let at = |i: i64| t0() - TimeDelta::minutes(90) + TimeDelta::seconds(i * 10);
    for i in 0..40 {
        // Miami and Tampa: 40% answered. New York: 5% answered (2 of 40), and short.
        let answered = |yes: bool, talk_s: i64| yes.then(|| at(i) - TimeDelta::seconds(talk_s));
        h.record_end(MIAMI, at(i), answered(i % 5 < 2, 60));
        h.record_end(TAMPA, at(i), answered(i % 5 < 2, 60));
        h.record_end(NYC, at(i), answered(i % 20 == 0, 4));
    }
    // Under min_calls for New York, nothing happens yet.
    let early = t0() - TimeDelta::minutes(90) + TimeDelta::seconds(15 * 10);
    let mut young = PoolHealth::new(p.health.clone());
    for i in 0..15 {
        young.record_end(NYC, at(i), None);
        young.record_end(MIAMI, at(i), Some(at(i) - TimeDelta::seconds(60)));
        young.record_end(TAMPA, at(i), Some(at(i) - TimeDelta::seconds(60)));
    }
    assert!(young.review(&p, early).is_empty());

    let changes = h.review(&p, t0());
    assert_eq!(changes.len(), 1, "{changes:?}");
    let HealthChange::Rested {
        number,
        until,
        answer_rate,
        pool_rate,
        calls,
    } = &changes[0]
    else {
        panic!("{changes:?}")
    };
    assert_eq!(number, NYC);
    assert_eq!(*until, t0() + TimeDelta::hours(1));
    assert!(
        (answer_rate - 0.05).abs() < 1e-9 && (pool_rate - 0.4).abs() < 1e-9,
        "{answer_rate} {pool_rate}"
    );
    assert_eq!(*calls, 40);
    let stats = h.stats(&p, t0());
    let nyc = stats.iter().find(|s| s.number == NYC).unwrap();
    assert_eq!(nyc.rested_until, Some(t0() + TimeDelta::hours(1)));
    assert_eq!(nyc.short_call_rate, Some(1.0));
    assert!(h.is_rested(NYC, t0() + TimeDelta::minutes(59)));
    // Reviewing again changes nothing; after the hour it resumes with its history cleared.
    assert!(h.review(&p, t0() + TimeDelta::minutes(1)).is_empty());
    let later = t0() + TimeDelta::hours(1);
    assert_eq!(h.review(&p, later), vec![HealthChange::Resumed { number: NYC.into() }]);
    assert!(!h.is_rested(NYC, later));
    assert_eq!(h.stats(&p, later).iter().find(|s| s.number == NYC).unwrap().calls, 0);
}

#[test]
fn the_day_count_follows_the_dials_by_the_minute_and_the_cap_by_the_instant() {
    let policy = HealthPolicy {
        daily_cap: Some(1000),
        ..HealthPolicy::default()
    };
    let p = pool(&[NYC], policy);
    let mut h = PoolHealth::new(p.health.clone());
    // 30,000 dials over 30 hours, one every 3.6 s.
    let first = t0() - TimeDelta::hours(30);
    let at = |i: i64| first + TimeDelta::milliseconds(i * 3600);
    for i in 0..30_000 {
        h.record_dial(NYC, at(i));
    }
    let exact = (0..30_000)
        .filter(|&i| at(i) > t0() - TimeDelta::hours(24) && at(i) <= t0())
        .count() as u32;
    let counted = h.dials_24h(NYC, t0());
    // Whole minutes: at most one minute's dials (about 17) more than the exact count.
    assert!(counted >= exact && counted <= exact + 17, "{counted} against {exact}");
    // Capped: it frees when the oldest of its last 1,000 dials is 24 hours old.
    assert_eq!(
        h.cap_frees_at(NYC, t0()),
        Some(at(30_000 - 1000) + TimeDelta::hours(24))
    );
    h.review(&p, t0());
    assert_eq!(
        h.dials_24h(NYC, t0()),
        counted,
        "a review forgets only what is past the day"
    );
}

fn campaign(caller_id: &str) -> Result<dialerd::campaign::Campaign, String> {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("pool.txt"),
        "# our Florida numbers\n+13055550103\n\n+18135550104  # Tampa\n",
    )
    .unwrap();
    let src = format!(
        "name = \"p\"\nagent_id = \"a\"\ndefault_region = \"US\"\ndefault_timezone = \"America/New_York\"\n{caller_id}\n[contacts]\nfile = \"c.csv\"\n[compliance]\nstate_rules = false\n"
    );
    let path = tmp.path().join("p.toml");
    std::fs::write(&path, &src).unwrap();
    dialerd::campaign::load_campaign(&path).map_err(|e| e.to_string())
}

#[test]
fn the_campaign_file_takes_one_number_or_a_pool_with_a_file() {
    let one = campaign("caller_id = \"+14155550100\"").unwrap();
    assert_eq!(one.caller_id, DEFAULT);
    assert!(one.caller_ids.numbers.is_empty());

    let c = campaign(
        "[caller_id]\ndefault = \"+14155550100\"\npool = [\"+12125550101\", \"+14155550100\", \"+12125550101\"]\npool_file = \"pool.txt\"\ndaily_cap = 150\nrest_for = \"2h\"\n",
    )
    .unwrap();
    assert_eq!(c.caller_id, DEFAULT);
    let numbers: Vec<&str> = c.caller_ids.numbers.iter().map(|n| n.e164.as_str()).collect();
    // The default and the repeat are dropped; the file's numbers follow the inline ones.
    assert_eq!(numbers, [NYC, MIAMI, TAMPA]);
    assert_eq!(c.caller_ids.numbers[1].area_code, Some(305));
    assert_eq!(
        c.caller_ids.numbers[1].jurisdiction.map(|j| j.to_string()).as_deref(),
        Some("US-FL")
    );
    assert_eq!(c.caller_ids.health.daily_cap, Some(150));
    assert_eq!(c.caller_ids.health.rest_for, TimeDelta::hours(2));

    let e =
        campaign("[caller_id]\ndefault = \"+14155550100\"\npool = [\"+1212555010\", \"212-555-0101\"]\n").unwrap_err();
    assert!(
        e.contains("caller_id.pool[0]") && e.contains("caller_id.pool[1]"),
        "{e}"
    );
    let e = campaign("[caller_id]\ndefault = \"+14155550100\"\npool_file = \"missing.txt\"\n").unwrap_err();
    assert!(e.contains("caller_id.pool_file") && e.contains("missing.txt"), "{e}");
    let e = campaign("[caller_id]\ndefault = \"+14155550100\"\npools = []\n").unwrap_err();
    assert!(e.contains("pools"), "an unknown key is named: {e}");
    let e = campaign("[caller_id]\ndefault = \"+14155550100\"\nrest_below = 2.0\ndaily_cap = 0\n").unwrap_err();
    assert!(
        e.contains("caller_id.rest_below") && e.contains("caller_id.daily_cap"),
        "{e}"
    );
    let e = campaign("caller_id = \"4155550100\"").unwrap_err();
    assert!(e.contains("caller_id") && e.contains("E.164"), "{e}");
}

const NUMBERS: [&str; 6] = [NYC, NYC2, MIAMI, TAMPA, "+13125550105", "+16175550106"];
const PHONES: [&str; 6] = [
    "+12125559876",
    "+13055551234",
    "+14075551234",
    "+13125559876",
    "+15035551234",
    "+16175559876",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A new contact never gets a rested or capped pool number, and a pool number only when it
    /// is local (its area code or state); a retry keeps a number still in the pool unless that
    /// number is capped, and then waits exactly until one of its dials leaves the 24 hours.
    #[test]
    fn picks_respect_rests_caps_and_retries(
        members in proptest::collection::btree_set(0usize..NUMBERS.len(), 1..6),
        rested in proptest::collection::btree_set(0usize..NUMBERS.len(), 0..4),
        dials in proptest::collection::vec((0usize..NUMBERS.len(), 0i64..(30 * 3600)), 0..40),
        cap in proptest::option::of(1u32..6),
        phone in 0usize..PHONES.len(),
        previous in proptest::option::of(0usize..NUMBERS.len() + 1),
        contact in 0i64..1000,
    ) {
        let numbers: Vec<&str> = members.iter().map(|&i| NUMBERS[i]).collect();
        let policy = HealthPolicy { daily_cap: cap, ..HealthPolicy::default() };
        let p = pool(&numbers, policy);
        let mut h = PoolHealth::new(p.health.clone());
        for &i in &rested {
            h.restore_rest(NUMBERS[i], t0() + TimeDelta::minutes(30));
        }
        for &(i, ago) in &dials {
            h.record_dial(NUMBERS[i], t0() - TimeDelta::seconds(ago));
        }
        let prev = previous.map(|i| if i == NUMBERS.len() { DEFAULT } else { NUMBERS[i] });
        // The oracle: the dials themselves, counted in the 24 hours up to `at`.
        let in_day = |n: &str, at: DateTime<Utc>| {
            dials
                .iter()
                .filter(|&&(i, ago)| {
                    let t = t0() - TimeDelta::seconds(ago);
                    NUMBERS[i] == n && t > at - TimeDelta::hours(24) && t <= at
                })
                .count() as u32
        };
        let capped = |n: &str| cap.is_some_and(|c| in_day(n, t0()) >= c);
        match pick_for(&p, &h, contact, PHONES[phone], prev) {
            Pick::Use { number, reason } => {
                prop_assert!(p.contains(&number));
                match reason {
                    PickReason::Retry => {
                        prop_assert_eq!(Some(number.as_str()), prev);
                        prop_assert!(number == DEFAULT || !capped(&number));
                    }
                    PickReason::Default => prop_assert_eq!(number.as_str(), DEFAULT),
                    PickReason::AreaCode | PickReason::State => {
                        prop_assert!(prev.is_none_or(|x| !p.contains(x)), "a retry in the pool changed number");
                        prop_assert!(!h.is_rested(&number, t0()));
                        prop_assert!(!capped(&number));
                        let n = PoolNumber::new(&number);
                        let j = contact_jurisdictions(PHONES[phone], None, None);
                        let local = n.area_code == dialerd::core::caller_id::area_code(PHONES[phone])
                            || n.jurisdiction.is_some_and(|x| j.contains(&x));
                        prop_assert!(local, "{} is not local to {}", number, PHONES[phone]);
                    }
                }
                if reason == PickReason::Default {
                    // No usable local number was passed over.
                    let j = contact_jurisdictions(PHONES[phone], None, None);
                    for n in &p.numbers {
                        let local = n.area_code == dialerd::core::caller_id::area_code(PHONES[phone])
                            || n.jurisdiction.is_some_and(|x| j.contains(&x));
                        prop_assert!(!local || h.is_rested(&n.e164, t0()) || capped(&n.e164),
                            "{} was usable and local", n.e164);
                    }
                }
            }
            Pick::Wait { number, until } => {
                prop_assert_eq!(Some(number.as_str()), prev);
                prop_assert!(capped(&number));
                prop_assert!(until > t0());
                // Under the cap at `until`, and still at it a second before.
                let c = cap.unwrap();
                prop_assert!(in_day(&number, until) < c, "still capped at {}", until);
                prop_assert!(in_day(&number, until - TimeDelta::seconds(1)) >= c);
            }
        }
    }
}
