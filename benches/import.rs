//! Contact import throughput: generates a CSV (1,000,000 rows unless `DIALERD_BENCH_ROWS` says
//! otherwise) in a temp dir, then, side by side in the same run:
//!
//! - `sqlite3 .import` of that file into a plain table of a fresh database (the `sqlite3` CLI
//!   must be on PATH; the bench says so when it is not and reports dialerd alone);
//! - dialerd's import of the same file into a fresh store through `Store::import_contacts`, the
//!   daemon's path (every number validated and normalised, duplicates merged);
//!
//! and prints rows/s for both, their ratio, and the peak RSS (VmHWM) of this process, which is
//! the importer's. Then the cost of one number (libphonenumber parse + validate + E.164 on one
//! thread), and a `dialerd check`-style read of `../shared/data/customers-10000.csv` (or
//! `DIALERD_CUSTOMERS_CSV`).
//!
//! Run with `cargo bench --bench import`.

use dialerd::campaign::contacts::{ContactSource, ReadOptions, check_contacts, normalize_phone, read_contacts_with};
use dialerd::campaign::file::ContactsFile;
use dialerd::campaign::phone::Region;
use dialerd::store::{ImportOutcome, Store};
use std::error::Error;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Area codes valid under libphonenumber's US metadata.
const AREAS: [u32; 15] = [
    201, 202, 212, 213, 305, 310, 312, 415, 512, 617, 646, 702, 718, 808, 917,
];

fn number(i: usize, style: usize) -> String {
    let area = AREAS[i % AREAS.len()];
    let rest = i / AREAS.len();
    let (exch, line) = (200 + rest / 10_000, rest % 10_000);
    match style % 4 {
        0 => format!("({area}) {exch}-{line:04}"),
        1 => format!("{area}-{exch}-{line:04}"),
        2 => format!("{area}.{exch}.{line:04}"),
        _ => format!("+1 {area} {exch} {line:04}"),
    }
}

/// Writes `rows` data rows: ~1% invalid numbers, ~2% duplicates of a row 1,001 lines earlier,
/// alternates on a third of the rows, a zone on a tenth, plus two custom columns.
fn generate(path: &Path, rows: usize) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(w, "phone,alt_phone,first_name,last_name,email,timezone,company,city")?;
    for i in 0..rows {
        let phone = if i % 100 == 7 {
            "123-456-7890".to_string()
        } else if i % 50 == 3 && i >= 1000 {
            number(i - 1001, i + 1)
        } else {
            number(i, i)
        };
        let alt = if i % 3 == 0 { number(i + 7, i) } else { String::new() };
        let email = if i % 2 == 0 {
            format!("user{i}@example.com")
        } else {
            String::new()
        };
        let tz = if i % 10 == 0 { "America/Chicago" } else { "" };
        writeln!(
            w,
            "{phone},{alt},First{i},Last{},{email},{tz},\"Company {}, Inc.\",City{}",
            i % 977,
            i % 5003,
            i % 101
        )?;
    }
    w.flush()
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn columns(phone: &str, alternates: &[&str]) -> ContactsFile {
    ContactsFile {
        file: String::new(),
        phone: phone.into(),
        alternate_phones: alternates.iter().map(|s| s.to_string()).collect(),
        first_name: None,
        last_name: None,
        email: None,
        timezone: None,
        priority: None,
        ..Default::default()
    }
}

fn source(path: PathBuf, columns: ContactsFile) -> ContactSource {
    ContactSource {
        path,
        columns,
        default_region: Region::US,
        default_timezone: chrono_tz::America::New_York,
    }
}

/// Seconds `sqlite3 .import` takes to load `csv` into a plain table of a fresh database at
/// `db`; `None` (with the reason printed) when the CLI is missing or fails.
fn sqlite3_import(csv: &Path, db: &Path) -> Option<f64> {
    let script = format!(".mode csv\n.import '{}' contacts\n", csv.display());
    let t = Instant::now();
    let child = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            println!(
                "sqlite3 .import: not measured: the sqlite3 CLI is not on PATH ({e}); install it (Debian: apt-get install sqlite3)"
            );
            return None;
        }
    };
    if let Some(mut stdin) = child.stdin.take()
        && let Err(e) = stdin.write_all(script.as_bytes())
    {
        println!("sqlite3 .import: not measured: {e}");
        return None;
    }
    match child.wait_with_output() {
        Ok(out) if out.status.success() && out.stderr.is_empty() => Some(t.elapsed().as_secs_f64()),
        Ok(out) => {
            println!(
                "sqlite3 .import: not measured: {} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        Err(e) => {
            println!("sqlite3 .import: not measured: {e}");
            None
        }
    }
}

/// Microseconds per number for libphonenumber's parse + is_valid_number + E.164 on one thread.
fn per_number_us(n: usize) -> f64 {
    let texts: Vec<String> = (0..n).map(|i| number(i, i)).collect();
    let t = Instant::now();
    let valid = texts.iter().filter(|s| normalize_phone(s, Region::US).is_ok()).count();
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    assert_eq!(valid, n);
    us
}

fn main() -> Result<(), Box<dyn Error>> {
    let rows: usize = std::env::var("DIALERD_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("contacts.csv");
    let t = Instant::now();
    generate(&csv, rows)?;
    let size = std::fs::metadata(&csv)?.len();
    println!(
        "generated {rows} rows ({:.1} MB) in {:.2?}",
        size as f64 / 1e6,
        t.elapsed()
    );
    let rss_before = peak_rss_kib();

    let sqlite_secs = sqlite3_import(&csv, &dir.path().join("plain.sqlite"));
    if let Some(secs) = sqlite_secs {
        println!(
            "sqlite3 .import: {rows} rows in {secs:.2} s = {:.0} rows/s",
            rows as f64 / secs
        );
    }

    let db = dir.path().join("bench.sqlite");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let src = source(csv, columns("phone", &["alt_phone"]));
    let dialerd_secs = rt.block_on(async {
        let store = Store::open(&db.display().to_string()).await?;
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
        sqlx::query("INSERT INTO campaigns (id,name,file,state,created_at,updated_at) VALUES ('bench','bench','bench.toml','active',0,0)")
            .execute(&pool)
            .await?;
        let t = Instant::now();
        let outcome = store.import_contacts("bench", &src, chrono::Utc::now()).await?;
        let secs = t.elapsed().as_secs_f64();
        println!("dialerd import: {outcome:?}");
        println!("dialerd import: {rows} rows in {secs:.2} s = {:.0} rows/s", rows as f64 / secs);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts").fetch_one(&pool).await?;
        println!("contacts stored: {n}");
        let t = Instant::now();
        let again = store.import_contacts("bench", &src, chrono::Utc::now()).await?;
        assert_eq!(again, ImportOutcome::Unchanged);
        println!("re-import of the same file: {again:?} in {:.2?}", t.elapsed());
        Ok::<_, Box<dyn Error>>(secs)
    })?;
    match sqlite_secs {
        Some(s) => println!(
            "ratio dialerd / sqlite3 .import (rows/s): {:.2} (goal: at least 0.50)",
            s / dialerd_secs
        ),
        None => println!("ratio dialerd / sqlite3 .import: not measured (no sqlite3)"),
    }
    println!(
        "peak RSS (VmHWM): {} KiB after import (was {} KiB before)",
        peak_rss_kib().unwrap_or(0),
        rss_before.unwrap_or(0)
    );
    // The reader alone (CSV, validation, duplicate merging; no store) on 1 and 2 threads, to
    // tell the reading side from the writing side and show what the second core gives.
    for threads in [1, 2] {
        let opts = ReadOptions {
            threads,
            ..ReadOptions::default()
        };
        let t = Instant::now();
        let summary = read_contacts_with(&src, &opts, |_| ControlFlow::Continue(()))?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "read + validate + merge only (no store), {threads} validating thread(s): {} rows in {secs:.2} s = {:.0} rows/s",
            summary.stats.rows,
            summary.stats.rows as f64 / secs
        );
    }
    println!(
        "one number (parse + is_valid_number + E.164, one thread): {:.2} µs",
        per_number_us(200_000)
    );

    let customers = std::env::var_os("DIALERD_CUSTOMERS_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/customers-10000.csv"));
    if customers.exists() {
        let src = source(customers, columns("Phone 1", &["Phone 2"]));
        let t = Instant::now();
        let (stats, rejects) = check_contacts(&src)?;
        let el = t.elapsed();
        println!(
            "check customers-10000: {stats:?}, {} rejects, in {el:.2?} ({:.0} rows/s)",
            rejects.len(),
            stats.rows as f64 / el.as_secs_f64()
        );
    } else {
        println!("check customers-10000: skipped ({} not found)", customers.display());
    }
    Ok(())
}
