//! A trunk account's limits shared through the store, on both engines (SQLite always, PostgreSQL
//! when `DIALERD_TEST_DATABASE_URL` is set): two handles on one database claim as fast as they
//! can through one account. No rolling second of attempt starts holds more than the account's
//! `calls_per_second`, open attempts never exceed its `max_concurrent`, a claim the limits cut
//! says how many it looked at and when to come back, and closing calls makes room again.

mod common;
mod store_attempts_common;

use chrono::{TimeDelta, Utc};
use dialerd::core::{AccountLimit, Outcome};
use dialerd::store::{Claim, Store};
use std::time::{Duration, Instant};
use store_attempts_common::{Db, claim, completed, seeded};

fn limit(cps: u32, max: Option<u32>) -> AccountLimit {
    AccountLimit {
        account: "acct".into(),
        calls_per_second: cps,
        max_concurrent: max,
    }
}

/// Claims `mine` in chunks of 5 for `run` under `l`, keeping what the limits held back for the
/// next try; returns how many were claimed.
async fn claim_for(store: Store, mine: Vec<Claim>, l: AccountLimit, run: Duration) -> usize {
    let end = Instant::now() + run;
    let (mut next, mut got) = (0, 0);
    let now = Utc::now() + TimeDelta::hours(1);
    while Instant::now() < end && next < mine.len() {
        let chunk = &mine[next..(next + 5).min(mine.len())];
        let c = store.claim_attempts_limited("c", chunk, 3, now, &l).await.unwrap();
        assert!(c.keys.len() <= c.considered && c.considered <= chunk.len());
        assert_eq!(c.retry_after.is_some(), c.considered < chunk.len(), "{c:?}");
        got += c.keys.len();
        next += c.considered;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_share_one_accounts_cps_and_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "acct_limits") {
        let (a, c) = seeded(dir.path(), &url, 400).await;
        let b = Store::open(&url).await.unwrap();
        a.set_campaign_account("c", Some("acct")).await.unwrap();
        let db = Db::connect(&url).await;
        let claims: Vec<Claim> = c.iter().map(|(id, p)| claim(*id, 1, p, None)).collect();
        let (even, odd): (Vec<_>, Vec<_>) = claims.iter().cloned().enumerate().partition(|(i, _)| i % 2 == 0);
        let strip = |v: Vec<(usize, Claim)>| v.into_iter().map(|(_, c)| c).collect::<Vec<_>>();
        let (even, odd) = (strip(even), strip(odd));

        // CPS: 20 per rolling second between the two, for 2.5 s.
        let run = Duration::from_millis(2_500);
        let (ga, gb) = tokio::join!(
            tokio::spawn(claim_for(a.clone(), even[..150].to_vec(), limit(20, None), run)),
            tokio::spawn(claim_for(b.clone(), odd[..150].to_vec(), limit(20, None), run))
        );
        let total = ga.unwrap() + gb.unwrap();
        let starts: Vec<(i64,)> = db.rows("SELECT started_at FROM attempts ORDER BY started_at").await;
        let starts: Vec<i64> = starts.into_iter().map(|s| s.0).collect();
        assert_eq!(starts.len(), total, "{engine}");
        let busiest = common::busiest_second(&starts);
        println!("{engine}: {total} claims in 2.5 s, busiest rolling second {busiest}");
        assert_eq!(busiest, 20, "{engine}: the busiest second holds {busiest}, limit 20");
        assert!(
            (40..=60).contains(&total),
            "{engine}: {total} claims in 2.5 s at 20 per second"
        );
        let (window, open) = a.account_usage("acct").await.unwrap();
        assert_eq!(open as usize, total, "{engine}: every claim is open");
        assert!(window.len() <= 20, "{engine}: {window:?}");

        // Concurrency: at most 70 open, the `total` already open count against it.
        let l = limit(1_000, Some(70));
        let (ga, gb) = tokio::join!(
            tokio::spawn(claim_for(
                a.clone(),
                even[150..].to_vec(),
                l.clone(),
                Duration::from_millis(500)
            )),
            tokio::spawn(claim_for(
                b.clone(),
                odd[150..].to_vec(),
                l.clone(),
                Duration::from_millis(500)
            ))
        );
        let more = ga.unwrap() + gb.unwrap();
        assert_eq!(total + more, 70, "{engine}: {total} + {more} open, limit 70");
        let held = a
            .claim_attempts_limited("c", &even[199..], 3, Utc::now() + TimeDelta::hours(1), &l)
            .await
            .unwrap();
        assert_eq!((held.keys.len(), held.considered), (0, 0), "{engine}");
        assert_eq!(held.retry_after, Some(Duration::from_millis(250)), "{engine}");
        // Closing ten calls makes room for ten.
        let open_keys: Vec<(i64, i64)> = db
            .rows("SELECT contact_id, attempt FROM attempts ORDER BY contact_id LIMIT 10")
            .await;
        for (contact, attempt) in open_keys {
            let key = dialerd::core::AttemptKey {
                contact,
                attempt: u32::try_from(attempt).unwrap(),
            };
            a.close_attempt(key, Outcome::NoAnswer, completed(), Utc::now())
                .await
                .unwrap();
        }
        // The claimed and closed ones are skipped by the claim itself.
        let again = claim_for(a.clone(), claims.clone(), l, Duration::from_millis(300)).await;
        assert_eq!(again, 10, "{engine}: ten closed, ten claimed");
    }
}
