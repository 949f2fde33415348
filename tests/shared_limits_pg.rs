//! Three `dialerd` nodes on one PostgreSQL database dial four sim-trunk campaigns through one sim
//! account of `calls_per_second = 10` and `max_concurrent = 15` (`[sim]` in the settings), while
//! the campaigns' own limits would allow 200 dials a second and 40 calls at once. From the
//! attempts' start and end times at the end: no rolling second holds more than 10 dials, and no
//! instant more than 15 calls, yet both limits were reached (the test would pass vacuously on a
//! trickle). Skips, saying so, without `DIALERD_TEST_DATABASE_URL`.

mod common;

use sqlx::Row;
use std::path::Path;
use std::time::Duration;

const CAMPAIGNS: [&str; 4] = ["s1", "s2", "s3", "s4"];
const CPS: usize = 10;
const MAX_CONCURRENT: usize = 15;
const RUN: Duration = Duration::from_secs(20);

fn start_node(dir: &Path, url: &str, id: &str) -> common::Daemon {
    common::Daemon::start_env(
        dir,
        Path::new(url),
        false,
        &[],
        &[
            ("DIALERD__NODE_ID", id),
            ("DIALERD__LEASE_TTL", "3s"),
            ("DIALERD__LISTEN", "127.0.0.1:0"),
            ("DIALERD__SHUTDOWN_GRACE", "1s"),
            ("DIALERD__SIM__CALLS_PER_SECOND", "10"),
            ("DIALERD__SIM__MAX_CONCURRENT", "15"),
        ],
    )
}

/// The most calls open at one instant: `[start, end)` intervals, an open one lasting forever.
fn most_at_once(calls: &[(i64, Option<i64>)]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for (start, end) in calls {
        edges.push((*start, 1));
        edges.push((end.unwrap_or(i64::MAX), -1));
    }
    // An end at the same instant as a start frees its call first.
    edges.sort();
    let (mut open, mut best) = (0i32, 0i32);
    for (_, d) in edges {
        open += d;
        best = best.max(open);
    }
    usize::try_from(best).unwrap_or(0)
}

#[test]
fn window_and_concurrency_helpers_count_what_they_say() {
    assert_eq!(common::busiest_second(&[0, 100, 999, 1_000, 1_999]), 3);
    assert_eq!(common::busiest_second(&[]), 0);
    assert_eq!(most_at_once(&[(0, Some(10)), (10, Some(20)), (5, None)]), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_one_accounts_cps_and_concurrency() {
    let Some(url) = common::fresh_postgres("shared_limits") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let extra = "\n[trunk.sim]\nseed = 5\ntime_scale = 0.05\ntalk_mean = \"60s\"\n";
    let mut dir = tmp.path().to_path_buf();
    for id in CAMPAIGNS {
        dir = common::campaign_dir(tmp.path(), id, 1_000, extra);
    }
    let nodes: Vec<common::Daemon> = ["n1", "n2", "n3"].iter().map(|id| start_node(&dir, &url, id)).collect();
    let pg = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    // Dialing from every campaign, so every node's runners compete for the account.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let dialing: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT campaign_id) FROM attempts")
            .fetch_one(&pg)
            .await
            .unwrap_or(0); // before the first node has migrated the database
        if dialing == CAMPAIGNS.len() as i64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every campaign dialled within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let from: i64 = sqlx::query_scalar("SELECT MIN(started_at) FROM attempts")
        .fetch_one(&pg)
        .await
        .unwrap();
    tokio::time::sleep(RUN).await;
    let owners: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT owner) FROM lease_history")
        .fetch_one(&pg)
        .await
        .unwrap();
    drop(nodes);

    let rows = sqlx::query("SELECT started_at, ended_at FROM attempts ORDER BY started_at")
        .fetch_all(&pg)
        .await
        .unwrap();
    let calls: Vec<(i64, Option<i64>)> = rows.iter().map(|r| (r.get("started_at"), r.get("ended_at"))).collect();
    let starts: Vec<i64> = calls.iter().map(|c| c.0).collect();
    let span_s = (starts.last().copied().unwrap_or(from) - from) as f64 / 1_000.0;
    let busiest = common::busiest_second(&starts);
    let at_once = most_at_once(&calls);
    eprintln!(
        "{} dials over {span_s:.1} s from {owners} nodes ({:.1}/s); busiest rolling second {busiest} (limit {CPS}); \
         most calls at once {at_once} (limit {MAX_CONCURRENT})",
        starts.len(),
        starts.len() as f64 / span_s.max(1.0),
    );
    assert!(owners >= 3, "every node held a campaign ({owners} did)");
    assert!(
        busiest <= CPS,
        "{busiest} dials in one rolling second, over the account's {CPS}"
    );
    assert!(
        at_once <= MAX_CONCURRENT,
        "{at_once} calls at once, over the account's {MAX_CONCURRENT}"
    );
    // Not a trickle: the limits were what held the dialing back.
    assert_eq!(busiest, CPS, "the account's CPS was never reached");
    assert!(
        at_once >= MAX_CONCURRENT - 2,
        "the concurrency limit was never approached ({at_once})"
    );
    assert!(
        starts.len() as f64 >= 0.5 * CPS as f64 * span_s,
        "{} dials in {span_s:.1} s is far below the account's rate",
        starts.len()
    );
}
