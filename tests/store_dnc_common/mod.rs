//! What the DNC-list and compliance tests share: instants, DNC scopes and rows, attempt keys,
//! plain SQL on either engine, the stored contact rows and a seeded store.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use dialerd::core::AttemptKey;
use dialerd::store::{DncRow, DncScope, Store};
use std::path::Path;

pub fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + s, 0).unwrap()
}

pub fn ms(s: i64) -> i64 {
    at(s).timestamp_millis()
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub fn campaign(id: &str) -> DncScope {
    DncScope::Campaign(id.to_string())
}

pub fn row(phone: &str, reason: Option<&str>) -> DncRow {
    DncRow {
        phone_e164: phone.to_string(),
        reason: reason.map(str::to_string),
    }
}

pub fn key(contact: i64, attempt: u32) -> AttemptKey {
    AttemptKey { contact, attempt }
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

    pub async fn exec(&self, sql: String) {
        match self {
            Db::Sqlite(p) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(p).await.unwrap();
            }
            Db::Pg(p) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(p).await.unwrap();
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

/// A contact as stored: id, status, disposition, attempts, next_attempt_at, updated_at.
pub type ContactRow = (i64, String, Option<String>, i64, i64, i64);
pub const CONTACTS_SQL: &str = "SELECT id, status, disposition, attempts, next_attempt_at, updated_at
     FROM contacts WHERE campaign_id = 'c' ORDER BY id";

/// A store on `url` with campaign `c` (active, running) and `n` New York contacts; returns the
/// store and the contacts' (id, phone), by id.
pub async fn seeded(dir: &Path, url: &str, n: usize) -> (Store, Vec<(i64, String)>) {
    let store = Store::open(url).await.unwrap();
    store.activate_campaign("c", "C", "c.toml", at(0)).await.unwrap();
    let csv = dir.join(format!("dnc-contacts-{}.csv", store.engine_name()));
    let mut s = String::from("phone\n");
    for i in 0..n {
        s.push_str(&format!("(212) 555-{:04}\n", 1000 + i));
    }
    std::fs::write(&csv, s).unwrap();
    store
        .import_contacts(
            "c",
            &crate::common::contact_source(&csv, crate::common::contacts_columns("phone", &[])),
            at(0),
        )
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
