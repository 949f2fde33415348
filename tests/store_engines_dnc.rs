//! The do-not-call lists, the compliance state and the operator's control on both engines
//! (SQLite always, PostgreSQL when `DIALERD_TEST_DATABASE_URL` is set), through the public `Store`
//! API with the stored rows read back in plain SQL: DNC entries kept as first listed, listed in
//! byte order whatever the database's collation, file imports batched, recorded and skipped when
//! unchanged; an opt-out recorded by one handle refused by another handle's DNC check and claim;
//! deferrals, DNC and consent marks and claim releases that only touch dialable contacts;
//! refusal counts that add up when two handles add at once; abandonment minutes; and pause,
//! resume and cancel with their conditional transitions, raced from two handles.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use dialerd::core::{AttemptKey, RefusalReason};
use dialerd::store::{CampaignControl, Claim, ControlError, DncImportStats, DncRow, DncScope, Store, StoreError};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + s, 0).unwrap()
}

fn ms(s: i64) -> i64 {
    at(s).timestamp_millis()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn campaign(id: &str) -> DncScope {
    DncScope::Campaign(id.to_string())
}

fn row(phone: &str, reason: Option<&str>) -> DncRow {
    DncRow {
        phone_e164: phone.to_string(),
        reason: reason.map(str::to_string),
    }
}

fn key(contact: i64, attempt: u32) -> AttemptKey {
    AttemptKey { contact, attempt }
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

    async fn exec(&self, sql: String) {
        match self {
            Db::Sqlite(p) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(p).await.unwrap();
            }
            Db::Pg(p) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(p).await.unwrap();
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

/// A contact as stored: id, status, disposition, attempts, next_attempt_at, updated_at.
type ContactRow = (i64, String, Option<String>, i64, i64, i64);
const CONTACTS_SQL: &str = "SELECT id, status, disposition, attempts, next_attempt_at, updated_at
     FROM contacts WHERE campaign_id = 'c' ORDER BY id";

/// A store on `url` with campaign `c` (active, running) and `n` New York contacts; returns the
/// store and the contacts' (id, phone), by id.
async fn seeded(dir: &Path, url: &str, n: usize) -> (Store, Vec<(i64, String)>) {
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
            &common::contact_source(&csv, common::contacts_columns("phone", &[])),
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

#[tokio::test]
async fn entries_are_kept_as_first_listed_and_block_only_their_campaign() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "dnc_entries") {
        let store = Store::open(&url).await.unwrap();
        let spring = campaign("spring");
        assert!(store.dnc_list(None, 10).await.unwrap().is_empty(), "{engine}");
        assert!(store.dnc_counts().await.unwrap().is_empty(), "{engine}");
        assert!(
            store
                .dnc_add(&DncScope::Global, "+14155550101", "cli", None, at(0))
                .await
                .unwrap(),
            "{engine}"
        );
        assert!(
            store
                .dnc_add(&spring, "+14155550102", "opt_out:c1a1", Some("said stop"), at(1))
                .await
                .unwrap(),
            "{engine}"
        );
        // Listed again: nothing changes, the first time, source and reason stay.
        assert!(
            !store
                .dnc_add(&spring, "+14155550102", "cli", Some("again"), at(2))
                .await
                .unwrap(),
            "{engine}"
        );
        let e = &store.dnc_list(Some(&spring), 10).await.unwrap();
        assert_eq!(e.len(), 1, "{engine}");
        assert_eq!(
            (
                e[0].scope.clone(),
                e[0].phone_e164.as_str(),
                e[0].source.as_str(),
                e[0].reason.as_deref(),
                e[0].added_at
            ),
            (spring.clone(), "+14155550102", "opt_out:c1a1", Some("said stop"), at(1)),
            "{engine}"
        );

        let asked = strings(&["+14155550101", "+14155550102", "+14155550103"]);
        assert_eq!(
            store.dnc_blocked("spring", &asked).await.unwrap(),
            HashSet::from(["+14155550101".to_string(), "+14155550102".to_string()]),
            "{engine}"
        );
        assert_eq!(
            store.dnc_blocked("autumn", &asked).await.unwrap(),
            HashSet::from(["+14155550101".to_string()]),
            "{engine}"
        );
        assert!(store.dnc_blocked("spring", &[]).await.unwrap().is_empty(), "{engine}");
        // A campaign called `global` shares the global list's key.
        assert!(
            !store
                .dnc_add(&campaign("global"), "+14155550101", "cli", None, at(3))
                .await
                .unwrap(),
            "{engine}"
        );

        // More numbers than one lookup chunk, some listed.
        let many: Vec<String> = (0..1234).map(|i| format!("+1212555{i:04}")).collect();
        for p in many.iter().step_by(100) {
            assert!(store.dnc_add(&spring, p, "cli", None, at(3)).await.unwrap(), "{engine}");
        }
        let blocked = store.dnc_blocked("spring", &many).await.unwrap();
        let want: HashSet<String> = many.iter().step_by(100).cloned().collect();
        assert_eq!(blocked, want, "{engine}");
        assert!(store.dnc_blocked("autumn", &many).await.unwrap().is_empty(), "{engine}");

        let counts = store.dnc_counts().await.unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([(DncScope::Global, 1), (spring.clone(), 14)]),
            "{engine}"
        );

        assert!(store.dnc_remove(&spring, "+14155550102").await.unwrap(), "{engine}");
        assert!(!store.dnc_remove(&spring, "+14155550102").await.unwrap(), "{engine}");
        // Only that list: the global entry is not on spring's list.
        assert!(!store.dnc_remove(&spring, "+14155550101").await.unwrap(), "{engine}");
        assert_eq!(
            store.dnc_blocked("spring", &asked).await.unwrap(),
            HashSet::from(["+14155550101".to_string()]),
            "{engine}"
        );
        assert_eq!(store.dnc_counts().await.unwrap().get(&spring), Some(&13), "{engine}");
    }
}

#[tokio::test]
async fn listing_is_newest_first_then_scope_and_number_in_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "dnc_list_order") {
        let store = Store::open(&url).await.unwrap();
        if engine == "postgres" {
            // As on a server whose default collation is linguistic (the test server's may be
            // `C`): the listing must still come in byte order.
            let db = Db::connect(&url).await;
            let icu: Vec<(String,)> = db
                .rows("SELECT collname::text FROM pg_collation WHERE collname = 'und-x-icu'")
                .await;
            if icu.is_empty() {
                eprintln!("dnc_list_order: no ICU collation on the server; listing checked in its default collation");
            } else {
                db.exec(
                    "ALTER TABLE dnc ALTER COLUMN scope TYPE TEXT COLLATE \"und-x-icu\",
                     ALTER COLUMN phone_e164 TYPE TEXT COLLATE \"und-x-icu\""
                        .into(),
                )
                .await;
            }
            db.close().await;
        }
        // Same instant: scope then number, byte by byte ("Zeta" < "alpha" < "global" in bytes;
        // a linguistic collation would put "Zeta" last).
        for (scope, phone) in [
            (DncScope::Global, "+14155550102"),
            (campaign("alpha"), "+14155550101"),
            (campaign("Zeta"), "+14155550109"),
            (DncScope::Global, "+14155550101"),
            (campaign("alpha"), "+14155550100"),
        ] {
            store.dnc_add(&scope, phone, "cli", None, at(5)).await.unwrap();
        }
        store
            .dnc_add(&campaign("alpha"), "+14155550199", "cli", None, at(1))
            .await
            .unwrap();
        store
            .dnc_add(&campaign("beta"), "+14155550188", "cli", None, at(9))
            .await
            .unwrap();
        let got: Vec<(String, String, DateTime<Utc>)> = store
            .dnc_list(None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.scope.to_string(), e.phone_e164, e.added_at))
            .collect();
        let want: Vec<(String, String, DateTime<Utc>)> = [
            ("beta", "+14155550188", at(9)),
            ("Zeta", "+14155550109", at(5)),
            ("alpha", "+14155550100", at(5)),
            ("alpha", "+14155550101", at(5)),
            ("global", "+14155550101", at(5)),
            ("global", "+14155550102", at(5)),
            ("alpha", "+14155550199", at(1)),
        ]
        .iter()
        .map(|(s, p, t)| (s.to_string(), p.to_string(), *t))
        .collect();
        assert_eq!(got, want, "{engine}");
        // The limit keeps the newest.
        let top: Vec<String> = store
            .dnc_list(None, 3)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.phone_e164)
            .collect();
        assert_eq!(
            top,
            strings(&["+14155550188", "+14155550109", "+14155550100"]),
            "{engine}"
        );
        assert!(store.dnc_list(None, 0).await.unwrap().is_empty(), "{engine}");
        let alpha: Vec<(String, DateTime<Utc>)> = store
            .dnc_list(Some(&campaign("alpha")), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.phone_e164, e.added_at))
            .collect();
        assert_eq!(
            alpha,
            vec![
                ("+14155550100".to_string(), at(5)),
                ("+14155550101".to_string(), at(5)),
                ("+14155550199".to_string(), at(1)),
            ],
            "{engine}"
        );
        assert_eq!(
            store.dnc_list(Some(&DncScope::Global), 1).await.unwrap().len(),
            1,
            "{engine}"
        );
    }
}

#[tokio::test]
async fn file_imports_are_batched_recorded_and_skipped_when_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "dnc_imports") {
        let store = Store::open(&url).await.unwrap();
        let scope = campaign("spring");
        assert_eq!(store.dnc_file(&scope, "/f/list.csv").await.unwrap(), None, "{engine}");
        // Listed before the import: keeps its entry.
        store
            .dnc_add(&scope, "+14155550101", "cli", Some("by hand"), at(0))
            .await
            .unwrap();

        let mut import = store
            .dnc_import(&scope, "/f/list.csv", "sha-1", "file:list.csv", at(10))
            .await
            .unwrap()
            .expect("a first import goes ahead");
        assert_eq!(import.add(&[]).await.unwrap(), 0, "{engine}");
        // Within a batch the first occurrence of a number wins, whatever the order of numbers.
        let first = vec![
            row("+14155550103", Some("first")),
            row("+14155550101", Some("from file")),
            row("+14155550102", None),
            row("+14155550103", Some("second")),
        ];
        assert_eq!(import.add(&first).await.unwrap(), 2, "{engine}");
        // A batch bigger than one multi-row statement, with numbers of the first batch again.
        let mut big: Vec<DncRow> = (0..2500).map(|i| row(&format!("+1212555{i:04}"), None)).collect();
        big.push(row("+14155550102", Some("again")));
        assert_eq!(import.add(&big).await.unwrap(), 2500, "{engine}");
        let stats = import
            .commit(
                "sha-1",
                DncImportStats {
                    rows: 2510,
                    accepted: 2505,
                    rejected: 5,
                    added: 999,
                },
            )
            .await
            .unwrap();
        let want = DncImportStats {
            rows: 2510,
            accepted: 2505,
            rejected: 5,
            added: 2502,
        };
        assert_eq!(stats, want, "{engine}");
        let rec = store.dnc_file(&scope, "/f/list.csv").await.unwrap().unwrap();
        assert_eq!(
            (rec.file_sha256.as_str(), rec.stats, rec.imported_at),
            ("sha-1", want, at(10)),
            "{engine}"
        );
        assert_eq!(store.dnc_counts().await.unwrap().get(&scope), Some(&2503), "{engine}");

        let db = Db::connect(&url).await;
        let rows: Vec<(String, String, Option<String>, i64)> = db
            .rows(
                "SELECT phone_e164, source, reason, added_at FROM dnc
                 WHERE scope = 'spring' AND phone_e164 LIKE '+1415%' ORDER BY phone_e164",
            )
            .await;
        assert_eq!(
            rows,
            vec![
                ("+14155550101".into(), "cli".into(), Some("by hand".into()), ms(0)),
                ("+14155550102".into(), "file:list.csv".into(), None, ms(10)),
                (
                    "+14155550103".into(),
                    "file:list.csv".into(),
                    Some("first".into()),
                    ms(10)
                ),
            ],
            "{engine}"
        );
        db.close().await;

        // The same bytes again: skipped, nothing touched.
        assert!(
            store
                .dnc_import(&scope, "/f/list.csv", "sha-1", "file:list.csv", at(20))
                .await
                .unwrap()
                .is_none(),
            "{engine}"
        );
        // The same file into another list, or changed bytes: imported again.
        assert!(
            store
                .dnc_import(&DncScope::Global, "/f/list.csv", "sha-1", "file:list.csv", at(20))
                .await
                .unwrap()
                .is_some(),
            "{engine}"
        );
        let mut again = store
            .dnc_import(&scope, "/f/list.csv", "sha-2", "file:list.csv", at(30))
            .await
            .unwrap()
            .expect("a changed file is imported");
        assert_eq!(
            again
                .add(&[row("+14155550103", None), row("+14155550104", None)])
                .await
                .unwrap(),
            1,
            "{engine}"
        );
        let stats = again
            .commit(
                "sha-2",
                DncImportStats {
                    rows: 2,
                    accepted: 2,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(stats.added, 1, "{engine}");
        let rec = store.dnc_file(&scope, "/f/list.csv").await.unwrap().unwrap();
        assert_eq!(
            (
                rec.file_sha256.as_str(),
                rec.stats.rows,
                rec.stats.rejected,
                rec.stats.added,
                rec.imported_at
            ),
            ("sha-2", 2, 0, 1, at(30)),
            "{engine}"
        );
        // An import never committed leaves its numbers listed and the file unrecorded.
        let mut cut = store
            .dnc_import(&DncScope::Global, "/f/cut.csv", "sha-c", "file:cut.csv", at(40))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cut.add(&[row("+14155550177", None)]).await.unwrap(), 1, "{engine}");
        drop(cut);
        assert_eq!(
            store.dnc_file(&DncScope::Global, "/f/cut.csv").await.unwrap(),
            None,
            "{engine}"
        );
        assert!(
            store
                .dnc_blocked("any", &strings(&["+14155550177"]))
                .await
                .unwrap()
                .contains("+14155550177"),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn an_opt_out_recorded_by_one_node_is_refused_by_the_other() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "dnc_two_nodes") {
        let (a, c) = seeded(dir.path(), &url, 4).await;
        let b = Store::open(&url).await.unwrap();
        // Node A hears "stop" on a call and lists the number globally.
        assert!(
            a.dnc_add(&DncScope::Global, &c[0].1, "opt_out:c1a1", Some("said stop"), at(1))
                .await
                .unwrap(),
            "{engine}"
        );
        // Node B's last check before a dial and its claim both refuse it.
        let phones: Vec<String> = c.iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(
            b.dnc_blocked("c", &phones).await.unwrap(),
            HashSet::from([c[0].1.clone()]),
            "{engine}"
        );
        let claims: Vec<Claim> = c.iter().map(|(id, p)| Claim::new(key(*id, 1), p)).collect();
        let got = b.claim_attempts("c", &claims, 3, at(2)).await.unwrap();
        assert_eq!(got, vec![key(c[1].0, 1), key(c[2].0, 1), key(c[3].0, 1)], "{engine}");
        let e = b.dnc_list(None, 10).await.unwrap();
        assert_eq!(
            (e.len(), e[0].source.as_str(), e[0].reason.as_deref()),
            (1, "opt_out:c1a1", Some("said stop")),
            "{engine}"
        );

        // Both nodes list the same number at once: exactly one is first.
        let (ra, rb) = tokio::join!(
            a.dnc_add(&DncScope::Global, "+14155550150", "opt_out:a", None, at(3)),
            b.dnc_add(&DncScope::Global, "+14155550150", "opt_out:b", None, at(3)),
        );
        assert!(ra.unwrap() ^ rb.unwrap(), "{engine}");

        // Both import overlapping files at once, in opposite orders: no deadlock, every number
        // listed once, and the new entries counted once between them.
        let mut ia = a
            .dnc_import(&DncScope::Global, "/a.csv", "sa", "file:a.csv", at(4))
            .await
            .unwrap()
            .unwrap();
        let mut ib = b
            .dnc_import(&DncScope::Global, "/b.csv", "sb", "file:b.csv", at(4))
            .await
            .unwrap()
            .unwrap();
        let fwd: Vec<DncRow> = (0..3000).map(|i| row(&format!("+1303555{i:04}"), None)).collect();
        let rev: Vec<DncRow> = fwd.iter().rev().cloned().collect();
        let mut added = 0;
        for _ in 0..3 {
            let (x, y) = tokio::join!(ia.add(&fwd), ib.add(&rev));
            added += x.unwrap() + y.unwrap();
        }
        assert_eq!(added, 3000, "{engine}");
        ia.commit("sa", DncImportStats::default()).await.unwrap();
        ib.commit("sb", DncImportStats::default()).await.unwrap();
        assert_eq!(
            a.dnc_counts().await.unwrap().get(&DncScope::Global),
            Some(&3002),
            "{engine}"
        );
        assert!(
            a.dnc_file(&DncScope::Global, "/b.csv").await.unwrap().is_some(),
            "{engine}"
        );
        // A removal on one node lets the other claim the contact again.
        assert!(b.dnc_remove(&DncScope::Global, &c[0].1).await.unwrap(), "{engine}");
        let got = a.claim_attempts("c", &claims[..1], 3, at(5)).await.unwrap();
        assert_eq!(got, vec![key(c[0].0, 1)], "{engine}");
    }
}

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
