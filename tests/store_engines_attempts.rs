//! Campaign rows, the claim and the attempt lifecycle, the batched call writes and the caller-ID
//! history and health on both engines (SQLite always, PostgreSQL when `DIALERD_TEST_DATABASE_URL`
//! is set), through the public `Store` API, with the stored rows read back in plain SQL: which
//! claims the conditional claim lets through (status, due time, attempt count, attempt limit, DNC,
//! the operator's control), answers and closes applied once, call records and jobs written with a
//! close, a failed batch leaving nothing, and two handles on one database racing to claim and to
//! close the same attempts (each contact claimed once, one attempt row each, one close applied).

mod common;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use dialerd::call::CallDetail;
use dialerd::core::caller_id::NumberStats;
use dialerd::core::{AttemptKey, Disposition, NextStep, Outcome};
use dialerd::store::{CallWrite, CampaignControl, CampaignState, Claim, DncScope, NewJob, PostCall, Store};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + s, 0).unwrap()
}

fn ms(s: i64) -> i64 {
    at(s).timestamp_millis()
}

/// Plain SQL on the database of a store, whichever its engine.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Db {
    async fn connect(url: &str) -> Db {
        if url.starts_with("postgres") {
            Db::Pg(sqlx::PgPool::connect(url).await.unwrap())
        } else {
            Db::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        }
    }

    async fn rows<T>(&self, sql: &'static str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        match self {
            Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Db::Pg(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        }
    }

    async fn exec(&self, sql: &'static str) {
        match self {
            Db::Sqlite(p) => {
                sqlx::raw_sql(sql).execute(p).await.unwrap();
            }
            Db::Pg(p) => {
                sqlx::raw_sql(sql).execute(p).await.unwrap();
            }
        }
    }

    async fn close(self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Pg(p) => p.close().await,
        }
    }
}

/// A contact as stored: id, status, disposition, attempts, next_attempt_at, last_outcome,
/// caller_id, updated_at.
type ContactRow = (
    i64,
    String,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
);
const CONTACTS_SQL: &str =
    "SELECT id, status, disposition, attempts, next_attempt_at, last_outcome, caller_id, updated_at
     FROM contacts WHERE campaign_id = 'c' ORDER BY id";

/// An attempt as stored: contact_id, attempt, phone_e164, call_id, state, started_at,
/// answered_at, ended_at, outcome, disposition, caller_id.
type AttemptRow = (
    i64,
    i64,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);
const ATTEMPTS_SQL: &str = "SELECT contact_id, attempt, phone_e164, call_id, state, started_at, answered_at, ended_at,
     outcome, disposition, caller_id FROM attempts ORDER BY id";

/// An attempt's end: state, ended_at, outcome, disposition.
type EndRow = (String, Option<i64>, Option<String>, Option<String>);
/// An attempt's progress: state, answered_at, ended_at, outcome.
type StateRow = (String, Option<i64>, Option<i64>, Option<String>);
/// A contact's step: status, disposition, attempts, next_attempt_at, last_outcome, updated_at.
type StepRow = (String, Option<String>, i64, i64, Option<String>, i64);
/// An open attempt: key, call id, start, number, voicemail sent, caller ID.
type OpenShape = (AttemptKey, Option<String>, DateTime<Utc>, String, bool, Option<String>);
/// A caller-ID sample: number, start, answer, end.
type SampleShape = (String, DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A stored contact's row by id.
fn contact(rows: &[ContactRow], id: i64) -> ContactRow {
    rows.iter().find(|r| r.0 == id).cloned().unwrap()
}

/// A store on `url` with campaign `c` (active, running) and `n` New York contacts with names,
/// email and a custom field `plan`; returns the store and the contacts' (id, phone), by id.
async fn seeded(dir: &Path, url: &str, n: usize) -> (Store, Vec<(i64, String)>) {
    let store = Store::open(url).await.unwrap();
    store.activate_campaign("c", "C", "c.toml", at(0)).await.unwrap();
    let csv = dir.join(format!("contacts-{}.csv", store.engine_name()));
    let mut s = String::from("phone,first_name,last_name,email,plan\n");
    for i in 0..n {
        s.push_str(&format!(
            "(212) {:03}-{:04},First{i},Last{i},p{i}@example.com,plan{i}\n",
            220 + i / 1000,
            1000 + i % 1000
        ));
    }
    std::fs::write(&csv, s).unwrap();
    let mut columns = common::contacts_columns("phone", &[]);
    columns.first_name = Some("first_name".into());
    columns.last_name = Some("last_name".into());
    columns.email = Some("email".into());
    store
        .import_contacts("c", &common::contact_source(&csv, columns), at(0))
        .await
        .unwrap();
    let db = Db::connect(url).await;
    let ids: Vec<(i64, String)> = db
        .rows("SELECT id, phone_e164 FROM contacts WHERE campaign_id = 'c' ORDER BY id")
        .await;
    db.close().await;
    assert_eq!(ids.len(), n);
    (store, ids)
}

fn claim(id: i64, attempt: u32, phone: &str, caller_id: Option<&str>) -> Claim {
    Claim {
        key: AttemptKey { contact: id, attempt },
        phone: phone.to_string(),
        caller_id: caller_id.map(str::to_string),
    }
}

fn key(contact: i64, attempt: u32) -> AttemptKey {
    AttemptKey { contact, attempt }
}

fn retry_at(t: DateTime<Utc>) -> NextStep {
    NextStep {
        disposition: Disposition::RetryScheduled,
        next_attempt_at: Some(t),
    }
}

fn completed() -> NextStep {
    NextStep {
        disposition: Disposition::Completed,
        next_attempt_at: None,
    }
}

fn job(idem: &str, run_at: DateTime<Utc>) -> NewJob {
    NewJob {
        campaign_id: "c".into(),
        order_key: format!("order-{idem}"),
        kind: "webhook".into(),
        event: Some("call.ended".into()),
        idempotency_key: idem.into(),
        payload: format!("{{\"id\":\"{idem}\"}}"),
        max_attempts: 3,
        run_at,
    }
}

fn post(call_jobs: Vec<NewJob>, jobs: Vec<NewJob>) -> PostCall {
    PostCall {
        agent_id: "agent_test".into(),
        caller_number: "+14155550100".into(),
        detail: Some(CallDetail {
            first_agent_speech_at: Some(at(103)),
            ..Default::default()
        }),
        call_jobs,
        jobs,
    }
}

/// The idempotency keys of every queued job, sorted.
async fn job_keys(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = store
        .all_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.idempotency_key)
        .collect();
    v.sort();
    v
}

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

#[tokio::test]
async fn caller_id_history_and_published_health() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "att_caller_ids") {
        let (store, c) = seeded(dir.path(), &url, 6).await;
        // Claimed at three instants; two pairs share a start. The ties come back in claim order.
        let first = [
            claim(c[4].0, 1, &c[4].1, Some("+14155550104")),
            claim(c[0].0, 1, &c[0].1, Some("+14155550100")),
        ];
        store.claim_attempts("c", &first, 3, at(10)).await.unwrap();
        store
            .claim_attempts("c", &[claim(c[1].0, 1, &c[1].1, None)], 3, at(10))
            .await
            .unwrap();
        let later = [
            claim(c[5].0, 1, &c[5].1, Some("+14155550105")),
            claim(c[2].0, 1, &c[2].1, Some("+14155550102")),
        ];
        store.claim_attempts("c", &later, 3, at(20)).await.unwrap();
        store
            .claim_attempts("c", &[claim(c[3].0, 1, &c[3].1, Some("+14155550103"))], 3, at(5))
            .await
            .unwrap();
        store.record_answered(key(c[0].0, 1), at(11)).await.unwrap();
        store
            .close_attempt(key(c[0].0, 1), Outcome::Human, completed(), at(15))
            .await
            .unwrap();
        let h = store.caller_id_history("c", at(10)).await.unwrap();
        let shape: Vec<SampleShape> = h
            .iter()
            .map(|s| (s.number.clone(), s.started_at, s.answered_at, s.ended_at))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("+14155550104".into(), at(10), None, None),
                ("+14155550100".into(), at(10), Some(at(11)), Some(at(15))),
                ("+14155550105".into(), at(20), None, None),
                ("+14155550102".into(), at(20), None, None),
            ],
            "{engine}"
        );
        assert_eq!(store.caller_id_history("c", at(0)).await.unwrap().len(), 5, "{engine}");
        assert_eq!(
            store.caller_id_history("c", at(0)).await.unwrap()[0].number,
            "+14155550103"
        );
        assert!(store.caller_id_history("c", at(21)).await.unwrap().is_empty());
        assert!(store.caller_id_history("other", at(0)).await.unwrap().is_empty());

        assert!(store.caller_id_health("c").await.unwrap().is_none(), "{engine}");
        let numbers = vec![
            NumberStats {
                number: "+14155550100".into(),
                dials_24h: 12,
                calls: 10,
                answer_rate: Some(0.25),
                short_call_rate: None,
                rested_until: Some(at(3600)),
            },
            NumberStats {
                number: "+14155550101".into(),
                dials_24h: 0,
                calls: 0,
                answer_rate: None,
                short_call_rate: None,
                rested_until: None,
            },
        ];
        store.record_caller_id_health("c", &numbers, at(30)).await.unwrap();
        assert_eq!(
            store.caller_id_health("c").await.unwrap(),
            Some((numbers.clone(), at(30))),
            "{engine}"
        );
        // Replaced, not merged.
        store.record_caller_id_health("c", &numbers[1..], at(40)).await.unwrap();
        assert_eq!(
            store.caller_id_health("c").await.unwrap(),
            Some((numbers[1..].to_vec(), at(40))),
            "{engine}"
        );
        assert!(store.caller_id_health("other").await.unwrap().is_none());
        // Unreadable JSON is reported, not hidden.
        let db = Db::connect(&url).await;
        db.exec("UPDATE caller_id_health SET numbers = 'not json' WHERE campaign_id = 'c'")
            .await;
        assert!(
            matches!(
                store.caller_id_health("c").await,
                Err(dialerd::store::StoreError::Corrupt(_))
            ),
            "{engine}"
        );
        db.close().await;
    }
}

/// Makes inserting an outbox job of kind `boom` fail, on either engine.
async fn fail_boom_jobs(db: &Db) {
    match db {
        Db::Sqlite(_) => {
            db.exec(
                "CREATE TRIGGER boom BEFORE INSERT ON outbox WHEN NEW.kind = 'boom'
                 BEGIN SELECT RAISE(ABORT, 'boom'); END",
            )
            .await
        }
        Db::Pg(_) => {
            db.exec(
                "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER boom BEFORE INSERT ON outbox FOR EACH ROW WHEN (NEW.kind = 'boom') EXECUTE FUNCTION boom();",
            )
            .await
        }
    }
}

#[tokio::test]
async fn call_writes_apply_in_order_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "att_batch") {
        let (store, c) = seeded(dir.path(), &url, 4).await;
        let db = Db::connect(&url).await;
        let claims: Vec<Claim> = c.iter().map(|(id, p)| claim(*id, 1, p, None)).collect();
        assert_eq!(store.claim_attempts("c", &claims, 3, at(10)).await.unwrap().len(), 4);
        store
            .record_dialed_many(&[(key(c[0].0, 1), "CA0".into()), (key(c[1].0, 1), "CA1".into())])
            .await
            .unwrap();
        assert!(store.apply_call_writes(&[]).await.unwrap().is_empty());

        let writes = vec![
            CallWrite::Jobs(vec![job("started-0", at(11))], at(11)),
            CallWrite::Answered(key(c[0].0, 1), at(12)),
            CallWrite::Speech {
                key: key(c[0].0, 1),
                latency_ms: Some(2_500),
                silence_abandoned: true,
            },
            CallWrite::Close {
                key: key(c[0].0, 1),
                outcome: Outcome::Abandoned,
                step: retry_at(at(400)),
                ended_at: at(14),
                post: Some(Box::new(post(
                    vec![job("call-0", at(14))],
                    vec![job("always-0", at(14))],
                ))),
            },
            // The same close again in the batch: nothing the second time.
            CallWrite::Close {
                key: key(c[0].0, 1),
                outcome: Outcome::Human,
                step: completed(),
                ended_at: at(15),
                post: Some(Box::new(post(vec![job("call-0b", at(15))], vec![]))),
            },
            // A close without a post (never reached the trunk).
            CallWrite::Close {
                key: key(c[2].0, 1),
                outcome: Outcome::Failed,
                step: retry_at(at(300)),
                ended_at: at(16),
                post: None,
            },
            // The answer of an attempt that the batch closes after.
            CallWrite::Answered(key(c[1].0, 1), at(17)),
            CallWrite::Close {
                key: key(c[1].0, 1),
                outcome: Outcome::Human,
                step: completed(),
                ended_at: at(18),
                post: Some(Box::new(post(vec![], vec![]))),
            },
        ];
        let out = store.apply_call_writes(&writes).await.unwrap();
        assert_eq!(
            out,
            vec![false, false, false, true, false, false, false, true],
            "{engine}"
        );
        assert_eq!(
            job_keys(&store).await,
            vec!["always-0", "call-0", "started-0"],
            "{engine}"
        );
        let rec = store
            .call_record(&format!("c{}a1", c[1].0))
            .await
            .unwrap()
            .expect("call record");
        assert_eq!((rec.answered_at, rec.ended_at), (Some(at(17)), at(18)), "{engine}");
        let speech: Vec<(i64, Option<i64>, i64)> = db
            .rows("SELECT contact_id, speech_latency_ms, speech_abandoned FROM attempts ORDER BY id")
            .await;
        assert_eq!(speech[0], (c[0].0, Some(2_500), 1), "{engine}");
        assert_eq!(speech[1], (c[1].0, None, 0), "{engine}");
        let attempts: Vec<AttemptRow> = db.rows(ATTEMPTS_SQL).await;
        let states: Vec<StateRow> = attempts.iter().map(|a| (a.4.clone(), a.6, a.7, a.8.clone())).collect();
        assert_eq!(
            states,
            vec![
                ("ended".into(), Some(ms(12)), Some(ms(14)), Some("abandoned".into())),
                ("ended".into(), Some(ms(17)), Some(ms(18)), Some("human".into())),
                ("ended".into(), None, Some(ms(16)), Some("failed".into())),
                ("dialing".into(), None, None, None),
            ],
            "{engine}"
        );
        let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
        assert_eq!(contact(&rows, c[0].0).1, "scheduled", "{engine}");
        assert_eq!(contact(&rows, c[0].0).4, ms(400), "{engine}");
        assert_eq!(contact(&rows, c[1].0).1, "done", "{engine}");

        // A batch that fails part way writes nothing, the writes before the failure included.
        fail_boom_jobs(&db).await;
        let mut boom = job("boom-1", at(20));
        boom.kind = "boom".into();
        let failing = vec![
            CallWrite::Answered(key(c[3].0, 1), at(19)),
            CallWrite::Close {
                key: key(c[3].0, 1),
                outcome: Outcome::NoAnswer,
                step: retry_at(at(500)),
                ended_at: at(20),
                post: None,
            },
            CallWrite::Jobs(vec![job("before-boom", at(20))], at(20)),
            CallWrite::Jobs(vec![boom], at(20)),
        ];
        assert!(store.apply_call_writes(&failing).await.is_err(), "{engine}");
        assert_eq!(
            job_keys(&store).await,
            vec!["always-0", "call-0", "started-0"],
            "{engine}"
        );
        let attempts: Vec<AttemptRow> = db.rows(ATTEMPTS_SQL).await;
        assert_eq!((attempts[3].4.as_str(), attempts[3].6), ("dialing", None), "{engine}");
        assert_eq!(
            contact(&db.rows::<ContactRow>(CONTACTS_SQL).await, c[3].0).1,
            "in_progress"
        );
        db.close().await;
    }
}

/// Two handles on one database (two nodes) claim the same due contacts at once, one in the
/// hopper's order and one in reverse, round after round, then both in the same order in one
/// batch: every contact is claimed by exactly one of them with exactly one attempt row, and
/// neither fails (no deadlock). Then both close the same attempts at once: each close is
/// applied once, with one call record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_claim_each_contact_once() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "att_race") {
        let (a, c) = seeded(dir.path(), &url, 300).await;
        let b = Store::open(&url).await.unwrap();
        let db = Db::connect(&url).await;
        let mut now = at(10);
        for round in 1..=4u32 {
            let forward: Vec<Claim> = c
                .iter()
                .map(|(id, p)| claim(*id, round, p, Some("+14155550100")))
                .collect();
            // The last round: the same contacts in the same order, in one batch each.
            let (backward, chunk_len): (Vec<Claim>, usize) = if round == 4 {
                (forward.clone(), c.len())
            } else {
                (forward.iter().rev().cloned().collect(), 25)
            };
            // Several small batches each, as runners claim, so the two interleave.
            let run = |store: Store, claims: Vec<Claim>| async move {
                let mut got = Vec::new();
                for chunk in claims.chunks(chunk_len) {
                    got.extend(store.claim_attempts("c", chunk, 5, now).await.unwrap());
                }
                got
            };
            let (ga, gb) = tokio::join!(
                tokio::spawn(run(a.clone(), forward.clone())),
                tokio::spawn(run(b.clone(), backward))
            );
            let (ga, gb) = (ga.unwrap(), gb.unwrap());
            let sa: HashSet<AttemptKey> = ga.iter().copied().collect();
            let sb: HashSet<AttemptKey> = gb.iter().copied().collect();
            assert!(sa.is_disjoint(&sb), "{engine} round {round}: claimed twice");
            assert_eq!(
                sa.len() + sb.len(),
                c.len(),
                "{engine} round {round}: {} + {}",
                sa.len(),
                sb.len()
            );
            assert_eq!(ga.len(), sa.len());
            assert_eq!(gb.len(), sb.len());
            println!(
                "{engine} round {round}: node a claimed {}, node b {}",
                sa.len(),
                sb.len()
            );
            let per_contact: Vec<(i64, i64, i64)> = db
                .rows("SELECT contact_id, COUNT(*), MAX(attempt) FROM attempts GROUP BY contact_id ORDER BY contact_id")
                .await;
            assert_eq!(per_contact.len(), c.len(), "{engine}");
            assert!(
                per_contact
                    .iter()
                    .all(|&(_, n, max)| n == i64::from(round) && max == i64::from(round)),
                "{engine} round {round}: {per_contact:?}"
            );
            let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
            assert!(
                rows.iter().all(|r| r.1 == "in_progress" && r.3 == i64::from(round)),
                "{engine}"
            );

            // Both close every attempt of the round at once (a recovering node and the owner).
            let keys: Vec<AttemptKey> = c.iter().map(|(id, _)| key(*id, round)).collect();
            let placed: Vec<(AttemptKey, String)> = keys
                .iter()
                .map(|k| (*k, format!("CA{}-{}", k.contact, k.attempt)))
                .collect();
            a.record_dialed_many(&placed).await.unwrap();
            now += TimeDelta::seconds(10);
            let close_all = |store: Store, keys: Vec<AttemptKey>, outcome: Outcome| async move {
                let mut n = 0;
                for k in keys {
                    let p = post(vec![], vec![]);
                    if store
                        .close_attempt_with(k, outcome, retry_at(now), now, Some(&p))
                        .await
                        .unwrap()
                    {
                        n += 1;
                    }
                }
                n
            };
            let rev: Vec<AttemptKey> = keys.iter().rev().copied().collect();
            let (na, nb) = tokio::join!(
                tokio::spawn(close_all(a.clone(), keys.clone(), Outcome::NoAnswer)),
                tokio::spawn(close_all(b.clone(), rev, Outcome::Busy))
            );
            assert_eq!(
                na.unwrap() + nb.unwrap(),
                c.len(),
                "{engine} round {round}: call records"
            );
            let records: Vec<(i64,)> = db.rows("SELECT COUNT(*) FROM call_records").await;
            assert_eq!(records[0].0, i64::from(round) * c.len() as i64, "{engine}");
            // Each contact's step matches the outcome of the close that won.
            let mixed: Vec<(i64,)> = db
                .rows(
                    "SELECT COUNT(*) FROM attempts a JOIN contacts c ON c.id = a.contact_id
                     WHERE a.attempt = c.attempts AND (a.state != 'ended' OR c.status != 'scheduled'
                       OR c.last_outcome IS NULL OR c.last_outcome != a.outcome)",
                )
                .await;
            assert_eq!(mixed[0].0, 0, "{engine} round {round}");
        }
        db.close().await;
    }
}
