//! The full reject report: `dialerd rejects CAMPAIGN` from the cells the last import stored, and
//! `dialerd check FILE --rejects OUT.csv` without a database; the progress the reader reports.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use dialerd::campaign::contacts::{ReadOptions, check_contacts, read_contacts_observed};
use dialerd::campaign::progress::{ReadObserver, ReadProgress};
use dialerd::campaign::rejects::{LEAD_COLUMNS, write_campaign_rejects};
use dialerd::store::{ImportOutcome, Store};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::{contact_source as source, contacts_columns as columns};

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + s, 0).unwrap()
}

fn db_path(dir: &Path) -> String {
    dir.join("db.sqlite").to_str().unwrap().to_string()
}

async fn pool(dir: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", db_path(dir)))
        .await
        .unwrap()
}

async fn store_with_campaign(dir: &Path, id: &str) -> Store {
    let store = Store::open(&db_path(dir)).await.unwrap();
    sqlx::query("INSERT INTO campaigns (id,name,file,state,created_at,updated_at) VALUES (?, ?, ?, 'active', 0, 0)")
        .bind(id)
        .bind(id)
        .bind(format!("{id}.toml"))
        .execute(&pool(dir).await)
        .await
        .unwrap();
    store
}

fn customers_csv() -> Option<PathBuf> {
    let p = std::env::var_os("DIALERD_CUSTOMERS_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/data/customers-10000.csv"
            ))
        });
    p.exists().then_some(p)
}

/// The records of a CSV file by their physical line (1-based; the header is line 1), each
/// line parsed on its own: an oracle independent of the importer's reader, for files (like
/// customers-10000.csv) with no quoted line breaks, which it checks.
fn records_by_line(path: &Path) -> (Vec<String>, HashMap<u64, Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let parse = |l: &str| -> Vec<String> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(l.as_bytes());
        r.records()
            .next()
            .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut lines = text.lines();
    let header = parse(lines.next().unwrap());
    let by_line: HashMap<u64, Vec<String>> = lines.enumerate().map(|(i, l)| (i as u64 + 2, parse(l))).collect();
    let records = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .unwrap()
        .records()
        .count();
    assert_eq!(
        records,
        by_line.len(),
        "the file has a quoted line break; this oracle cannot read it"
    );
    (header, by_line)
}

/// A report's header and its rows, each as its cells.
fn parse_report(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rdr = csv::ReaderBuilder::new().from_reader(bytes);
    let header = rdr.headers().unwrap().iter().map(str::to_string).collect();
    let rows = rdr
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_10000_report_lists_every_rejected_row_with_its_cells() {
    let Some(path) = customers_csv() else {
        println!("skipped: customers-10000.csv not found (set DIALERD_CUSTOMERS_CSV)");
        return;
    };
    let src = source(&path, columns("Phone 1", &["Phone 2"]));
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_campaign(dir.path(), "c1").await;
    let ImportOutcome::Imported(stats) = store.import_contacts("c1", &src, at(0)).await.unwrap() else {
        panic!("a fresh store imports the file");
    };
    // As tests/import.rs establishes: 7092 of the 10,000 "Phone 1" values are not valid for US.
    assert_eq!(stats.rejected, 7092);

    let mut out = Vec::new();
    let written = write_campaign_rejects(&store, "c1", &mut out, "memory").await.unwrap();
    assert_eq!(written.rows, stats.rejected);
    assert_eq!(written.without_cells, 0);
    assert!(written.notes.is_empty(), "{:?}", written.notes);

    let (file_header, by_line) = records_by_line(&path);
    let (header, rows) = parse_report(&out);
    let mut want_header: Vec<String> = LEAD_COLUMNS.iter().map(|s| s.to_string()).collect();
    want_header.extend(file_header.iter().cloned());
    assert_eq!(header, want_header);
    assert_eq!(rows.len() as u64, stats.rejected, "one data row per rejected row");

    // Lines and reasons are the reported rejects', in the same order (by line).
    let stored = store.import_rejects("c1", u32::MAX).await.unwrap();
    let (_, checked) = check_contacts(&src).unwrap();
    assert_eq!(stored.len(), rows.len());
    let phone_1 = file_header.iter().position(|h| h == "Phone 1").unwrap();
    for ((row, s), c) in rows.iter().zip(&stored).zip(&checked) {
        let line: u64 = row[0].parse().unwrap();
        assert_eq!((line, row[3].as_str()), (s.line, s.reason.as_str()));
        assert_eq!((line, row[3].as_str()), (c.line, c.reason.as_str()));
        assert_eq!(row[1], "Phone 1", "line {line}");
        // The value is the cell the reason names, and the rest is the row as in the file.
        let original = &by_line[&line];
        assert_eq!(row[2], original[phone_1], "line {line}");
        assert_eq!(&row[4..], &original[..], "line {line}");
        assert!(row[3].starts_with("Phone 1: "), "{}", row[3]);
    }
    assert_eq!(
        rows[0][..4],
        [
            "2",
            "Phone 1",
            "043-797-5229",
            r#"Phone 1: invalid number "043-797-5229" for region US"#
        ]
    );

    // The command prints the same bytes.
    let run = common::bin()
        .args(["rejects", "c1", "--database", &db_path(dir.path())])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(run.stdout, out);
}

const CONTACTS: &str = "\u{feff}phone,first_name,plan,notes\r
415-555-2671,Ann,gold,ok\r
043-797-5229,Bo,silver,\"two\r
lines\"\r
,Cy,bronze,\r
212-555-0100,Di\r
646-555-0199,Ed,gold,x,surplus\r
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_cells_survive_a_changed_file_and_legacy_rows_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.csv");
    std::fs::write(&path, CONTACTS).unwrap();
    let store = store_with_campaign(dir.path(), "c").await;
    store
        .import_contacts("c", &source(&path, columns("phone", &[])), at(0))
        .await
        .unwrap();
    // The file is replaced after the import: the report still gives the import's rows.
    std::fs::write(&path, "phone\n415-555-2671\n").unwrap();
    let mut out = Vec::new();
    let written = write_campaign_rejects(&store, "c", &mut out, "memory").await.unwrap();
    assert_eq!(written.rows, 4);
    assert!(
        written.notes.len() == 1 && written.notes[0].contains("changed since its last import"),
        "{:?}",
        written.notes
    );
    // BOM and CRLF dropped, an embedded CRLF kept, a short row padded, a long one extended.
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "line,column,value,reason,phone,first_name,plan,notes,extra_1\n\
         3,phone,043-797-5229,\"phone: invalid number \"\"043-797-5229\"\" for region US\",043-797-5229,Bo,silver,\"two\r\nlines\",\n\
         5,phone,,phone: empty,,Cy,bronze,,\n\
         6,,,\"malformed row: 2 fields, the header has 4\",212-555-0100,Di,,,\n\
         7,,,\"malformed row: 5 fields, the header has 4\",646-555-0199,Ed,gold,x,surplus\n"
    );

    // A reject stored before cells were kept is listed with its line and reason, and named.
    sqlx::query("INSERT INTO import_rejects (campaign_id, line, reason) VALUES ('c', 9, 'phone: empty')")
        .execute(&pool(dir.path()).await)
        .await
        .unwrap();
    let mut out = Vec::new();
    let written = write_campaign_rejects(&store, "c", &mut out, "memory").await.unwrap();
    assert_eq!((written.rows, written.without_cells), (5, 1));
    assert!(
        written.notes.iter().any(|n| n.contains("stored before")),
        "{:?}",
        written.notes
    );
    assert!(
        written.notes.iter().any(|n| n.contains("5 rejected rows stored")),
        "{:?}",
        written.notes
    );
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("9,,,phone: empty,,,,,\n"), "{text}");
}

#[tokio::test]
async fn rejects_of_an_unknown_or_unimported_campaign_are_errors_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    store_with_campaign(dir.path(), "fresh").await;
    for (id, want) in [
        ("nope", "no campaign `nope` in this database"),
        ("fresh", "campaign `fresh` has no contact import yet"),
    ] {
        let run = common::bin()
            .args(["rejects", id, "--database", &db_path(dir.path())])
            .output()
            .unwrap();
        assert!(!run.status.success(), "{id}");
        assert!(run.stdout.is_empty(), "{id}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(want), "{id}: {err}");
    }
}

/// A campaign folder whose list has 14 rows: 2 valid, 12 rejected of every kind.
fn check_dir(root: &Path) -> (PathBuf, PathBuf) {
    let mut csv = String::from("phone,first_name,plan\n415-555-2671,Ann,gold\n");
    for i in 0..10 {
        csv.push_str(&format!("555-{i:03},Bad{i},basic\n"));
    }
    csv.push_str("\"\",Empty,\"quoted, comma\"\n212-555-0100,Short\n646-555-0199,Ok,gold\n");
    let list = root.join("c.csv");
    std::fs::write(&list, csv).unwrap();
    let toml = root.join("c.toml");
    std::fs::write(&toml, common::campaign_toml("c", "")).unwrap();
    (toml, list)
}

/// `dialerd check TOML --rejects OUT`, run to completion.
fn check_rejects(toml: &Path, out: &Path) -> std::process::Output {
    common::bin()
        .arg("check")
        .arg(toml)
        .arg("--rejects")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn check_rejects_writes_every_rejected_row_and_prints_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, list) = check_dir(dir.path());
    let out = dir.path().join("rejects.csv");
    let run = check_rejects(&toml, &out);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert_eq!(stdout.matches("  rejected line ").count(), 10, "{stdout}");
    assert!(stdout.contains("  … and 2 more rejected rows\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("  every rejected row (12) written to {}\n", out.display())),
        "{stdout}"
    );

    let (_, checked) = check_contacts(&source(&list, columns("phone", &[]))).unwrap();
    let (header, rows) = parse_report(&std::fs::read(&out).unwrap());
    assert_eq!(
        header,
        ["line", "column", "value", "reason", "phone", "first_name", "plan"]
    );
    assert_eq!(rows.len(), 12);
    let lines: Vec<u64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(lines, checked.iter().map(|r| r.line).collect::<Vec<_>>());
    assert_eq!(lines, (3..=14).collect::<Vec<_>>());
    assert_eq!(
        rows[0],
        [
            "3",
            "phone",
            "555-000",
            checked[0].reason.as_str(),
            "555-000",
            "Bad0",
            "basic"
        ]
    );
    assert_eq!(
        rows[10],
        ["13", "phone", "", "phone: empty", "", "Empty", "quoted, comma"]
    );
    assert_eq!(
        rows[11],
        [
            "14",
            "",
            "",
            "malformed row: 2 fields, the header has 3",
            "212-555-0100",
            "Short",
            ""
        ]
    );

    // Fixed and dropped again: the rows after the first four columns read as the same list.
    let mut fixed = csv::Writer::from_path(dir.path().join("c.csv")).unwrap();
    fixed.write_record(&header[4..]).unwrap();
    for r in &rows {
        let mut cells = r[4..].to_vec();
        cells[0] = format!("(415) 260-{:04}", 1000 + r[0].parse::<u32>().unwrap());
        fixed.write_record(&cells).unwrap();
    }
    fixed.flush().unwrap();
    drop(fixed);
    let (stats, again) = check_contacts(&source(&list, columns("phone", &[]))).unwrap();
    assert_eq!((stats.rows, stats.accepted, again.len()), (12, 12, 0));
}

#[test]
fn check_rejects_refuses_bad_input_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, list) = check_dir(dir.path());
    std::fs::remove_file(&list).unwrap();
    let out = dir.path().join("rejects.csv");
    let run = check_rejects(&toml, &out);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("c.toml") && err.contains("c.csv"), "{err}");
    assert!(!out.exists());

    // Writing over the list it reports on is refused.
    check_dir(dir.path());
    let run = check_rejects(&toml, &list);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("would overwrite"));
    assert!(
        std::fs::read_to_string(&list)
            .unwrap()
            .starts_with("phone,first_name,plan\n415")
    );

    let missing = dir.path().join("missing.toml");
    let run = check_rejects(&missing, &out);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("missing.toml"));

    let run = common::bin()
        .arg("check")
        .arg(&toml)
        .arg(&toml)
        .arg("--rejects")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("one campaign file"));
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<ReadProgress>>,
    finished: Mutex<Vec<ReadProgress>>,
}

impl ReadObserver for Recorder {
    fn progress(&self, p: &ReadProgress) {
        self.seen.lock().unwrap().push(*p);
    }
    fn finish(&self, last: &ReadProgress) {
        self.finished.lock().unwrap().push(*last);
    }
}

#[test]
fn the_reader_reports_progress_by_chunks_up_to_the_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    common::write_contacts(&path, 10_050);
    let size = std::fs::metadata(&path).unwrap().len();
    let rec = Recorder::default();
    let opts = ReadOptions {
        batch_rows: 4_000,
        chunk_rows: 1_000,
        threads: 2,
    };
    let summary = read_contacts_observed(&source(&path, columns("phone", &[])), &opts, &rec, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(summary.stats.rows, 10_050);
    let seen = rec.seen.lock().unwrap();
    // Once per full chunk of 1,000 rows, never per row.
    assert_eq!(
        seen.iter().map(|p| p.rows).collect::<Vec<_>>(),
        (1..=10).map(|k| k * 1000).collect::<Vec<_>>()
    );
    assert!(seen.windows(2).all(|w| w[0].bytes < w[1].bytes));
    assert!(seen.iter().all(|p| p.total_bytes == Some(size) && p.bytes <= size));
    let finished = rec.finished.lock().unwrap();
    assert_eq!(
        *finished,
        [ReadProgress {
            bytes: size,
            total_bytes: Some(size),
            rows: 10_050
        }]
    );

    // A file that cannot be read still finishes its observer, once.
    let rec = Recorder::default();
    let missing = source(&dir.path().join("nope.csv"), columns("phone", &[]));
    assert!(read_contacts_observed(&missing, &opts, &rec, |_| ControlFlow::Continue(())).is_err());
    assert_eq!(rec.finished.lock().unwrap().len(), 1);
}
