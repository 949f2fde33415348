//! The contact import on both engines (SQLite always, PostgreSQL when
//! `DIALERD_TEST_DATABASE_URL` is set), through the public `Store` API: the merge semantics of a
//! re-import (which fields change, `updated_at` only on a real change, progress kept, a refused
//! contact made dialable again), the reject report, and the time of a 100,000-row import and of
//! its re-import (printed, not asserted; on PostgreSQL the hopper's plans must then use its
//! index). Stored rows are also read back with plain SQL, and the same scenario must leave the
//! same rows on both engines. The hopper's queries are in `store_engines_hopper.rs`.

mod common;
mod store_contacts_common;

use chrono::{DateTime, Utc};
use dialerd::campaign::contacts::{ContactReject, ImportStats, ReadOptions, file_sha256};
use dialerd::core::{AttemptKey, Disposition, NextStep, Outcome};
use dialerd::store::{Claim, ImportOutcome, Store};
use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;
use store_contacts_common::{CY, HEADER, at, source};

/// Two rows and a reject per batch, one validating thread: duplicates of earlier batches go
/// through the merge with the stored row.
fn small_batches() -> ReadOptions {
    ReadOptions {
        batch_rows: 2,
        chunk_rows: 1,
        threads: 1,
    }
}

/// One stored contact, as plain SQL reads it back.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
struct StoredContact {
    phone_e164: String,
    extension: Option<String>,
    alternate_phones: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    timezone: String,
    priority: i64,
    custom_fields: String,
    source_line: i64,
    status: String,
    disposition: Option<String>,
    attempts: i64,
    next_attempt_at: i64,
    updated_at: i64,
}

const SNAPSHOT_SQL: &str = "SELECT phone_e164, extension, alternate_phones, first_name, last_name, email, timezone, \
     priority, custom_fields, source_line, status, disposition, attempts, next_attempt_at, updated_at \
     FROM contacts WHERE campaign_id = 'c' ORDER BY phone_e164";

/// The campaign's contacts as stored, by number, read with plain SQL on the engine of `url`.
async fn snapshot(url: &str) -> Vec<StoredContact> {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_as(SNAPSHOT_SQL).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_as(SNAPSHOT_SQL).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

/// One integer from plain SQL (`COUNT(*)`, …) on the engine of `url`.
async fn scalar(url: &str, sql: &'static str) -> i64 {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let v = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        v
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let v = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        v
    }
}

/// Plain SQL that returns nothing, on the engine of `url`.
async fn execute(url: &str, sql: &'static str) {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

fn find<'a>(rows: &'a [StoredContact], phone: &str) -> &'a StoredContact {
    rows.iter()
        .find(|r| r.phone_e164 == phone)
        .unwrap_or_else(|| panic!("{phone} not stored: {rows:#?}"))
}

const ANN: &str = "+12122201000";
const BOB: &str = "+14152201001";
const DEE: &str = "+12122201004";

/// Version 1: Ann, Bob (with an alternate), a malformed row with more cells than the header,
/// a duplicate of Ann that fills her last name and adds an alternate, Cy with an extension, a
/// row without a number.
fn v1() -> String {
    format!(
        "{HEADER}(212) 220-1000,Ann,,ann@example.com,,,basic\n\
         (415) 220-1001,Bob,Lee,,5,(312) 220-1002,pro\n\
         not a phone,Bad,,,,,,extra,cells\n\
         (212) 220-1000,,Smith,,,(415) 220-1009,\n\
         (312) 220-1003 x12,Cy,,,1,,\n\
         ,Empty,,,,,\n"
    )
}

/// Version 2: the same lines but Bob's email and Cy's first name changed, and Dee in place of the
/// row without a number.
fn v2() -> String {
    format!(
        "{HEADER}(212) 220-1000,Ann,,ann@example.com,,,basic\n\
         (415) 220-1001,Bob,Lee,bob@example.com,5,(312) 220-1002,pro\n\
         not a phone,Bad,,,,,,extra,cells\n\
         (212) 220-1000,,Smith,,,(415) 220-1009,\n\
         (312) 220-1003 x12,Cyrus,,,1,,\n\
         (212) 220-1004,Dee,,,,,\n"
    )
}

/// Imports, reports and re-imports on one engine; returns the stored rows after each import so
/// the engines can be compared.
async fn import_scenario(label: &str, url: &str, dir: &Path) -> Vec<Vec<StoredContact>> {
    let store = Store::open(url).await.unwrap();
    store.activate_campaign("c", "C", "c.toml", at(0)).await.unwrap();
    let path = dir.join(format!("{label}.csv"));
    std::fs::write(&path, v1()).unwrap();
    let src = source(&path);
    assert!(store.last_import("c").await.unwrap().is_none(), "{label}");

    let out = store
        .import_contacts_with("c", &src, at(1), &small_batches())
        .await
        .unwrap();
    let stats = ImportStats {
        rows: 6,
        accepted: 3,
        rejected: 2,
        duplicates: 1,
        alternate_phones_dropped: 0,
    };
    assert_eq!(out, ImportOutcome::Imported(stats), "{label}");
    let rec = store.last_import("c").await.unwrap().unwrap();
    assert_eq!(rec.file, path.display().to_string(), "{label}");
    assert_eq!(rec.file_sha256, file_sha256(&path).unwrap(), "{label}");
    assert_eq!(rec.stats, stats, "{label}");
    assert_eq!(rec.imported_at, at(1), "{label}");
    assert!(
        rec.column_map.contains("\"priority\":\"priority\""),
        "{label}: {}",
        rec.column_map
    );

    // The reject report: by line, with cells, paged, the header, the widest row.
    let rejects = store.import_rejects("c", 10).await.unwrap();
    assert_eq!(
        rejects.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![4, 7],
        "{label}"
    );
    let bad: &ContactReject = &rejects[0];
    assert_eq!(bad.fields.len(), 9, "{label}: {bad:?}");
    assert_eq!(bad.fields[0], "not a phone", "{label}");
    assert_eq!(bad.fields[8], "cells", "{label}");
    assert!(!rejects[1].reason.is_empty(), "{label}");
    assert_eq!(rejects[1].fields[1], "Empty", "{label}");
    let first = store.import_rejects("c", 1).await.unwrap();
    assert_eq!(first, rejects[..1].to_vec(), "{label}");
    let after = store.import_rejects_after("c", 4, 10).await.unwrap();
    assert_eq!(after, rejects[1..].to_vec(), "{label}");
    assert!(
        store.import_rejects_after("c", 7, 10).await.unwrap().is_empty(),
        "{label}"
    );
    assert!(store.import_rejects("c", 0).await.unwrap().is_empty(), "{label}");
    let header: Vec<String> = HEADER.trim_end().split(',').map(String::from).collect();
    assert_eq!(
        store.import_reject_header("c").await.unwrap(),
        Some(header.clone()),
        "{label}"
    );
    assert_eq!(store.import_rejects_widest("c").await.unwrap(), 9, "{label}");
    assert!(store.import_rejects("other", 10).await.unwrap().is_empty(), "{label}");
    assert_eq!(store.import_reject_header("other").await.unwrap(), None, "{label}");
    assert_eq!(store.import_rejects_widest("other").await.unwrap(), 0, "{label}");

    let s1 = snapshot(url).await;
    assert_eq!(s1.len(), 3, "{label}: {s1:#?}");
    let ann = find(&s1, ANN);
    assert_eq!(ann.first_name.as_deref(), Some("Ann"), "{label}");
    assert_eq!(ann.last_name.as_deref(), Some("Smith"), "{label}: merged from line 5");
    assert_eq!(
        ann.alternate_phones, r#"["+14152201009"]"#,
        "{label}: alternate merged from line 5"
    );
    assert_eq!(ann.timezone, "America/New_York", "{label}");
    assert_eq!(ann.custom_fields, r#"{"plan":"basic"}"#, "{label}");
    assert_eq!(
        (ann.source_line, ann.status.as_str(), ann.attempts, ann.updated_at),
        (2, "pending", 0, to_ms(at(1))),
        "{label}"
    );
    let bob = find(&s1, BOB);
    assert_eq!(
        (bob.priority, bob.alternate_phones.as_str()),
        (5, r#"["+13122201002"]"#),
        "{label}"
    );
    let cy = find(&s1, CY);
    assert_eq!(
        (cy.extension.as_deref(), cy.priority, cy.timezone.as_str()),
        (Some("12"), 1, "America/Chicago"),
        "{label}"
    );

    // The same file and mapping again: nothing is touched.
    let again = store
        .import_contacts_with("c", &src, at(2), &small_batches())
        .await
        .unwrap();
    assert_eq!(again, ImportOutcome::Unchanged, "{label}");
    assert_eq!(
        store.last_import("c").await.unwrap().unwrap().imported_at,
        at(1),
        "{label}"
    );
    assert_eq!(snapshot(url).await, s1, "{label}");

    // Progress: Bob dialled once and scheduled; Ann and Cy refused for lack of consent.
    let bob_id = id_of(&store, BOB).await;
    let key = AttemptKey {
        contact: bob_id,
        attempt: 1,
    };
    let claimed = store
        .claim_attempts("c", &[Claim::new(key, BOB)], 3, at(3))
        .await
        .unwrap();
    assert_eq!(claimed, vec![key], "{label}");
    let step = NextStep {
        disposition: Disposition::RetryScheduled,
        next_attempt_at: Some(at(7200)),
    };
    store.close_attempt(key, Outcome::NoAnswer, step, at(4)).await.unwrap();
    let (ann_id, cy_id) = (id_of(&store, ANN).await, id_of(&store, CY).await);
    assert_eq!(
        store.mark_no_consent(&[ann_id, cy_id], at(5)).await.unwrap(),
        2,
        "{label}"
    );
    let s2 = snapshot(url).await;

    // Version 2 at t=10, read in one batch (so Ann's duplicate is merged before she is written):
    // only the rows whose data changed move.
    std::fs::write(&path, v2()).unwrap();
    let out = store
        .import_contacts_with("c", &src, at(10), &ReadOptions::default())
        .await
        .unwrap();
    let stats2 = ImportStats {
        rows: 6,
        accepted: 4,
        rejected: 1,
        duplicates: 1,
        alternate_phones_dropped: 0,
    };
    assert_eq!(out, ImportOutcome::Imported(stats2), "{label}");
    assert_eq!(store.last_import("c").await.unwrap().unwrap().stats, stats2, "{label}");
    let rejects = store.import_rejects("c", 10).await.unwrap();
    assert_eq!(rejects.iter().map(|r| r.line).collect::<Vec<_>>(), vec![4], "{label}");
    let s3 = snapshot(url).await;
    assert_eq!(s3.len(), 4, "{label}");
    // Ann: same data, so untouched, still refused.
    assert_eq!(find(&s3, ANN), find(&s2, ANN), "{label}");
    assert_eq!(find(&s3, ANN).status, "done", "{label}");
    assert_eq!(find(&s3, ANN).disposition.as_deref(), Some("no_consent"), "{label}");
    // Bob: new email, progress kept.
    let bob = find(&s3, BOB);
    assert_eq!(bob.email.as_deref(), Some("bob@example.com"), "{label}");
    assert_eq!(
        (
            bob.status.as_str(),
            bob.disposition.as_deref(),
            bob.attempts,
            bob.next_attempt_at,
            bob.updated_at
        ),
        ("scheduled", None, 1, to_ms(at(7200)), to_ms(at(10))),
        "{label}"
    );
    // Cy: new first name, and a refused contact whose data changed is dialable again.
    let cy = find(&s3, CY);
    assert_eq!(
        (
            cy.first_name.as_deref(),
            cy.status.as_str(),
            cy.disposition.as_deref(),
            cy.updated_at
        ),
        (Some("Cyrus"), "pending", None, to_ms(at(10))),
        "{label}"
    );
    let dee = find(&s3, DEE);
    assert_eq!(
        (dee.status.as_str(), dee.attempts, dee.updated_at, dee.source_line),
        ("pending", 0, to_ms(at(10)), 7),
        "{label}"
    );

    // A file with no rows: the rejects are replaced (by none) and its header recorded.
    std::fs::write(&path, "phone,first_name,last_name,email,priority,alt\n").unwrap();
    let out = store
        .import_contacts_with("c", &src, at(20), &small_batches())
        .await
        .unwrap();
    assert_eq!(out, ImportOutcome::Imported(ImportStats::default()), "{label}");
    assert!(store.import_rejects("c", 10).await.unwrap().is_empty(), "{label}");
    assert_eq!(store.import_rejects_widest("c").await.unwrap(), 0, "{label}");
    assert_eq!(
        store.import_reject_header("c").await.unwrap(),
        Some(header[..6].to_vec()),
        "{label}"
    );
    assert_eq!(snapshot(url).await, s3, "{label}: contacts missing from the file stay");
    vec![s1, s2, s3]
}

fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The id of the contact with `phone`, from the hopper (every zone, everything due).
async fn id_of(store: &Store, phone: &str) -> i64 {
    let zones: Vec<String> = store
        .hopper_zones("c")
        .await
        .unwrap()
        .into_iter()
        .map(|z| z.0)
        .collect();
    let due = store
        .hopper_batch("c", at(1_000_000), &zones, 1000, &HashSet::new())
        .await
        .unwrap();
    due.iter().find(|d| d.phone_e164 == phone).map(|d| d.id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_merges_reports_and_reimports_alike_on_both_engines() {
    let tmp = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (label, url) in common::engine_urls(tmp.path(), "contacts_import") {
        results.push((label, import_scenario(label, &url, tmp.path()).await));
    }
    for (label, snaps) in &results[1..] {
        assert_eq!(snaps, &results[0].1, "{label} stored other rows than {}", results[0].0);
    }
}

/// `n` contacts (n ≤ 100,000) with distinct valid numbers over ten area codes.
fn big_csv(path: &Path, n: usize, changed: Option<usize>) {
    let areas = ["212", "415", "312", "602", "617", "303", "206", "404", "512", "702"];
    let mut s = String::with_capacity(n * 40);
    s.push_str("phone,first_name,last_name,email,priority,alt,plan\n");
    for i in 0..n {
        let name = if changed == Some(i) {
            "Changed".to_string()
        } else {
            format!("Name{i}")
        };
        s.push_str(&format!(
            "({}) {}-{:04},{name},,,,,basic\n",
            areas[i / 10_000 % 10],
            220 + (i / 1000) % 10,
            1000 + i % 1000
        ));
    }
    std::fs::write(path, s).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_row_import_is_timed_on_both_engines() {
    const N: usize = 100_000;
    let tmp = tempfile::tempdir().unwrap();
    for (label, url) in common::engine_urls(tmp.path(), "contacts_100k") {
        let store = Store::open(&url).await.unwrap();
        store.activate_campaign("c", "C", "c.toml", at(0)).await.unwrap();
        let path = tmp.path().join(format!("big_{label}.csv"));
        big_csv(&path, N, None);
        let src = source(&path);
        let t = Instant::now();
        let out = store
            .import_contacts_with("c", &src, at(1), &ReadOptions::default())
            .await
            .unwrap();
        let first = t.elapsed().as_secs_f64();
        let ImportOutcome::Imported(stats) = out else {
            panic!("{label}: {out:?}")
        };
        assert_eq!(
            (stats.rows, stats.accepted, stats.rejected),
            (N as u64, N as u64, 0),
            "{label}"
        );
        assert_eq!(scalar(&url, "SELECT COUNT(*) FROM contacts").await, N as i64, "{label}");

        // The same list with one name changed: every row goes through the upsert, one changes.
        big_csv(&path, N, Some(4321));
        let t = Instant::now();
        store
            .import_contacts_with("c", &src, at(2), &ReadOptions::default())
            .await
            .unwrap();
        let second = t.elapsed().as_secs_f64();
        let moved = scalar(&url, "SELECT COUNT(*) FROM contacts WHERE updated_at = 1780000002000").await;
        assert_eq!(moved, 1, "{label}");
        assert_eq!(
            store.hopper_zones("c").await.unwrap().len(),
            5,
            "{label}: New York, Los Angeles, Chicago, Phoenix, Denver"
        );
        assert!(store.has_remaining_contacts("c", 3).await.unwrap(), "{label}");
        if label == "postgres" {
            execute(&url, "ANALYZE contacts").await;
            let plans = store.hot_query_plans().await.unwrap();
            eprintln!("postgres plans after a 100k import:\n{plans:#?}");
            for name in ["hopper_zones", "hopper_batch"] {
                assert!(
                    plans[name].iter().any(|l| l.contains("contacts_hopper")),
                    "{name} does not use contacts_hopper: {:#?}",
                    plans[name]
                );
            }
        }
        eprintln!("{label}: imported {N} rows in {first:.2} s; re-imported them (1 changed) in {second:.2} s");
    }
}
