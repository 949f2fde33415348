//! Contact import throughput: generates a CSV (1,000,000 rows unless `DIALERD_BENCH_ROWS` says
//! otherwise) in a temp dir and imports it into a temp SQLite file through
//! `Store::import_contacts`, the daemon's path; prints rows/s and peak RSS (VmHWM). Then times a
//! `dialerd check`-style read of `../shared/data/customers-10000.csv` (or `DIALERD_CUSTOMERS_CSV`).
//!
//! Run with `cargo bench --bench import`.

use dialerd::campaign::contacts::{ContactSource, check_contacts};
use dialerd::campaign::file::ContactsFile;
use dialerd::store::{ImportOutcome, Store};
use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
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
    }
}

fn source(path: PathBuf, columns: ContactsFile) -> ContactSource {
    ContactSource {
        path,
        columns,
        default_region: phonenumber::country::Id::US,
        default_timezone: chrono_tz::America::New_York,
    }
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

    let db = dir.path().join("bench.sqlite");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let src = source(csv, columns("phone", &["alt_phone"]));
    rt.block_on(async {
        let store = Store::open(&db.display().to_string()).await?;
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
        sqlx::query("INSERT INTO campaigns (id,name,file,state,created_at,updated_at) VALUES ('bench','bench','bench.toml','active',0,0)")
            .execute(&pool)
            .await?;
        let t = Instant::now();
        let outcome = store.import_contacts("bench", &src, chrono::Utc::now()).await?;
        let secs = t.elapsed().as_secs_f64();
        println!("import: {outcome:?}");
        println!("import: {rows} rows in {secs:.2} s = {:.0} rows/s", rows as f64 / secs);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts").fetch_one(&pool).await?;
        println!("contacts stored: {n}");
        let t = Instant::now();
        let again = store.import_contacts("bench", &src, chrono::Utc::now()).await?;
        assert_eq!(again, ImportOutcome::Unchanged);
        println!("re-import of the same file: {again:?} in {:.2?}", t.elapsed());
        Ok::<_, Box<dyn Error>>(())
    })?;
    println!(
        "peak RSS (VmHWM): {} KiB after import (was {} KiB before)",
        peak_rss_kib().unwrap_or(0),
        rss_before.unwrap_or(0)
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
