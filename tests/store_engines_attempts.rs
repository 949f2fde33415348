//! Campaign rows, the claim and the attempt lifecycle on both engines (SQLite always, PostgreSQL
//! when `DIALERD_TEST_DATABASE_URL` is set), through the public `Store` API, with the stored rows
//! read back in plain SQL: which claims the conditional claim lets through (status, due time,
//! attempt count, attempt limit, DNC, the operator's control), answers and closes applied once
//! with their call records and jobs, and the open attempts, remaining contacts and lowered limits.
//! The batched call writes, the caller-ID history and the racing handles are in
//! `store_engines_attempts_writes.rs`.

mod common;
mod store_attempts_common;

use dialerd::core::{Disposition, NextStep, Outcome};
use dialerd::store::{CampaignControl, CampaignState, Claim, DncScope, Store};
use std::collections::BTreeMap;
use store_attempts_common::{
    ATTEMPTS_SQL, AttemptRow, CONTACTS_SQL, ContactRow, Db, EndRow, OpenShape, StepRow, at, claim, completed, contact,
    job, job_keys, key, ms, post, retry_at, seeded,
};

#[tokio::test]
async fn campaign_rows_are_created_refreshed_and_set() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "att_campaigns") {
        let store = Store::open(&url).await.unwrap();
        store.activate_campaign("c", "C", "c.toml", at(0)).await.unwrap();
        store.activate_campaign("d", "D", "d.toml", at(1)).await.unwrap();
        store
            .set_campaign_state("c", CampaignState::Paused, at(5))
            .await
            .unwrap();
        store
            .set_campaign_state("d", CampaignState::Finished, at(6))
            .await
            .unwrap();
        // An unknown campaign: nothing happens, no row appears.
        store
            .set_campaign_state("zz", CampaignState::Paused, at(6))
            .await
            .unwrap();
        let db = Db::connect(&url).await;
        let rows: Vec<(String, String, String, String, i64, i64, String)> = db
            .rows("SELECT id, name, file, state, created_at, updated_at, control FROM campaigns ORDER BY id")
            .await;
        assert_eq!(
            rows,
            vec![
                (
                    "c".into(),
                    "C".into(),
                    "c.toml".into(),
                    "paused".into(),
                    ms(0),
                    ms(5),
                    "running".into()
                ),
                (
                    "d".into(),
                    "D".into(),
                    "d.toml".into(),
                    "finished".into(),
                    ms(1),
                    ms(6),
                    "running".into()
                ),
            ],
            "{engine}"
        );
        // Activating again refreshes name and file and makes it active; created_at stays.
        store.activate_campaign("c", "C2", "c2.toml", at(9)).await.unwrap();
        let rows: Vec<(String, String, String, String, i64, i64, String)> = db
            .rows("SELECT id, name, file, state, created_at, updated_at, control FROM campaigns ORDER BY id")
            .await;
        assert_eq!(
            rows[0],
            (
                "c".into(),
                "C2".into(),
                "c2.toml".into(),
                "active".into(),
                ms(0),
                ms(9),
                "running".into()
            ),
            "{engine}"
        );
        assert_eq!(rows[1].3, "finished", "{engine}");
        db.close().await;
    }
}

#[tokio::test]
async fn claims_pass_only_when_status_due_time_count_limit_dnc_and_control_allow() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "att_claims") {
        let (store, c) = seeded(dir.path(), &url, 8).await;
        let db = Db::connect(&url).await;
        assert!(store.claim_attempts("c", &[], 3, at(10)).await.unwrap().is_empty());

        // Numbers on the global list and on c's list are skipped; one on another campaign's
        // list is not.
        store
            .dnc_add(&DncScope::Global, &c[5].1, "test", None, at(1))
            .await
            .unwrap();
        store
            .dnc_add(&DncScope::Campaign("c".into()), &c[6].1, "test", None, at(1))
            .await
            .unwrap();
        store
            .dnc_add(&DncScope::Campaign("other".into()), &c[7].1, "test", None, at(1))
            .await
            .unwrap();

        // Claimed in the order given; a wrong attempt number and a repeat are skipped.
        let claims = vec![
            claim(c[2].0, 1, &c[2].1, Some("+14155550102")),
            claim(c[0].0, 1, &c[0].1, Some("+14155550100")),
            claim(c[1].0, 2, &c[1].1, Some("+14155550101")),
            claim(c[0].0, 1, &c[0].1, Some("+14155550109")),
            claim(c[5].0, 1, &c[5].1, None),
            claim(c[6].0, 1, &c[6].1, None),
            claim(c[7].0, 1, &c[7].1, None),
        ];
        let got = store.claim_attempts("c", &claims, 3, at(10)).await.unwrap();
        assert_eq!(got, vec![key(c[2].0, 1), key(c[0].0, 1), key(c[7].0, 1)], "{engine}");
        let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
        let r0 = contact(&rows, c[0].0);
        assert_eq!(
            (r0.1.as_str(), r0.3, r0.6.as_deref(), r0.7),
            ("in_progress", 1, Some("+14155550100"), ms(10)),
            "{engine}"
        );
        let r1 = contact(&rows, c[1].0);
        assert_eq!((r1.1.as_str(), r1.3, r1.6.clone()), ("pending", 0, None), "{engine}");
        for i in [5, 6] {
            assert_eq!(contact(&rows, c[i].0).1, "pending", "{engine} dnc {i}");
        }
        let attempts: Vec<AttemptRow> = db.rows(ATTEMPTS_SQL).await;
        assert_eq!(
            attempts,
            vec![
                (
                    c[2].0,
                    1,
                    c[2].1.clone(),
                    None,
                    "dialing".into(),
                    ms(10),
                    None,
                    None,
                    None,
                    None,
                    Some("+14155550102".into())
                ),
                (
                    c[0].0,
                    1,
                    c[0].1.clone(),
                    None,
                    "dialing".into(),
                    ms(10),
                    None,
                    None,
                    None,
                    None,
                    Some("+14155550100".into())
                ),
                (
                    c[7].0,
                    1,
                    c[7].1.clone(),
                    None,
                    "dialing".into(),
                    ms(10),
                    None,
                    None,
                    None,
                    None,
                    None
                ),
            ],
            "{engine}"
        );
        // An in-progress contact is not claimed again, whatever the attempt number.
        let again = [claim(c[0].0, 1, &c[0].1, None), claim(c[0].0, 2, &c[0].1, None)];
        assert!(
            store.claim_attempts("c", &again, 3, at(11)).await.unwrap().is_empty(),
            "{engine}"
        );
        // Another campaign's id does not claim c's contacts.
        assert!(
            store
                .claim_attempts("other", &[claim(c[3].0, 1, &c[3].1, None)], 3, at(11))
                .await
                .unwrap()
                .is_empty(),
            "{engine}"
        );

        // Not due before its next attempt; due at it. The caller ID stays when none is given.
        store
            .close_attempt(key(c[0].0, 1), Outcome::NoAnswer, retry_at(at(100)), at(20))
            .await
            .unwrap();
        let second = [claim(c[0].0, 2, &c[0].1, None)];
        assert!(
            store.claim_attempts("c", &second, 3, at(99)).await.unwrap().is_empty(),
            "{engine}"
        );
        // The attempt limit: a second attempt with max_attempts 1 is refused.
        assert!(
            store.claim_attempts("c", &second, 1, at(100)).await.unwrap().is_empty(),
            "{engine}"
        );
        assert_eq!(
            store.claim_attempts("c", &second, 3, at(100)).await.unwrap(),
            vec![key(c[0].0, 2)],
            "{engine}"
        );
        let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
        let r0 = contact(&rows, c[0].0);
        assert_eq!(
            (r0.1.as_str(), r0.3, r0.6.as_deref()),
            ("in_progress", 2, Some("+14155550100")),
            "{engine}"
        );

        // Paused or cancelled by the operator (through another handle): nothing is claimed.
        let other = Store::open(&url).await.unwrap();
        other
            .set_campaign_control("c", CampaignControl::Paused, "test", at(101))
            .await
            .unwrap();
        let next = [claim(c[3].0, 1, &c[3].1, None), claim(c[4].0, 1, &c[4].1, None)];
        assert!(
            store.claim_attempts("c", &next, 3, at(102)).await.unwrap().is_empty(),
            "{engine}"
        );
        other
            .set_campaign_control("c", CampaignControl::Running, "test", at(103))
            .await
            .unwrap();
        assert_eq!(
            store.claim_attempts("c", &next, 3, at(104)).await.unwrap(),
            vec![key(c[3].0, 1), key(c[4].0, 1)],
            "{engine}"
        );
        // An unknown campaign claims nothing.
        assert!(
            store
                .claim_attempts("zz", &[claim(c[1].0, 1, &c[1].1, None)], 3, at(105))
                .await
                .unwrap()
                .is_empty()
        );
        let attempts: Vec<AttemptRow> = db.rows(ATTEMPTS_SQL).await;
        assert_eq!(attempts.len(), 6, "{engine}");
        db.close().await;
    }
}

#[tokio::test]
async fn dial_answer_and_close_are_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "att_lifecycle") {
        let (store, c) = seeded(dir.path(), &url, 4).await;
        let db = Db::connect(&url).await;
        let claims: Vec<Claim> = c.iter().map(|(id, p)| claim(*id, 1, p, Some("+14155550100"))).collect();
        assert_eq!(store.claim_attempts("c", &claims, 3, at(10)).await.unwrap().len(), 4);

        store.record_dialed_many(&[]).await.unwrap();
        // A key given twice keeps the last call id; an unknown key changes nothing.
        store
            .record_dialed_many(&[
                (key(c[0].0, 1), "CA-first".into()),
                (key(c[1].0, 1), "CA1".into()),
                (key(c[0].0, 1), "CA0".into()),
                (key(c[2].0, 1), "CA2".into()),
                (key(c[2].0, 9), "CA-none".into()),
            ])
            .await
            .unwrap();
        store.record_answered(key(c[0].0, 1), at(12)).await.unwrap();
        // A second answer does not move the first.
        store.record_answered(key(c[0].0, 1), at(13)).await.unwrap();
        let attempts: Vec<AttemptRow> = db.rows(ATTEMPTS_SQL).await;
        let calls: Vec<Option<String>> = attempts.iter().map(|a| a.3.clone()).collect();
        assert_eq!(
            calls,
            vec![Some("CA0".into()), Some("CA1".into()), Some("CA2".into()), None],
            "{engine}"
        );
        assert_eq!(
            (attempts[0].4.as_str(), attempts[0].6),
            ("answered", Some(ms(12))),
            "{engine}"
        );
        assert_eq!((attempts[1].4.as_str(), attempts[1].6), ("dialing", None), "{engine}");

        // A close with the call record and its jobs (the trunk placed the call).
        let p = post(vec![job("call-0", at(20))], vec![job("always-0", at(20))]);
        let recorded = store
            .close_attempt_with(key(c[0].0, 1), Outcome::Human, completed(), at(20), Some(&p))
            .await
            .unwrap();
        assert!(recorded, "{engine}");
        let rec = store
            .call_record(&format!("c{}a1", c[0].0))
            .await
            .unwrap()
            .expect("call record");
        assert_eq!(
            (
                rec.trunk_call_id.as_str(),
                rec.attempt,
                rec.callee_number.as_str(),
                rec.dialed_at,
                rec.answered_at,
                rec.ended_at,
                rec.first_agent_speech_at
            ),
            ("CA0", 1, c[0].1.as_str(), at(10), Some(at(12)), at(20), Some(at(103))),
            "{engine}"
        );
        // Closing it again: nothing changes, no record, no job.
        let p2 = post(vec![job("call-0b", at(21))], vec![job("always-0b", at(21))]);
        let again = store
            .close_attempt_with(key(c[0].0, 1), Outcome::NoAnswer, retry_at(at(500)), at(21), Some(&p2))
            .await
            .unwrap();
        assert!(!again, "{engine}");
        store
            .close_attempt(key(c[0].0, 1), Outcome::Busy, retry_at(at(600)), at(22))
            .await
            .unwrap();

        // A close of an attempt the trunk never placed: no call record, no call jobs, the other
        // jobs are queued.
        let p3 = post(vec![job("call-3", at(30))], vec![job("always-3", at(30))]);
        let recorded = store
            .close_attempt_with(key(c[3].0, 1), Outcome::Failed, retry_at(at(300)), at(30), Some(&p3))
            .await
            .unwrap();
        assert!(!recorded, "{engine}");
        store
            .close_attempt(key(c[1].0, 1), Outcome::NoAnswer, retry_at(at(200)), at(31))
            .await
            .unwrap();
        let exhausted = NextStep {
            disposition: Disposition::Exhausted,
            next_attempt_at: None,
        };
        store
            .close_attempt(key(c[2].0, 1), Outcome::Machine, exhausted, at(32))
            .await
            .unwrap();
        assert_eq!(
            job_keys(&store).await,
            vec!["always-0", "always-3", "call-0"],
            "{engine}"
        );

        let attempts: Vec<AttemptRow> = db.rows(ATTEMPTS_SQL).await;
        let ends: Vec<EndRow> = attempts
            .iter()
            .map(|a| (a.4.clone(), a.7, a.8.clone(), a.9.clone()))
            .collect();
        assert_eq!(
            ends,
            vec![
                (
                    "ended".into(),
                    Some(ms(20)),
                    Some("human".into()),
                    Some("completed".into())
                ),
                (
                    "ended".into(),
                    Some(ms(31)),
                    Some("no_answer".into()),
                    Some("retry_scheduled".into())
                ),
                (
                    "ended".into(),
                    Some(ms(32)),
                    Some("machine".into()),
                    Some("exhausted".into())
                ),
                (
                    "ended".into(),
                    Some(ms(30)),
                    Some("failed".into()),
                    Some("retry_scheduled".into())
                ),
            ],
            "{engine}"
        );
        let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
        let steps: Vec<StepRow> = rows
            .iter()
            .map(|r| (r.1.clone(), r.2.clone(), r.3, r.4, r.5.clone(), r.7))
            .collect();
        assert_eq!(
            steps,
            vec![
                (
                    "done".into(),
                    Some("completed".into()),
                    1,
                    0,
                    Some("human".into()),
                    ms(20)
                ),
                ("scheduled".into(), None, 1, ms(200), Some("no_answer".into()), ms(31)),
                (
                    "exhausted".into(),
                    Some("exhausted".into()),
                    1,
                    0,
                    Some("machine".into()),
                    ms(32)
                ),
                ("scheduled".into(), None, 1, ms(300), Some("failed".into()), ms(30)),
            ],
            "{engine}"
        );
        assert!(store.open_attempts("c").await.unwrap().is_empty(), "{engine}");
        db.close().await;
    }
}

#[tokio::test]
async fn open_attempts_remaining_contacts_and_lowered_limits() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "att_open") {
        let (store, c) = seeded(dir.path(), &url, 5).await;
        let db = Db::connect(&url).await;
        assert_eq!(store.remaining_contacts("c", 3).await.unwrap(), 5, "{engine}");
        assert!(store.open_attempts("c").await.unwrap().is_empty());
        // Claimed in the order 3, 1, 0: open attempts come back in claim (row) order.
        let claims = [
            claim(c[3].0, 1, &c[3].1, Some("+14155550103")),
            claim(c[1].0, 1, &c[1].1, None),
            claim(c[0].0, 1, &c[0].1, Some("+14155550100")),
        ];
        assert_eq!(store.claim_attempts("c", &claims, 3, at(10)).await.unwrap().len(), 3);
        store
            .record_dialed_many(&[(key(c[1].0, 1), "CA1".into())])
            .await
            .unwrap();
        store.record_answered(key(c[1].0, 1), at(11)).await.unwrap();
        store.record_voicemail_sent(key(c[1].0, 1), at(12)).await.unwrap();
        store
            .close_attempt(key(c[0].0, 1), Outcome::NoAnswer, retry_at(at(10)), at(13))
            .await
            .unwrap();
        let open = store.open_attempts("c").await.unwrap();
        assert!(store.open_attempts("other").await.unwrap().is_empty());
        let shape: Vec<OpenShape> = open
            .iter()
            .map(|o| {
                (
                    o.key,
                    o.call_id.clone(),
                    o.started_at,
                    o.phone_e164.clone(),
                    o.voicemail_sent,
                    o.caller_id.clone(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (
                    key(c[3].0, 1),
                    None,
                    at(10),
                    c[3].1.clone(),
                    false,
                    Some("+14155550103".into())
                ),
                (key(c[1].0, 1), Some("CA1".into()), at(10), c[1].1.clone(), true, None),
            ],
            "{engine}"
        );
        let fields: BTreeMap<String, String> = [
            ("first_name", "First1"),
            ("last_name", "Last1"),
            ("email", "p1@example.com"),
            ("plan", "plan1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(open[1].fields, fields, "{engine}");

        // Two in progress, one scheduled with 1 attempt, two pending: all five remain under 3
        // attempts; under a limit of 1, the scheduled one has none left.
        assert_eq!(store.remaining_contacts("c", 3).await.unwrap(), 5, "{engine}");
        assert_eq!(store.remaining_contacts("c", 1).await.unwrap(), 4, "{engine}");
        assert_eq!(store.remaining_contacts("other", 3).await.unwrap(), 0, "{engine}");
        assert_eq!(store.exhaust_over_limit("c", 3, at(20)).await.unwrap(), 0, "{engine}");
        assert_eq!(store.exhaust_over_limit("c", 1, at(20)).await.unwrap(), 1, "{engine}");
        let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
        let r0 = contact(&rows, c[0].0);
        assert_eq!(
            (r0.1.as_str(), r0.2.as_deref(), r0.3, r0.7),
            ("exhausted", Some("exhausted"), 1, ms(20)),
            "{engine}"
        );
        // In-progress contacts are left alone even with attempts at the limit.
        assert_eq!(contact(&rows, c[3].0).1, "in_progress", "{engine}");
        assert_eq!(store.remaining_contacts("c", 3).await.unwrap(), 4, "{engine}");
        assert_eq!(store.exhaust_over_limit("c", 1, at(21)).await.unwrap(), 0, "{engine}");
        db.close().await;
    }
}
