//! The hopper's queries on both engines (SQLite always, PostgreSQL when
//! `DIALERD_TEST_DATABASE_URL` is set), through the public `Store` API: the zones and their due
//! times, the batch order and its details, buffered contacts skipped, DNC flags, an attempt's
//! history, the remaining-contacts check, the plans of the hot path, and two nodes racing on one
//! hopper. The contact import itself is in `store_engines_contacts.rs`.

mod common;
mod store_contacts_common;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use dialerd::campaign::contacts::ReadOptions;
use dialerd::core::{AttemptKey, ContactStatus, Disposition, NextStep, Outcome};
use dialerd::store::{Claim, DncScope, DueContact, Store};
use std::collections::HashSet;
use std::path::Path;
use store_contacts_common::{CY, HEADER, at, source};

fn epoch() -> DateTime<Utc> {
    Utc.timestamp_opt(0, 0).unwrap()
}

/// `n` contacts with distinct valid numbers over three zones (New York, Los Angeles, Chicago),
/// with a priority of `i % 4` and a plan.
fn hopper_csv(path: &Path, n: usize) {
    let areas = ["212", "415", "312"];
    let mut s = String::from("phone,first_name,last_name,email,priority,alt,plan\n");
    for i in 0..n {
        s.push_str(&format!(
            "({}) {}-{:04},N{i},,,{},,p{i}\n",
            areas[i % 3],
            220 + i / 1000,
            1000 + i % 1000,
            i % 4
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// The phone of row `i` of [`hopper_csv`].
fn hopper_phone(i: usize) -> String {
    let areas = ["212", "415", "312"];
    format!("+1{}{}{:04}", areas[i % 3], 220 + i / 1000, 1000 + i % 1000)
}

async fn hopper_scenario(label: &str, url: &str, dir: &Path) {
    let store = Store::open(url).await.unwrap();
    store.activate_campaign("c", "C", "c.toml", at(0)).await.unwrap();
    store.activate_campaign("empty", "E", "e.toml", at(0)).await.unwrap();
    let path = dir.join(format!("hopper_{label}.csv"));
    hopper_csv(&path, 30);
    store
        .import_contacts_with("c", &source(&path), at(1), &ReadOptions::default())
        .await
        .unwrap();

    let zones = store.hopper_zones("c").await.unwrap();
    assert_eq!(
        zones,
        vec![
            ("America/Chicago".to_string(), epoch()),
            ("America/Los_Angeles".to_string(), epoch()),
            ("America/New_York".to_string(), epoch()),
        ],
        "{label}"
    );
    assert!(store.hopper_zones("empty").await.unwrap().is_empty(), "{label}");
    let all: Vec<String> = zones.iter().map(|z| z.0.clone()).collect();

    // Everything is due at once: priority (higher first), then id (file order).
    let now = at(100);
    let due = store.hopper_batch("c", now, &all, 10, &HashSet::new()).await.unwrap();
    let mut expected: Vec<usize> = (0..30).collect();
    expected.sort_by_key(|i| (std::cmp::Reverse(i % 4), *i));
    let phones: Vec<String> = due.iter().map(|d| d.phone_e164.clone()).collect();
    let want: Vec<String> = expected[..10].iter().map(|i| hopper_phone(*i)).collect();
    assert_eq!(phones, want, "{label}");
    let d0: &DueContact = &due[0];
    assert_eq!(d0.status, ContactStatus::Pending, "{label}");
    assert_eq!(
        (d0.attempts, d0.dnc, d0.caller_id.as_deref()),
        (0, false, None),
        "{label}"
    );
    assert_eq!(d0.timezone, "America/New_York", "{label}: row 3 is a 212 number");
    assert_eq!(d0.fields.get("first_name").map(String::as_str), Some("N3"), "{label}");
    assert_eq!(d0.fields.get("plan").map(String::as_str), Some("p3"), "{label}");
    assert!(d0.recent_attempts.is_empty() && d0.last_attempt_at.is_none(), "{label}");
    let ids: Vec<i64> = due.iter().map(|d| d.id).collect();

    // Skipping the buffered ones gives the next ones; one zone gives only its contacts.
    let skip: HashSet<i64> = ids[..4].iter().copied().collect();
    let next = store.hopper_batch("c", now, &all, 6, &skip).await.unwrap();
    assert_eq!(
        next.iter().map(|d| d.id).collect::<Vec<_>>(),
        ids[4..].to_vec(),
        "{label}"
    );
    let ny = store
        .hopper_batch("c", now, &all[2..], 100, &HashSet::new())
        .await
        .unwrap();
    assert_eq!(ny.len(), 10, "{label}");
    assert!(ny.iter().all(|d| d.timezone == "America/New_York"), "{label}");
    assert!(
        store
            .hopper_batch("c", now, &[], 10, &HashSet::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .hopper_batch("c", now, &all, 0, &HashSet::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .hopper_batch("c", now, &["Europe/Paris".into()], 10, &HashSet::new())
            .await
            .unwrap()
            .is_empty()
    );

    // DNC flags: the global list and the campaign's count, another campaign's does not.
    let (p0, p1, p2) = (
        due[0].phone_e164.clone(),
        due[1].phone_e164.clone(),
        due[2].phone_e164.clone(),
    );
    store.dnc_add(&DncScope::Global, &p0, "test", None, now).await.unwrap();
    store
        .dnc_add(&DncScope::Campaign("c".into()), &p1, "test", None, now)
        .await
        .unwrap();
    store
        .dnc_add(&DncScope::Campaign("empty".into()), &p2, "test", None, now)
        .await
        .unwrap();
    let flagged = store.hopper_batch("c", now, &all, 3, &HashSet::new()).await.unwrap();
    assert_eq!(
        flagged.iter().map(|d| d.dnc).collect::<Vec<_>>(),
        vec![true, true, false],
        "{label}"
    );

    // An attempt: abandoned, retried in the past so it is due again (after the never-dialled
    // ones, due since the epoch); its history comes with it. Attempts older than 50 hours are
    // not recent.
    let x = due[3].id;
    let key = AttemptKey { contact: x, attempt: 1 };
    let t_claim = at(200);
    assert_eq!(
        store
            .claim_attempts("c", &[Claim::new(key, &due[3].phone_e164)], 3, t_claim)
            .await
            .unwrap(),
        vec![key]
    );
    assert!(
        store
            .hopper_batch("c", t_claim, &all, 100, &HashSet::new())
            .await
            .unwrap()
            .iter()
            .all(|d| d.id != x)
    );
    assert!(
        store.has_remaining_contacts("c", 0).await.unwrap(),
        "{label}: one is on a call"
    );
    let step = NextStep {
        disposition: Disposition::RetryScheduled,
        next_attempt_at: Some(at(-100)),
    };
    store
        .close_attempt(key, Outcome::Abandoned, step, at(230))
        .await
        .unwrap();
    let later = at(300);
    let again = store
        .hopper_batch("c", later, &all, 100, &HashSet::new())
        .await
        .unwrap();
    assert_eq!(again.len(), 30, "{label}");
    let d = again.last().unwrap();
    assert_eq!(
        (d.id, d.attempts, d.status),
        (x, 1, ContactStatus::Scheduled),
        "{label}"
    );
    assert_eq!(d.next_attempt_at, at(-100), "{label}");
    assert_eq!(d.recent_attempts, vec![t_claim], "{label}");
    assert_eq!(
        (d.last_attempt_at, d.last_abandoned_at),
        (Some(t_claim), Some(at(230))),
        "{label}"
    );
    let much_later = t_claim + TimeDelta::hours(51);
    let old = store
        .hopper_batch("c", much_later, &all, 100, &HashSet::new())
        .await
        .unwrap();
    let old = old.iter().find(|d| d.id == x).unwrap();
    assert!(
        old.recent_attempts.is_empty() && old.last_attempt_at == Some(t_claim),
        "{label}"
    );

    // A zone's due time is the earliest of its dialable contacts.
    let one = dir.join(format!("one_{label}.csv"));
    std::fs::write(&one, format!("{HEADER}(312) 220-1003,Cy,,,,,\n")).unwrap();
    store.activate_campaign("one", "O", "o.toml", at(0)).await.unwrap();
    store
        .import_contacts_with("one", &source(&one), at(1), &ReadOptions::default())
        .await
        .unwrap();
    let cy = store
        .hopper_batch("one", now, &["America/Chicago".into()], 5, &HashSet::new())
        .await
        .unwrap();
    assert_eq!(
        cy.len(),
        1,
        "{label}: the same number in another campaign is another contact"
    );
    let key = AttemptKey {
        contact: cy[0].id,
        attempt: 1,
    };
    store
        .claim_attempts("one", &[Claim::new(key, CY)], 3, now)
        .await
        .unwrap();
    assert!(
        store.hopper_zones("one").await.unwrap().is_empty(),
        "{label}: none dialable"
    );
    let step = NextStep {
        disposition: Disposition::RetryScheduled,
        next_attempt_at: Some(at(500)),
    };
    store.close_attempt(key, Outcome::NoAnswer, step, now).await.unwrap();
    assert_eq!(
        store.hopper_zones("one").await.unwrap(),
        vec![("America/Chicago".to_string(), at(500))],
        "{label}"
    );
    assert!(
        store
            .hopper_batch("one", at(499), &["America/Chicago".into()], 5, &HashSet::new())
            .await
            .unwrap()
            .is_empty()
    );

    // Remaining contacts: any dialable below the limit, or one on a call.
    assert!(store.has_remaining_contacts("c", 3).await.unwrap(), "{label}");
    assert!(
        store.has_remaining_contacts("c", 1).await.unwrap(),
        "{label}: 29 never dialled"
    );
    assert!(!store.has_remaining_contacts("c", 0).await.unwrap(), "{label}");
    assert!(!store.has_remaining_contacts("empty", 3).await.unwrap(), "{label}");

    // The plans of the hot path, by name.
    let plans = store.hot_query_plans().await.unwrap();
    for name in [
        "hopper_zones",
        "hopper_batch",
        "hopper_details",
        "claim_contact",
        "insert_attempt",
        "record_dialed_many",
        "record_answered",
        "close_attempt",
        "close_contact",
        "dnc_blocked",
        "has_remaining_contacts",
    ] {
        assert!(
            // SQLite's plan of a plain INSERT … VALUES has no lines.
            plans
                .get(name)
                .is_some_and(|l| !l.is_empty() || name == "insert_attempt"),
            "{label}: no plan for {name}: {plans:#?}"
        );
    }
    if label == "postgres" {
        // EXPLAIN's text: the top node first, with its cost estimate.
        assert!(plans.values().all(|l| l[0].contains("cost=")), "{plans:#?}");
    } else {
        assert!(
            plans["hopper_batch"].iter().any(|l| l.contains("contacts_hopper")),
            "{plans:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hopper_orders_flags_and_counts_alike_on_both_engines() {
    let tmp = tempfile::tempdir().unwrap();
    for (label, url) in common::engine_urls(tmp.path(), "contacts_hopper") {
        hopper_scenario(label, &url, tmp.path()).await;
    }
}

/// Two nodes (two stores on one database) read the same hopper batch and claim it at once:
/// each contact is claimed by exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_on_one_hopper_claim_each_contact_once() {
    let tmp = tempfile::tempdir().unwrap();
    for (label, url) in common::engine_urls(tmp.path(), "contacts_race") {
        let a = Store::open(&url).await.unwrap();
        let b = Store::open(&url).await.unwrap();
        a.activate_campaign("c", "C", "c.toml", at(0)).await.unwrap();
        let path = tmp.path().join(format!("race_{label}.csv"));
        hopper_csv(&path, 300);
        a.import_contacts_with("c", &source(&path), at(1), &ReadOptions::default())
            .await
            .unwrap();
        let zones: Vec<String> = b.hopper_zones("c").await.unwrap().into_iter().map(|z| z.0).collect();
        let now = at(100);
        let none = HashSet::new();
        let (da, db) = tokio::join!(
            a.hopper_batch("c", now, &zones, 200, &none),
            b.hopper_batch("c", now, &zones, 200, &none)
        );
        let (da, db) = (da.unwrap(), db.unwrap());
        let ids = |d: &[DueContact]| d.iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(&da), ids(&db), "{label}: both nodes see the same batch");
        let claims = |d: &[DueContact]| {
            d.iter()
                .map(|c| {
                    Claim::new(
                        AttemptKey {
                            contact: c.id,
                            attempt: c.attempts + 1,
                        },
                        &c.phone_e164,
                    )
                })
                .collect::<Vec<_>>()
        };
        let (claims_a, claims_b) = (claims(&da), claims(&db));
        let (ca, cb) = tokio::join!(
            a.claim_attempts("c", &claims_a, 3, now),
            b.claim_attempts("c", &claims_b, 3, now)
        );
        let (ca, cb): (HashSet<_>, HashSet<_>) = (ca.unwrap().into_iter().collect(), cb.unwrap().into_iter().collect());
        assert!(ca.is_disjoint(&cb), "{label}: a contact claimed twice");
        assert_eq!(ca.len() + cb.len(), 200, "{label}: {} + {}", ca.len(), cb.len());
        eprintln!("{label}: node a claimed {}, node b {}", ca.len(), cb.len());
        let left = a.hopper_batch("c", now, &zones, 500, &HashSet::new()).await.unwrap();
        assert_eq!(left.len(), 100, "{label}");
    }
}
