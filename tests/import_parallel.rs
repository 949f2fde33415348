//! The contact reader validates rows on several threads: whatever the thread count and chunk
//! size, the batches, merges, rejects (with their lines and reasons), counts and the stored
//! contacts are the same as on one thread.

use chrono::{TimeZone, Utc};
use dialerd::campaign::contacts::{Batch, ContactSource, ReadOptions, ReadSummary, read_contacts_with};
use dialerd::campaign::file::ContactsFile;
use dialerd::campaign::phone::Region;
use dialerd::store::Store;
use proptest::prelude::*;
use std::ops::ControlFlow;
use std::path::Path;

fn source(path: &Path) -> ContactSource {
    ContactSource {
        path: path.to_path_buf(),
        columns: ContactsFile {
            file: "contacts.csv".into(),
            phone: "phone".into(),
            alternate_phones: vec!["alt".into()],
            first_name: None,
            last_name: None,
            email: None,
            timezone: None,
            priority: None,
            ..Default::default()
        },
        default_region: Region::US,
        default_timezone: chrono_tz::America::New_York,
    }
}

/// One generated row: which number (from a small pool, so duplicates are common), how it is
/// written, whether it is broken, its alternate, zone and name.
#[derive(Debug, Clone)]
struct GenRow {
    number: u16,
    style: u8,
    broken: u8,
    alt: Option<u16>,
    tz: u8,
    name: u8,
}

fn gen_row() -> impl Strategy<Value = GenRow> {
    (
        0u16..60,
        0u8..6,
        0u8..12,
        proptest::option::of(0u16..60),
        0u8..4,
        0u8..5,
    )
        .prop_map(|(number, style, broken, alt, tz, name)| GenRow {
            number,
            style,
            broken,
            alt,
            tz,
            name,
        })
}

fn phone(n: u16, style: u8) -> String {
    let (area, line) = ([212, 415, 646, 305][usize::from(n % 4)], 1000 + n);
    match style {
        0 => format!("({area}) 555-{line:04}"),
        1 => format!("{area}-555-{line:04}"),
        2 => format!("+1 {area} 555 {line:04}"),
        3 => format!("1.{area}.555.{line:04} x{}", n % 7),
        4 => format!("+44 20 7946 {line:04}"), // London: another country, same list
        _ => format!("011 33 1 23 45 {:02} {:02}", n % 100, n / 100),
    }
}

fn csv(rows: &[GenRow]) -> String {
    let mut s = String::from("phone,alt,timezone,first_name,Note\n");
    for (i, r) in rows.iter().enumerate() {
        let text = match r.broken {
            0 => String::new(),
            1 => "123-456-7890".into(),
            2 => "call me".into(),
            _ => phone(r.number, r.style),
        };
        let alt = r.alt.map(|a| phone(a, r.style)).unwrap_or_default();
        let tz = ["", "", "Europe/Paris", "Mars/Base"][usize::from(r.tz)];
        let name = ["", "Ann", "Bob", "Cy", ""][usize::from(r.name)];
        if r.broken == 4 {
            s.push_str(&format!("{text},{alt}\n")); // too few fields
        } else {
            s.push_str(&format!("{text},{alt},{tz},{name},\"row {i}\"\n"));
        }
    }
    s
}

/// Everything a read hands out, in order.
fn read(src: &ContactSource, opts: &ReadOptions) -> (ReadSummary, Vec<String>) {
    let mut out = Vec::new();
    let summary = read_contacts_with(src, opts, |b: Batch| {
        out.push(format!("{:?} | {:?} | {:?}", b.rows, b.merges, b.rejects));
        ControlFlow::Continue(())
    })
    .unwrap();
    (summary, out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_output_does_not_depend_on_threads_or_chunks(
        rows in proptest::collection::vec(gen_row(), 0..300),
        batch_rows in 1usize..80,
        chunk_rows in 1usize..40,
        threads in 2usize..6,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts.csv");
        std::fs::write(&path, csv(&rows)).unwrap();
        let src = source(&path);
        let one = ReadOptions { batch_rows, chunk_rows: 1_000, threads: 1 };
        let many = ReadOptions { batch_rows, chunk_rows, threads };
        let (s1, b1) = read(&src, &one);
        let (s2, b2) = read(&src, &many);
        prop_assert_eq!(s1.stats, s2.stats);
        prop_assert_eq!(s1.zones, s2.zones);
        prop_assert_eq!(&s1.sha256, &s2.sha256);
        prop_assert_eq!(b1, b2);
        let st = s1.stats;
        prop_assert_eq!(st.accepted + st.rejected + st.duplicates, st.rows);
        prop_assert_eq!(st.rows, rows.len() as u64);
    }
}

type Stored = Vec<(String, Option<String>, String, Option<String>, String, String, i64)>;

async fn import(dir: &Path, src: &ContactSource, opts: &ReadOptions) -> (Stored, Vec<(u64, String)>) {
    let db = dir.join(format!("t{}.sqlite", opts.threads));
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO campaigns (id,name,file,state,created_at,updated_at) VALUES ('c','c','c.toml','active',0,0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let now = Utc.timestamp_opt(1_780_000_000, 0).unwrap();
    store.import_contacts_with("c", src, now, opts).await.unwrap();
    let stored: Stored = sqlx::query_as(
        "SELECT phone_e164, extension, alternate_phones, first_name, timezone, custom_fields, source_line \
         FROM contacts ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let rejects = store
        .import_rejects("c", u32::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.line, r.reason))
        .collect();
    (stored, rejects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_contacts_and_rejects_do_not_depend_on_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contacts.csv");
    // 30,000 rows: several store batches, duplicates across them, rejects of every kind.
    let rows: Vec<GenRow> = (0..30_000u32)
        .map(|i| GenRow {
            number: (i * 7 % 8_999) as u16,
            style: (i % 6) as u8,
            broken: (i % 13) as u8,
            alt: (i % 3 == 0).then_some((i % 59) as u16),
            tz: (i % 4) as u8,
            name: (i % 5) as u8,
        })
        .collect();
    std::fs::write(&path, csv(&rows)).unwrap();
    let src = source(&path);
    let (one, rejects_one) = import(
        dir.path(),
        &src,
        &ReadOptions {
            threads: 1,
            ..ReadOptions::default()
        },
    )
    .await;
    let (four, rejects_four) = import(
        dir.path(),
        &src,
        &ReadOptions {
            threads: 4,
            chunk_rows: 97,
            ..ReadOptions::default()
        },
    )
    .await;
    assert!(one.len() > 1000, "{} contacts", one.len());
    assert!(rejects_one.len() > 1000, "{} rejects", rejects_one.len());
    assert_eq!(one, four);
    assert_eq!(rejects_one, rejects_four);
}
