//! The do-not-call lists on both engines (SQLite always, PostgreSQL when
//! `DIALERD_TEST_DATABASE_URL` is set), through the public `Store` API with the stored rows read
//! back in plain SQL: DNC entries kept as first listed, listed in byte order whatever the
//! database's collation, file imports batched, recorded and skipped when unchanged; and an
//! opt-out recorded by one handle refused by another handle's DNC check and claim. The compliance
//! state and the operator's control are in `store_engines_dnc_compliance.rs`.

mod common;
mod store_dnc_common;

use chrono::{DateTime, Utc};
use dialerd::store::{Claim, DncImportStats, DncRow, DncScope, Store};
use std::collections::{BTreeMap, HashSet};
use store_dnc_common::{Db, at, campaign, key, ms, row, seeded, strings};

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
