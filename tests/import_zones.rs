//! The zone an imported contact gets: the row's timezone column, else the zones of its number
//! (libphonenumber's prefix map, `dialerd::core::zones`), else the campaign's default; the
//! counts of each, and how duplicates merge them (CSV reader and the store, in temp dirs).

use chrono::{DateTime, TimeZone, Utc};
use dialerd::campaign::contact_zone::ZoneCounts;
use dialerd::campaign::contacts::{ContactSource, check_contacts_summary, read_contacts};
use dialerd::campaign::file::ContactsFile;
use dialerd::store::Store;
use std::ops::ControlFlow;
use std::path::Path;

const ZONES: &str = "\
phone,tz
602-555-0100,
212-555-0100,Europe/Paris
(907) 555-0100,
+870 773 111 632,
212-555-0100,Asia/Tokyo
602-555-0100,America/Denver
646-555-0199,America/New_York
646-555-0199,America/Chicago
";

/// `text` written to `dir/name`, read with `phone` and `tz` columns, region US, default New York.
fn source(dir: &Path, name: &str, text: &str) -> ContactSource {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    ContactSource {
        path,
        columns: ContactsFile {
            file: name.into(),
            phone: "phone".into(),
            alternate_phones: Vec::new(),
            first_name: None,
            last_name: None,
            email: None,
            timezone: Some("tz".into()),
            priority: None,
            ..Default::default()
        },
        default_region: dialerd::campaign::phone::Region::US,
        default_timezone: chrono_tz::America::New_York,
    }
}

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + s, 0).unwrap()
}

/// Imports `src` into a new store in `dir` and returns `(phone_e164, timezone)` by number.
async fn import(dir: &Path, src: &ContactSource) -> Vec<(String, String)> {
    let store = Store::open(dir.join("db.sqlite").to_str().unwrap()).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("db.sqlite").display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO campaigns (id,name,file,state,created_at,updated_at) VALUES ('c','c','c.toml','active',0,0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    store.import_contacts("c", src, at(0)).await.unwrap();
    sqlx::query_as("SELECT phone_e164, timezone FROM contacts ORDER BY phone_e164")
        .fetch_all(&pool)
        .await
        .unwrap()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test]
async fn zones_come_from_the_column_then_the_number_then_the_default() {
    let dir = tempfile::tempdir().unwrap();

    // Without the duplicates (lines 2-5): the area code's zone, the column's zone, both Alaska
    // zones, and the default for an Inmarsat number (no zone in the data).
    let head: String = ZONES.lines().take(5).map(|l| format!("{l}\n")).collect();
    let plain = source(dir.path(), "plain.csv", &head);
    let (summary, rejects) = check_contacts_summary(&plain).unwrap();
    assert!(rejects.is_empty(), "{rejects:?}");
    let want = ZoneCounts {
        column: 1,
        number: 2,
        default: 1,
    };
    assert_eq!(summary.zones, want);
    let plain_dir = dir.path().join("plain");
    std::fs::create_dir(&plain_dir).unwrap();
    assert_eq!(
        import(&plain_dir, &plain).await,
        pairs(&[
            ("+12125550100", "Europe/Paris"),
            ("+16025550100", "America/Phoenix"),
            ("+19075550100", "America/Adak&America/Anchorage"),
            ("+870773111632", "America/New_York"),
        ])
    );

    // With them: Phoenix's number takes Denver from its duplicate's column (a derived zone counts
    // as empty), Paris stays (the first row's own zone wins), and 646's column zone equals the
    // default, which also counts as empty, so its duplicate's Chicago wins.
    let src = source(dir.path(), "zones.csv", ZONES);
    let want = ZoneCounts {
        column: 3,
        number: 1,
        default: 1,
    };
    let merged = [
        ("+16025550100", "America/Denver"),
        ("+12125550100", "Europe/Paris"),
        ("+19075550100", "America/Adak&America/Anchorage"),
        ("+870773111632", "America/New_York"),
        ("+16465550199", "America/Chicago"),
    ];
    // The same whether duplicates merge within a batch or into rows of earlier batches.
    for batch_rows in [10_000, 1] {
        let (mut rows, mut merges) = (Vec::new(), Vec::new());
        let summary = read_contacts(&src, batch_rows, |b| {
            rows.extend(b.rows);
            merges.extend(b.merges);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!((summary.stats.accepted, summary.stats.duplicates), (5, 3));
        assert_eq!(summary.zones, want, "batch_rows {batch_rows}");
        assert_eq!(summary.zones.total(), summary.stats.accepted);
        for m in merges {
            let first = rows.iter_mut().find(|r| r.phone_e164 == m.phone_e164).unwrap();
            first.merge_from(m, "America/New_York");
        }
        let got: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.phone_e164.as_str(), r.timezone.as_str()))
            .collect();
        assert_eq!(got, merged, "batch_rows {batch_rows}");
    }
    let mut sorted = merged.to_vec();
    sorted.sort();
    assert_eq!(import(dir.path(), &src).await, pairs(&sorted));
}
