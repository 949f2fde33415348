//! The compliance state and the operator's control on both engines (SQLite always, PostgreSQL
//! when `DIALERD_TEST_DATABASE_URL` is set), through the public `Store` API with the stored rows
//! read back in plain SQL: deferrals, DNC and consent marks and claim releases that only touch
//! dialable contacts; refusal counts that add up when two handles add at once; abandonment
//! minutes; and pause, resume and cancel with their conditional transitions, raced from two
//! handles. The do-not-call lists themselves are in `store_engines_dnc.rs`.

mod common;
mod store_dnc_common;

use dialerd::core::RefusalReason;
use dialerd::store::{CampaignControl, Claim, ControlError, Store, StoreError};
use std::collections::BTreeMap;
use store_dnc_common::{CONTACTS_SQL, ContactRow, Db, at, key, ms, seeded};

#[tokio::test]
async fn deferrals_and_final_marks_touch_only_dialable_contacts() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "dnc_marks") {
        let (store, c) = seeded(dir.path(), &url, 8).await;
        let db = Db::connect(&url).await;
        // c[0] is claimed (in progress); c[1] is scheduled far ahead already.
        let got = store
            .claim_attempts("c", &[Claim::new(key(c[0].0, 1), &c[0].1)], 3, at(1))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "{engine}");
        store.defer_contacts(&[(c[1].0, at(1000))], at(2)).await.unwrap();
        store.defer_contacts(&[], at(3)).await.unwrap();

        store
            .defer_contacts(
                &[
                    (c[0].0, at(500)),
                    (c[1].0, at(400)),
                    (c[2].0, at(300)),
                    (c[2].0, at(600)),
                    (c[2].0, at(350)),
                    (c[3].0, at(200)),
                ],
                at(5),
            )
            .await
            .unwrap();
        let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
        let by_id = |id: i64| rows.iter().find(|r| r.0 == id).cloned().unwrap();
        assert_eq!(by_id(c[0].0).1, "in_progress", "{engine}");
        assert_eq!(by_id(c[0].0).5, ms(1), "{engine}");
        assert_eq!(
            (by_id(c[1].0).1.as_str(), by_id(c[1].0).4, by_id(c[1].0).5),
            ("scheduled", ms(1000), ms(5)),
            "{engine}"
        );
        assert_eq!(
            (by_id(c[2].0).1.as_str(), by_id(c[2].0).4),
            ("scheduled", ms(600)),
            "{engine}"
        );
        assert_eq!(
            (by_id(c[3].0).1.as_str(), by_id(c[3].0).4),
            ("scheduled", ms(200)),
            "{engine}"
        );
        assert_eq!((by_id(c[4].0).1.as_str(), by_id(c[4].0).4), ("pending", 0), "{engine}");

        // DNC marks: dialable ones change (a repeat counts once), the claimed one does not.
        let n = store
            .mark_dnc(&[c[2].0, c[4].0, c[2].0, c[0].0, 999_999], at(6))
            .await
            .unwrap();
        assert_eq!(n, 2, "{engine}");
        assert_eq!(store.mark_dnc(&[], at(6)).await.unwrap(), 0, "{engine}");
        let n = store.mark_no_consent(&[c[4].0, c[5].0, c[3].0], at(7)).await.unwrap();
        assert_eq!(n, 2, "{engine}");
        let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
        let by_id = |id: i64| rows.iter().find(|r| r.0 == id).cloned().unwrap();
        let marks = |i: usize| {
            let r = by_id(c[i].0);
            (r.1, r.2, r.5)
        };
        assert_eq!(marks(0), ("in_progress".into(), None, ms(1)), "{engine}");
        assert_eq!(marks(2), ("dnc".into(), Some("dnc".into()), ms(6)), "{engine}");
        assert_eq!(marks(4), ("dnc".into(), Some("dnc".into()), ms(6)), "{engine}");
        assert_eq!(marks(3), ("done".into(), Some("no_consent".into()), ms(7)), "{engine}");
        assert_eq!(marks(5), ("done".into(), Some("no_consent".into()), ms(7)), "{engine}");
        assert_eq!((marks(6).0.as_str(), marks(6).1), ("pending", None), "{engine}");
        // A contact no longer dialable is not deferred either.
        store.defer_contacts(&[(c[2].0, at(900))], at(8)).await.unwrap();
        let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
        let r = rows.iter().find(|r| r.0 == c[2].0).unwrap();
        assert_eq!((r.1.as_str(), r.4, r.5), ("dnc", ms(600), ms(6)), "{engine}");
        db.close().await;
    }
}

#[tokio::test]
async fn a_claim_stopped_by_the_last_dnc_check_is_undone_once() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "dnc_release") {
        let (store, c) = seeded(dir.path(), &url, 3).await;
        let db = Db::connect(&url).await;
        let claims: Vec<Claim> = c.iter().map(|(id, p)| Claim::new(key(*id, 1), p)).collect();
        assert_eq!(
            store.claim_attempts("c", &claims, 3, at(1)).await.unwrap().len(),
            3,
            "{engine}"
        );
        // c[1] was dialled (it has a call id): not released.
        store
            .record_dialed_many(&[(key(c[1].0, 1), "CA1".to_string())])
            .await
            .unwrap();
        assert!(
            store.release_claim_dnc(key(c[0].0, 1), at(2)).await.unwrap(),
            "{engine}"
        );
        assert!(
            !store.release_claim_dnc(key(c[0].0, 1), at(3)).await.unwrap(),
            "{engine}"
        );
        assert!(
            !store.release_claim_dnc(key(c[1].0, 1), at(3)).await.unwrap(),
            "{engine}"
        );
        assert!(
            !store.release_claim_dnc(key(c[2].0, 2), at(3)).await.unwrap(),
            "{engine}"
        );
        let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
        let got: Vec<(String, Option<String>, i64, i64)> =
            rows.iter().map(|r| (r.1.clone(), r.2.clone(), r.3, r.5)).collect();
        assert_eq!(
            got,
            vec![
                ("dnc".into(), Some("dnc".into()), 0, ms(2)),
                ("in_progress".into(), None, 1, ms(1)),
                ("in_progress".into(), None, 1, ms(1)),
            ],
            "{engine}"
        );
        let attempts: Vec<(i64, i64, String)> = db
            .rows("SELECT contact_id, attempt, state FROM attempts ORDER BY contact_id")
            .await;
        assert_eq!(
            attempts,
            vec![(c[1].0, 1, "dialing".into()), (c[2].0, 1, "dialing".into())],
            "{engine}"
        );

        // Two handles releasing the same claim at once: one undoes it.
        let other = Store::open(&url).await.unwrap();
        let (x, y) = tokio::join!(
            store.release_claim_dnc(key(c[2].0, 1), at(4)),
            other.release_claim_dnc(key(c[2].0, 1), at(4)),
        );
        assert!(x.unwrap() ^ y.unwrap(), "{engine}");
        let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
        assert_eq!((rows[2].1.as_str(), rows[2].3), ("dnc", 0), "{engine}");
        db.close().await;
    }
}

#[tokio::test]
async fn refusal_counts_add_up_across_nodes() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "dnc_refusals") {
        let a = Store::open(&url).await.unwrap();
        let b = Store::open(&url).await.unwrap();
        assert!(a.refusal_counts("c").await.unwrap().is_empty(), "{engine}");
        let first = BTreeMap::from([
            (RefusalReason::Dnc, 3),
            (RefusalReason::OutsideHours, 2),
            (RefusalReason::MinGap, 0),
        ]);
        a.add_refusals("c", &first, at(1)).await.unwrap();
        a.add_refusals("c", &BTreeMap::new(), at(1)).await.unwrap();
        a.add_refusals("other", &BTreeMap::from([(RefusalReason::Dnc, 7)]), at(1))
            .await
            .unwrap();
        assert_eq!(
            a.refusal_counts("c").await.unwrap(),
            BTreeMap::from([(RefusalReason::Dnc, 3), (RefusalReason::OutsideHours, 2)]),
            "{engine}"
        );
        // Two nodes adding at once, many times: every count lands.
        let delta = BTreeMap::from([(RefusalReason::Dnc, 1), (RefusalReason::Holiday, 2)]);
        let run = |s: Store, d: BTreeMap<RefusalReason, u64>| async move {
            for i in 0..20 {
                s.add_refusals("c", &d, at(10 + i)).await.unwrap();
            }
        };
        let (x, y) = tokio::join!(
            tokio::spawn(run(a.clone(), delta.clone())),
            tokio::spawn(run(b.clone(), delta.clone())),
        );
        x.unwrap();
        y.unwrap();
        assert_eq!(
            b.refusal_counts("c").await.unwrap(),
            BTreeMap::from([
                (RefusalReason::OutsideHours, 2),
                (RefusalReason::Dnc, 43),
                (RefusalReason::Holiday, 80),
            ]),
            "{engine}"
        );
        assert_eq!(
            b.refusal_counts("other").await.unwrap(),
            BTreeMap::from([(RefusalReason::Dnc, 7)]),
            "{engine}"
        );
        let db = Db::connect(&url).await;
        let rows: Vec<(String, i64, i64)> = db
            .rows("SELECT reason, count, updated_at FROM compliance_refusals WHERE campaign_id = 'c' AND reason = 'outside_hours'")
            .await;
        assert_eq!(rows, vec![("outside_hours".into(), 2, ms(1))], "{engine}");
        // An unknown stored reason is reported, not skipped.
        db.exec(
            "INSERT INTO compliance_refusals (campaign_id, reason, count, updated_at) VALUES ('bad', 'nope', 1, 0)"
                .into(),
        )
        .await;
        assert!(
            matches!(a.refusal_counts("bad").await, Err(StoreError::Corrupt(_))),
            "{engine}"
        );
        db.close().await;
    }
}

#[tokio::test]
async fn abandonment_is_counted_per_answer_minute() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "dnc_abandon") {
        let (store, c) = seeded(dir.path(), &url, 1).await;
        assert!(store.abandon_minutes("c", at(0)).await.unwrap().is_empty(), "{engine}");
        let db = Db::connect(&url).await;
        let base = ms(0) - ms(0) % 60_000; // a minute boundary
        // (answered ms after base, outcome, speech_abandoned)
        let seeds: [(i64, &str, i64); 10] = [
            (-1, "abandoned", 0),               // before `since`
            (0, "human", 0),                    // minute 0
            (59_999, "abandoned", 0),           // minute 0
            (60_000, "human", 1),               // minute 1: abandoned for silence
            (61_000, "callback_requested", 0),  // minute 1
            (62_000, "machine", 0),             // not a human answer
            (63_000, "no_answer", 1),           // not a human answer
            (180_500, "human", 0),              // minute 3
            (180_600, "callback_requested", 1), // minute 3
            (181_000, "abandoned", 1),          // minute 3, counted once
        ];
        let mut values = Vec::new();
        for (i, (off, outcome, sa)) in seeds.iter().enumerate() {
            let t = base + off;
            values.push(format!(
                "('c', {}, {}, '{}', 'ended', {t}, {t}, {t}, '{outcome}', {sa})",
                c[0].0,
                i + 1,
                c[0].1
            ));
        }
        db.exec(format!(
            "INSERT INTO attempts (campaign_id, contact_id, attempt, phone_e164, state, started_at, answered_at,
             ended_at, outcome, speech_abandoned) VALUES {}",
            values.join(", ")
        ))
        .await;
        // Another campaign's answers do not count.
        db.exec("INSERT INTO campaigns (id, name, file, state, created_at, updated_at) VALUES ('d', 'D', 'd.toml', 'active', 0, 0)".into())
            .await;
        db.exec(format!(
            "INSERT INTO attempts (campaign_id, contact_id, attempt, phone_e164, state, started_at, answered_at,
             outcome) VALUES ('d', {}, 99, '{}', 'ended', {base}, {base}, 'abandoned')",
            c[0].0, c[0].1
        ))
        .await;
        db.close().await;
        let since = chrono::DateTime::from_timestamp_millis(base).unwrap();
        let got: Vec<(i64, u32, u32)> = store
            .abandon_minutes("c", since)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.minute.timestamp_millis() - base, m.human, m.abandoned))
            .collect();
        assert_eq!(got, vec![(0, 2, 1), (60_000, 2, 1), (180_000, 3, 2)], "{engine}");
        let later = chrono::DateTime::from_timestamp_millis(base + 60_001).unwrap();
        let got: Vec<(i64, u32, u32)> = store
            .abandon_minutes("c", later)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.minute.timestamp_millis() - base, m.human, m.abandoned))
            .collect();
        assert_eq!(got, vec![(60_000, 1, 0), (180_000, 3, 2)], "{engine}");
    }
}

#[tokio::test]
async fn pause_resume_cancel_are_conditional_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "dnc_control") {
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.campaign_control("spring").await.unwrap(), None, "{engine}");
        assert!(store.campaign_controls().await.unwrap().is_empty(), "{engine}");
        store
            .activate_campaign("spring", "Spring", "spring.toml", at(0))
            .await
            .unwrap();
        store
            .activate_campaign("autumn", "Autumn", "autumn.toml", at(0))
            .await
            .unwrap();
        let rec = store.campaign_control("spring").await.unwrap().unwrap();
        assert_eq!(
            (rec.control, rec.by, rec.at),
            (CampaignControl::Running, None, None),
            "{engine}"
        );
        // Resuming a running campaign changes nothing.
        let r = store
            .set_campaign_control("spring", CampaignControl::Running, "cli:ops", at(1))
            .await
            .unwrap();
        assert_eq!(
            (r.control, r.by, r.at),
            (CampaignControl::Running, None, None),
            "{engine}"
        );

        let p = store
            .set_campaign_control("spring", CampaignControl::Paused, "cli:ops", at(2))
            .await
            .unwrap();
        assert_eq!(
            (p.control, p.by.as_deref(), p.at),
            (CampaignControl::Paused, Some("cli:ops"), Some(at(2))),
            "{engine}"
        );
        // A re-activation keeps the pause; pausing again keeps the first record.
        store
            .activate_campaign("spring", "Spring 2", "spring.toml", at(3))
            .await
            .unwrap();
        assert_eq!(
            store.campaign_control("spring").await.unwrap(),
            Some(p.clone()),
            "{engine}"
        );
        let again = store
            .set_campaign_control("spring", CampaignControl::Paused, "api:other", at(4))
            .await
            .unwrap();
        assert_eq!(again, p, "{engine}");
        let r = store
            .set_campaign_control("spring", CampaignControl::Running, "api:ops", at(5))
            .await
            .unwrap();
        assert_eq!(
            (r.control, r.by.as_deref(), r.at),
            (CampaignControl::Running, Some("api:ops"), Some(at(5))),
            "{engine}"
        );
        let cancel = store
            .set_campaign_control("spring", CampaignControl::Cancelled, "api:ops", at(6))
            .await
            .unwrap();
        assert_eq!(cancel.control, CampaignControl::Cancelled, "{engine}");
        // Cancelling again returns the record; pausing or resuming is refused.
        assert_eq!(
            store
                .set_campaign_control("spring", CampaignControl::Cancelled, "cli:x", at(7))
                .await
                .unwrap(),
            cancel,
            "{engine}"
        );
        for to in [CampaignControl::Running, CampaignControl::Paused] {
            assert!(
                matches!(
                    store.set_campaign_control("spring", to, "cli:ops", at(8)).await,
                    Err(ControlError::Cancelled(ref id)) if id == "spring"
                ),
                "{engine}"
            );
        }
        assert_eq!(
            store.campaign_control("spring").await.unwrap(),
            Some(cancel.clone()),
            "{engine}"
        );
        assert!(
            matches!(
                store
                    .set_campaign_control("winter", CampaignControl::Paused, "cli:ops", at(8))
                    .await,
                Err(ControlError::UnknownCampaign(ref id)) if id == "winter"
            ),
            "{engine}"
        );
        let mut all = store.campaign_controls().await.unwrap();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            all,
            vec![
                ("autumn".to_string(), CampaignControl::Running),
                ("spring".to_string(), CampaignControl::Cancelled),
            ],
            "{engine}"
        );

        // A paused campaign claims nothing.
        let (s2, c) = seeded(dir.path(), &url, 1).await;
        s2.set_campaign_control("c", CampaignControl::Paused, "cli:ops", at(9))
            .await
            .unwrap();
        let claim = [Claim::new(key(c[0].0, 1), &c[0].1)];
        assert!(
            s2.claim_attempts("c", &claim, 3, at(10)).await.unwrap().is_empty(),
            "{engine}"
        );

        // Two nodes pausing at once, many times: one pause is recorded and every caller gets it.
        let other = Store::open(&url).await.unwrap();
        let race = |s: Store, who: &'static str| async move {
            let mut got = Vec::new();
            for i in 0..10 {
                got.push(
                    s.set_campaign_control("autumn", CampaignControl::Paused, &format!("{who}{i}"), at(20 + i))
                        .await
                        .unwrap(),
                );
            }
            got
        };
        let (x, y) = tokio::join!(
            tokio::spawn(race(store.clone(), "a")),
            tokio::spawn(race(other.clone(), "b"))
        );
        let stored = store.campaign_control("autumn").await.unwrap().unwrap();
        assert_eq!(stored.control, CampaignControl::Paused, "{engine}");
        for r in x.unwrap().into_iter().chain(y.unwrap()) {
            assert_eq!(r, stored, "{engine}");
        }
        // A pause racing a cancel: the campaign ends cancelled either way, and a refused pause
        // is the one that came second.
        let (p, k) = tokio::join!(
            store.set_campaign_control("c", CampaignControl::Running, "a", at(40)),
            other.set_campaign_control("c", CampaignControl::Cancelled, "b", at(40)),
        );
        assert_eq!(k.unwrap().control, CampaignControl::Cancelled, "{engine}");
        match p {
            Ok(r) => assert_eq!(r.control, CampaignControl::Running, "{engine}"),
            Err(ControlError::Cancelled(_)) => {}
            Err(e) => panic!("{engine}: {e}"),
        }
        assert_eq!(
            other.campaign_control("c").await.unwrap().unwrap().control,
            CampaignControl::Cancelled,
            "{engine}"
        );
    }
}
