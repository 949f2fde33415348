//! The store's dialing hot path under `EXPLAIN QUERY PLAN`, on a seeded SQLite file: every query
//! must reach rows through an index, with no full scan and no temporary sort, so the cost of the
//! next dial does not grow with the list. Checked before and after `ANALYZE` (the planner's
//! choices change with statistics). The hopper itself is checked against the list it reads.

mod common;

use chrono::{TimeDelta, Utc};
use dialerd::core::{AttemptKey, Disposition, NextStep, Outcome};
use dialerd::store::Store;
use std::collections::{BTreeMap, HashSet};

/// Plan lines that would read the whole list: a full scan of a table (or of an index, which is
/// as long as the table), or a temporary B-tree for ORDER BY / DISTINCT / GROUP BY.
fn offending(plans: &BTreeMap<&'static str, Vec<String>>) -> Vec<String> {
    let mut bad = Vec::new();
    for (name, lines) in plans {
        for l in lines {
            let scan = l.starts_with("SCAN ") && l != "SCAN CONSTANT ROW" && !l.starts_with("SCAN z");
            if scan || l.contains("TEMP B-TREE") {
                bad.push(format!("{name}: {l}"));
            }
        }
    }
    bad
}

/// The first attempt of each contact, as the runner claims it.
fn first_attempts(due: &[dialerd::store::DueContact]) -> Vec<dialerd::store::Claim> {
    due.iter()
        .map(|d| {
            let key = AttemptKey {
                contact: d.id,
                attempt: 1,
            };
            dialerd::store::Claim {
                key,
                phone: d.phone_e164.clone(),
                caller_id: Some("+14155550100".into()),
            }
        })
        .collect()
}

async fn seeded(dir: &std::path::Path, n: usize) -> Store {
    let campaigns = common::campaign_dir(dir, "c", n, "");
    let campaign = dialerd::campaign::load_campaign(&campaigns.join("c.toml")).unwrap();
    let url = format!("sqlite://{}", dir.join("s.db").display());
    let store = Store::open(&url).await.unwrap();
    let now = Utc::now();
    store.activate_campaign("c", "C", "c.toml", now).await.unwrap();
    store.import_contacts("c", &campaign.contacts, now).await.unwrap();
    store
}

/// The zone lists the hopper index holds for campaign `c`, as stored.
async fn zone_names(store: &Store) -> Vec<String> {
    store
        .hopper_zones("c")
        .await
        .unwrap()
        .into_iter()
        .map(|z| z.0)
        .collect()
}

#[tokio::test]
async fn hot_queries_use_an_index_and_never_sort_the_list() {
    let tmp = tempfile::tempdir().unwrap();
    let store = seeded(tmp.path(), 5_000).await;
    // Some history, so the attempt tables are not empty.
    let zones: Vec<String> = zone_names(&store).await;
    let now = Utc::now();
    let due = store
        .hopper_batch("c", now, &zones, 200, &HashSet::new())
        .await
        .unwrap();
    let claims = first_attempts(&due);
    let claimed = store.claim_attempts("c", &claims, 3, now).await.unwrap();
    assert_eq!(claimed.len(), 200);
    for key in claimed.iter().take(100) {
        let step = NextStep {
            disposition: Disposition::RetryScheduled,
            next_attempt_at: Some(now + TimeDelta::hours(1)),
        };
        store.close_attempt(*key, Outcome::NoAnswer, step, now).await.unwrap();
    }

    let plans = store.hot_query_plans().await.unwrap();
    for name in [
        "hopper_zones",
        "hopper_batch",
        "hopper_details",
        "claim_contact",
        "close_attempt",
        "dnc_blocked",
    ] {
        assert!(plans.contains_key(name), "no plan for {name}: {plans:?}");
    }
    let bad = offending(&plans);
    assert!(
        bad.is_empty(),
        "full scans or temporary sorts on the hot path: {bad:#?}\nall plans: {plans:#?}"
    );
    // The hopper's queries read its partial index.
    for name in ["hopper_zones", "hopper_batch"] {
        assert!(
            plans[name].iter().any(|l| l.contains("contacts_hopper")),
            "{name} does not use contacts_hopper: {:?}",
            plans[name]
        );
    }

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", tmp.path().join("s.db").display()))
        .await
        .unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    pool.close().await;
    let store = Store::open(&format!("sqlite://{}", tmp.path().join("s.db").display()))
        .await
        .unwrap();
    let plans = store.hot_query_plans().await.unwrap();
    let bad = offending(&plans);
    assert!(bad.is_empty(), "after ANALYZE: {bad:#?}\nall plans: {plans:#?}");
}

/// The hopper hands out due contacts oldest first, then by id, leaves out the ones it is told to
/// skip and the ones already claimed, and reads only the zones it is given.
#[tokio::test]
async fn hopper_batch_is_ordered_and_skips_buffered_and_claimed_contacts() {
    let tmp = tempfile::tempdir().unwrap();
    let store = seeded(tmp.path(), 3_000).await;
    let zones = store.hopper_zones("c").await.unwrap();
    // common::write_contacts spreads 1,000 numbers over each of three area codes:
    // New York (212), Los Angeles (415), Chicago (312).
    let names: Vec<&str> = zones.iter().map(|z| z.0.as_str()).collect();
    assert_eq!(
        names,
        vec!["America/Chicago", "America/Los_Angeles", "America/New_York"]
    );
    let all: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let now = Utc::now();
    let first = store.hopper_batch("c", now, &all, 500, &HashSet::new()).await.unwrap();
    assert_eq!(first.len(), 500);
    let ids: Vec<i64> = first.iter().map(|d| d.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "same due time: id order");
    assert_eq!(ids[0], 1);

    // Skip what is buffered: the next batch starts after it.
    let skip: HashSet<i64> = ids.iter().copied().collect();
    let second = store.hopper_batch("c", now, &all, 500, &skip).await.unwrap();
    assert_eq!(second.len(), 500);
    assert!(second.iter().all(|d| !skip.contains(&d.id)));
    assert_eq!(second[0].id, 501);

    // Claimed contacts leave the index; a contact scheduled later is not due yet.
    let claims = first_attempts(&first);
    store.claim_attempts("c", &claims, 3, now).await.unwrap();
    let later = NextStep {
        disposition: Disposition::RetryScheduled,
        next_attempt_at: Some(now + TimeDelta::hours(2)),
    };
    store
        .close_attempt(AttemptKey { contact: 1, attempt: 1 }, Outcome::Busy, later, now)
        .await
        .unwrap();
    let third = store.hopper_batch("c", now, &all, 500, &HashSet::new()).await.unwrap();
    assert_eq!(third[0].id, 501, "claimed and rescheduled contacts are not handed out");
    let in_three_hours = store
        .hopper_batch("c", now + TimeDelta::hours(3), &all, 3_000, &HashSet::new())
        .await
        .unwrap();
    assert_eq!(
        in_three_hours.len(),
        2_501,
        "contact 1 is due again; 499 are still in progress"
    );
    assert_eq!(
        in_three_hours.last().map(|d| d.id),
        Some(1),
        "due later, handed out last"
    );

    // Only the zones asked for.
    let chicago = vec!["America/Chicago".to_string()];
    let only = store
        .hopper_batch("c", now, &chicago, 3_000, &HashSet::new())
        .await
        .unwrap();
    assert_eq!(only.len(), 1_000);
    assert!(only.iter().all(|d| d.timezone == "America/Chicago"));
    assert!(store.has_remaining_contacts("c", 3).await.unwrap());
}

/// Among contacts due at the same instant, a higher `priority` column is handed out first, then
/// the order of the list; a priority that is not an integer rejects its row, naming the column.
#[tokio::test]
async fn priority_orders_contacts_due_at_the_same_time() {
    let tmp = tempfile::tempdir().unwrap();
    let campaigns = common::campaign_dir(tmp.path(), "c", 1, "");
    std::fs::write(
        campaigns.join("c.csv"),
        "phone,Priority\n(212) 220-1001,\n(212) 220-1002,5\n(212) 220-1003,-1\n(212) 220-1004,high\n(212) 220-1005,5\n",
    )
    .unwrap();
    let toml = std::fs::read_to_string(campaigns.join("c.toml"))
        .unwrap()
        .replace("file = \"c.csv\"", "file = \"c.csv\"\npriority = \"Priority\"");
    std::fs::write(campaigns.join("c.toml"), toml).unwrap();
    let campaign = dialerd::campaign::load_campaign(&campaigns.join("c.toml")).unwrap();
    let store = Store::open(&format!("sqlite://{}", tmp.path().join("s.db").display()))
        .await
        .unwrap();
    let now = Utc::now();
    store.activate_campaign("c", "C", "c.toml", now).await.unwrap();
    store.import_contacts("c", &campaign.contacts, now).await.unwrap();
    let rejects = store.import_rejects("c", 10).await.unwrap();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0].line, 5);
    assert!(
        rejects[0].reason.contains("Priority") && rejects[0].reason.contains("high"),
        "{}",
        rejects[0].reason
    );
    let zones: Vec<String> = zone_names(&store).await;
    let due = store.hopper_batch("c", now, &zones, 10, &HashSet::new()).await.unwrap();
    let order: Vec<&str> = due.iter().map(|d| d.phone_e164.as_str()).collect();
    assert_eq!(
        order,
        vec!["+12122201002", "+12122201005", "+12122201001", "+12122201003"],
        "priority 5 (list order), then 0, then -1"
    );
}
