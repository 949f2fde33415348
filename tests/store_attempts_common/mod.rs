//! What the attempt-lifecycle and call-write tests share: instants, plain SQL on either engine,
//! the stored contact and attempt rows and their shapes, a seeded store, and the claims, next
//! steps, jobs and post-call writes the tests hand to the `Store`.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use dialerd::call::CallDetail;
use dialerd::core::{AttemptKey, Disposition, NextStep};
use dialerd::store::{Claim, NewJob, PostCall, Store};
use std::path::Path;

pub fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + s, 0).unwrap()
}

pub fn ms(s: i64) -> i64 {
    at(s).timestamp_millis()
}

/// Plain SQL on the database of a store, whichever its engine.
pub enum Db {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Db {
    pub async fn connect(url: &str) -> Db {
        if url.starts_with("postgres") {
            Db::Pg(sqlx::PgPool::connect(url).await.unwrap())
        } else {
            Db::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        }
    }

    pub async fn rows<T>(&self, sql: &'static str) -> Vec<T>
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

    pub async fn exec(&self, sql: &'static str) {
        match self {
            Db::Sqlite(p) => {
                sqlx::raw_sql(sql).execute(p).await.unwrap();
            }
            Db::Pg(p) => {
                sqlx::raw_sql(sql).execute(p).await.unwrap();
            }
        }
    }

    pub async fn close(self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Pg(p) => p.close().await,
        }
    }
}

/// A contact as stored: id, status, disposition, attempts, next_attempt_at, last_outcome,
/// caller_id, updated_at.
pub type ContactRow = (
    i64,
    String,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
);
pub const CONTACTS_SQL: &str =
    "SELECT id, status, disposition, attempts, next_attempt_at, last_outcome, caller_id, updated_at
     FROM contacts WHERE campaign_id = 'c' ORDER BY id";

/// An attempt as stored: contact_id, attempt, phone_e164, call_id, state, started_at,
/// answered_at, ended_at, outcome, disposition, caller_id.
pub type AttemptRow = (
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
pub const ATTEMPTS_SQL: &str =
    "SELECT contact_id, attempt, phone_e164, call_id, state, started_at, answered_at, ended_at,
     outcome, disposition, caller_id FROM attempts ORDER BY id";

/// An attempt's end: state, ended_at, outcome, disposition.
pub type EndRow = (String, Option<i64>, Option<String>, Option<String>);
/// An attempt's progress: state, answered_at, ended_at, outcome.
pub type StateRow = (String, Option<i64>, Option<i64>, Option<String>);
/// A contact's step: status, disposition, attempts, next_attempt_at, last_outcome, updated_at.
pub type StepRow = (String, Option<String>, i64, i64, Option<String>, i64);
/// An open attempt: key, call id, start, number, voicemail sent, caller ID.
pub type OpenShape = (AttemptKey, Option<String>, DateTime<Utc>, String, bool, Option<String>);
/// A caller-ID sample: number, start, answer, end.
pub type SampleShape = (String, DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A stored contact's row by id.
pub fn contact(rows: &[ContactRow], id: i64) -> ContactRow {
    rows.iter().find(|r| r.0 == id).cloned().unwrap()
}

/// A store on `url` with campaign `c` (active, running) and `n` New York contacts with names,
/// email and a custom field `plan`; returns the store and the contacts' (id, phone), by id.
pub async fn seeded(dir: &Path, url: &str, n: usize) -> (Store, Vec<(i64, String)>) {
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
    let mut columns = crate::common::contacts_columns("phone", &[]);
    columns.first_name = Some("first_name".into());
    columns.last_name = Some("last_name".into());
    columns.email = Some("email".into());
    store
        .import_contacts("c", &crate::common::contact_source(&csv, columns), at(0))
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

pub fn claim(id: i64, attempt: u32, phone: &str, caller_id: Option<&str>) -> Claim {
    Claim {
        key: AttemptKey { contact: id, attempt },
        phone: phone.to_string(),
        caller_id: caller_id.map(str::to_string),
    }
}

pub fn key(contact: i64, attempt: u32) -> AttemptKey {
    AttemptKey { contact, attempt }
}

pub fn retry_at(t: DateTime<Utc>) -> NextStep {
    NextStep {
        disposition: Disposition::RetryScheduled,
        next_attempt_at: Some(t),
    }
}

pub fn completed() -> NextStep {
    NextStep {
        disposition: Disposition::Completed,
        next_attempt_at: None,
    }
}

pub fn job(idem: &str, run_at: DateTime<Utc>) -> NewJob {
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

pub fn post(call_jobs: Vec<NewJob>, jobs: Vec<NewJob>) -> PostCall {
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
pub async fn job_keys(store: &Store) -> Vec<String> {
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
