//! Do-not-call lists: the `dialerd dnc` commands on a real SQLite file, DNC file imports with bad
//! rows, campaign-scoped blocking, the `dnc/` folder sync, and numbers written in different shapes.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use common::run;
use dialerd::campaign::dnc::{DEFAULT_REGION, DncFileOutcome, import_dnc_file, sync_dnc_folder};
use dialerd::store::{DncScope, Store};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + s, 0).unwrap()
}

fn db(dir: &Path) -> PathBuf {
    dir.join("db.sqlite")
}

/// Runs `dialerd dnc ARGS --database DB`; asserts success and returns stdout.
fn dnc(dir: &Path, args: &[&str]) -> String {
    let db = db(dir);
    let mut all = vec!["dnc"];
    all.extend_from_slice(args);
    all.extend(["--database", db.to_str().unwrap()]);
    let out = run(&all);
    assert!(
        out.status.success(),
        "dnc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `dialerd dnc ARGS --database DB`; asserts failure and returns stderr.
fn dnc_err(dir: &Path, args: &[&str]) -> String {
    let db = db(dir);
    let mut all = vec!["dnc"];
    all.extend_from_slice(args);
    all.extend(["--database", db.to_str().unwrap()]);
    let out = run(&all);
    assert!(!out.status.success(), "dnc {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

/// `dialerd dnc list --json` entries as (scope, phone, source, reason).
fn list_json(dir: &Path, args: &[&str]) -> Vec<(String, String, String, Option<String>)> {
    let mut all = vec!["list", "--json"];
    all.extend_from_slice(args);
    dnc(dir, &all)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["scope"].as_str().unwrap().to_string(),
                v["phone_e164"].as_str().unwrap().to_string(),
                v["source"].as_str().unwrap().to_string(),
                v["reason"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn cli_add_remove_list_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = dnc(d, &["add", "(415) 555-0101", "--reason", "asked on the phone"]);
    assert!(out.contains("+14155550101 added"), "{out}");
    dnc(d, &["add", "212-555-0199", "--campaign", "spring"]);
    dnc(d, &["add", "020 7946 0018", "--region", "GB"]);

    let all = list_json(d, &[]);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.contains(&(
        "global".into(),
        "+14155550101".into(),
        "cli".into(),
        Some("asked on the phone".into())
    )));
    assert!(all.contains(&("spring".into(), "+12125550199".into(), "cli".into(), None)));
    assert!(all.contains(&("global".into(), "+442079460018".into(), "cli".into(), None)));
    let spring = list_json(d, &["--campaign", "spring"]);
    assert_eq!(spring.len(), 1);
    assert_eq!(list_json(d, &["--global"]).len(), 2);
    let text = dnc(d, &["list"]);
    assert!(text.contains("Entries per list: global 2, spring 1"), "{text}");

    // Adding again keeps the first entry.
    let out = dnc(d, &["add", "+1 415 555 0101", "--reason", "other"]);
    assert!(out.contains("already on the global list"), "{out}");
    assert!(
        list_json(d, &[])
            .iter()
            .any(|e| e.3.as_deref() == Some("asked on the phone"))
    );

    // Removing from the global list leaves the campaign's list alone.
    let out = dnc(d, &["remove", "415.555.0101"]);
    assert!(out.contains("removed"), "{out}");
    let out = dnc(d, &["remove", "212-555-0199"]);
    assert!(out.contains("was not on the global list"), "{out}");
    let all = list_json(d, &[]);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(!all.iter().any(|e| e.1 == "+14155550101"));
    dnc(d, &["remove", "212-555-0199", "--campaign", "spring"]);
    assert!(list_json(d, &["--campaign", "spring"]).is_empty());

    // A bad number, a reserved campaign id and a missing file are refused with a message.
    // libphonenumber reads "12" as a number (+1 12), just not a valid one.
    assert!(dnc_err(d, &["add", "12"]).contains("phone number: invalid number \"12\" for region US"));
    assert!(dnc_err(d, &["add", "twelve"]).contains("phone number: cannot parse \"twelve\""));
    assert!(dnc_err(d, &["add", "4155550101", "--campaign", "global"]).contains("global list's name"));
    assert!(dnc_err(d, &["import", "missing.csv"]).contains("DNC file missing.csv"));
}

#[test]
fn cli_import_reports_bad_rows_and_skips_an_unchanged_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("optouts.csv");
    std::fs::write(
        &file,
        "name,phone,reason\nAl,(415) 555-0101,asked\nBo,not a number,\nCy,+1 415 555 0102,\n\nDi,,\nEd,415 555 0101,again\n",
    )
    .unwrap();
    let out = dnc(d, &["import", file.to_str().unwrap(), "--campaign", "spring"]);
    assert!(
        out.contains("5 rows, 3 accepted (2 new on the campaign `spring` list), 2 rejected"),
        "{out}"
    );
    assert!(out.contains("  line 3: phone: "), "{out}");
    assert!(out.contains("  line 6: phone: empty"), "{out}");

    let entries = list_json(d, &["--campaign", "spring"]);
    let phones: HashSet<&str> = entries.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(phones, HashSet::from(["+14155550101", "+14155550102"]));
    assert!(entries.iter().all(|e| e.2 == "file:optouts.csv"), "{entries:?}");
    assert!(entries.contains(&(
        "spring".into(),
        "+14155550101".into(),
        "file:optouts.csv".into(),
        Some("asked".into())
    )));
    assert!(list_json(d, &["--global"]).is_empty());

    let out = dnc(d, &["import", file.to_str().unwrap(), "--campaign", "spring"]);
    assert!(out.contains("unchanged since its last import"), "{out}");
    // The same file into another list is a different import.
    let out = dnc(d, &["import", file.to_str().unwrap()]);
    assert!(out.contains("(2 new on the global list)"), "{out}");
}

#[tokio::test]
async fn campaign_entries_block_only_their_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(db(dir.path()).to_str().unwrap()).await.unwrap();
    let spring = DncScope::Campaign("spring".into());
    assert!(
        store
            .dnc_add(&DncScope::Global, "+14155550101", "cli", None, at(0))
            .await
            .unwrap()
    );
    assert!(
        store
            .dnc_add(&spring, "+14155550102", "opt_out:c1a1", Some("said stop"), at(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .dnc_add(&spring, "+14155550102", "cli", None, at(2))
            .await
            .unwrap()
    );

    let asked = strings(&["+14155550101", "+14155550102", "+14155550103"]);
    let blocked = store.dnc_blocked("spring", &asked).await.unwrap();
    assert_eq!(
        blocked,
        HashSet::from(["+14155550101".to_string(), "+14155550102".to_string()])
    );
    let blocked = store.dnc_blocked("autumn", &asked).await.unwrap();
    assert_eq!(blocked, HashSet::from(["+14155550101".to_string()]));
    assert!(store.dnc_blocked("spring", &[]).await.unwrap().is_empty());

    // The first entry is kept: time, source and reason.
    let e = &store.dnc_list(Some(&spring), 10).await.unwrap()[0];
    assert_eq!(
        (e.source.as_str(), e.reason.as_deref(), e.added_at),
        ("opt_out:c1a1", Some("said stop"), at(1))
    );

    // Many numbers at once (more than one lookup chunk).
    let many: Vec<String> = (0..1200).map(|i| format!("+1212555{:04}", i)).collect();
    for p in many.iter().step_by(100) {
        store.dnc_add(&spring, p, "cli", None, at(3)).await.unwrap();
    }
    let blocked = store.dnc_blocked("spring", &many).await.unwrap();
    assert_eq!(blocked.len(), 12);
    assert!(store.dnc_blocked("autumn", &many).await.unwrap().is_empty());

    let counts = store.dnc_counts().await.unwrap();
    assert_eq!(counts.get(&DncScope::Global), Some(&1));
    assert_eq!(counts.get(&spring), Some(&13));
    assert!(store.dnc_remove(&spring, "+14155550102").await.unwrap());
    assert!(!store.dnc_remove(&spring, "+14155550102").await.unwrap());
    let blocked = store.dnc_blocked("spring", &asked).await.unwrap();
    assert_eq!(blocked, HashSet::from(["+14155550101".to_string()]));
}

#[tokio::test]
async fn folder_sync_imports_new_files_once() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(db(root.path()).to_str().unwrap()).await.unwrap();
    let folder = dialerd::campaign::dnc::dnc_dir(&root.path().join("campaigns"));
    assert_eq!(folder, root.path().join("dnc"));

    // No folder yet: nothing to do.
    assert_eq!(
        sync_dnc_folder(&store, &folder, at(0)).await.unwrap(),
        Default::default()
    );

    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("registry.csv"), "4155550101\n4155550102\nbad\n").unwrap();
    std::fs::write(folder.join("notes.txt"), "4155550199\n").unwrap();
    let report = sync_dnc_folder(&store, &folder, at(1)).await.unwrap();
    assert_eq!(report.imported.len(), 1, "{report:?}");
    let (name, stats, rejects) = &report.imported[0];
    assert_eq!(name, "registry.csv");
    assert_eq!((stats.rows, stats.accepted, stats.rejected, stats.added), (3, 2, 1, 2));
    assert_eq!(rejects[0].line, 3);
    assert!(report.unchanged.is_empty() && report.failed.is_empty());

    let report = sync_dnc_folder(&store, &folder, at(2)).await.unwrap();
    assert!(report.imported.is_empty(), "{report:?}");
    assert_eq!(report.unchanged, vec!["registry.csv".to_string()]);

    // A new file is picked up; the old one is still skipped.
    std::fs::write(folder.join("later.csv"), "phone\n+1 415 555 0103\n(415) 555-0101\n").unwrap();
    let report = sync_dnc_folder(&store, &folder, at(3)).await.unwrap();
    assert_eq!(report.imported.len(), 1);
    assert_eq!(report.imported[0].0, "later.csv");
    assert_eq!(report.imported[0].1.added, 1);
    assert_eq!(report.unchanged, vec!["registry.csv".to_string()]);

    let entries = store.dnc_list(Some(&DncScope::Global), 10).await.unwrap();
    let by_phone: Vec<(&str, &str)> = {
        let mut v: Vec<_> = entries
            .iter()
            .map(|e| (e.phone_e164.as_str(), e.source.as_str()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        by_phone,
        [
            ("+14155550101", "file:registry.csv"),
            ("+14155550102", "file:registry.csv"),
            ("+14155550103", "file:later.csv"),
        ]
    );
    assert!(entries.iter().all(|e| e.added_at != at(0)));

    // An edited file is imported again; entries already listed keep their source.
    std::fs::write(folder.join("registry.csv"), "4155550101\n4155550104\n").unwrap();
    let report = sync_dnc_folder(&store, &folder, at(4)).await.unwrap();
    assert_eq!(report.imported.len(), 1);
    assert_eq!(report.imported[0].1.added, 1);
    assert_eq!(store.dnc_counts().await.unwrap().get(&DncScope::Global), Some(&4));
}

#[tokio::test]
async fn different_shapes_of_a_number_are_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dnc(d, &["add", "(415) 555-0101"]);
    let out = dnc(d, &["add", "+1 415 555 0101"]);
    assert!(out.contains("already on the global list"), "{out}");
    let file = d.join("shapes.csv");
    std::fs::write(&file, "phone\n415-555-0101\n+14155550101\n1 (415) 555 0101\n").unwrap();
    let out = dnc(d, &["import", file.to_str().unwrap()]);
    assert!(
        out.contains("3 rows, 3 accepted (0 new on the global list), 0 rejected"),
        "{out}"
    );
    assert_eq!(list_json(d, &[]).len(), 1);

    let store = Store::open(db(d).to_str().unwrap()).await.unwrap();
    let outcome = import_dnc_file(&store, &file, &DncScope::Global, DEFAULT_REGION, at(0))
        .await
        .unwrap();
    assert_eq!(outcome, DncFileOutcome::Unchanged);
    let blocked = store.dnc_blocked("any", &strings(&["+14155550101"])).await.unwrap();
    assert_eq!(blocked.len(), 1);
    dnc(d, &["remove", "415 555 0101"]);
    assert!(list_json(d, &[]).is_empty());
}
