//! The daemon at scale: `dialerd run` on the sim trunk with lists of 10,000, 100,000 and
//! 1,000,000 contacts (one campaign, 5,000 agent slots, 500 calls per second), measured from the
//! outside as an operator would: the daemon is a child process, and this bench reads its database
//! (SQLite in WAL, so reading never blocks it, or PostgreSQL) and its `/proc` status once a second.
//!
//! Prints, per list size: sustained dials per second over the measured window (after a warm-up),
//! the median number of calls in flight, the peak resident memory while dialing (VmRSS) and the
//! process's high-water mark (VmHWM, which includes the import). With `--nodes N` (PostgreSQL
//! only), N daemons share the database and N campaigns of the list's size each (one per node by
//! fair share): the figures are the totals, RSS the sum and the largest node's.
//!
//! `cargo bench --bench daemon [-- --sizes 10000,100000 --seconds 20 --cps 500
//!  --database postgres://user@host/db --nodes 3]` (a PostgreSQL URL names the server; each size
//! runs in a fresh database `dialerd_bench_<size>` beside the one named, dropped afterwards).

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Area codes spread over six US zones, all valid under libphonenumber.
const AREAS: [u32; 6] = [212, 312, 303, 602, 415, 907];

struct Figures {
    contacts: usize,
    import_s: f64,
    dials_per_s: f64,
    in_flight_median: i64,
    rss_dialing_mb: f64,
    rss_largest_mb: f64,
    hwm_mb: f64,
}

/// Where the daemons keep their state, as the bench reads it.
#[derive(Clone)]
enum Db {
    /// A SQLite file in the run's folder.
    Sqlite,
    /// A PostgreSQL server: a fresh database per run beside the URL's.
    Postgres(String),
}

/// The bench's read handle on the daemons' database.
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    async fn scalar(&self, sql: &str, from: Option<(i64, i64)>) -> i64 {
        match self {
            Pool::Sqlite(p) => {
                let q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.replace("$1", "?").replace("$2", "?")));
                let q = match from {
                    Some((a, b)) => q.bind(a).bind(b),
                    None => q,
                };
                q.fetch_one(p).await.unwrap_or(0)
            }
            Pool::Postgres(p) => {
                let q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()));
                let q = match from {
                    Some((a, b)) => q.bind(a).bind(b),
                    None => q,
                };
                q.fetch_one(p).await.unwrap_or(0)
            }
        }
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let head = base.rsplit_once('/').map_or(base, |(h, _)| h);
    match query {
        Some(q) => format!("{head}/{name}?{q}"),
        None => format!("{head}/{name}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| "10000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(20);
    // `--cps 1000` lets the 5,000 slots, not the CPS budget, bind: the dial rate is then how fast
    // the daemon turns calls over with every slot busy.
    let cps: u32 = arg("--cps").and_then(|s| s.parse().ok()).unwrap_or(500);
    let db = match arg("--database") {
        Some(url) if url.starts_with("postgres") => Db::Postgres(url),
        _ => Db::Sqlite,
    };
    let nodes: usize = arg("--nodes").and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    assert!(
        nodes == 1 || matches!(db, Db::Postgres(_)),
        "--nodes needs --database postgres://…"
    );
    println!(
        "sim trunk, progressive, 5000 agent slots, calls_per_second = {cps}, {seconds} s measured after a 12 s warm-up, \
         {} store, {nodes} node(s), {nodes} campaign(s)",
        if matches!(db, Db::Sqlite) {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut all = Vec::new();
    for n in sizes {
        let f = rt.block_on(run_one(n, seconds, cps, &db, nodes));
        println!(
            "contacts {:>9}: import {:>5.1} s, {:>6.1} dials/s sustained, {:>5} calls in flight (median), \
             RSS {:>5.1} MB while dialing (largest node {:>5.1} MB), VmHWM {:>5.1} MB",
            f.contacts, f.import_s, f.dials_per_s, f.in_flight_median, f.rss_dialing_mb, f.rss_largest_mb, f.hwm_mb
        );
        all.push(f);
    }
    if let (Some(first), Some(last)) = (all.first(), all.last())
        && all.len() > 1
    {
        println!(
            "dials/s at {} contacts / at {}: {:.3}",
            last.contacts,
            first.contacts,
            last.dials_per_s / first.dials_per_s
        );
    }
}

fn write_list(path: &Path, n: usize) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create csv"));
    writeln!(w, "phone,first_name").expect("write");
    // Exchanges 201..=989 without the N11 codes, lines 0000..=9999: unique and valid numbers.
    let exchanges: Vec<u32> = (201..=989).filter(|x| x % 100 != 11).collect();
    for i in 0..n {
        let area = AREAS[i % AREAS.len()];
        let k = i / AREAS.len();
        let exchange = exchanges[(k / 10_000) % exchanges.len()];
        let line = k % 10_000;
        writeln!(w, "+1{area}{exchange}{line:04},C{i}").expect("write");
    }
}

const CAMPAIGN: &str = r#"name = "Daemon bench"
agent_id = "agent_bench"
caller_id = "+14155550100"
default_region = "US"
default_timezone = "America/New_York"

[contacts]
file = "list.csv"

[dialer]
mode = "progressive"
max_concurrent = 5000
calls_per_second = 500
ring_timeout = "25s"

# Retries come back after a second, so even the 10,000-contact list keeps the slots full for the
# measured window.
[retry]
max_attempts = 3
delay = "1s"
no_answer = "1s"
busy = "1s"
machine = "1s"
failed = "1s"

[compliance]
legal_hours = "00:00-24:00"
# The benchmark measures the cost of a dial, not the calling hours of each state.
state_rules = false

[trunk]
kind = "sim"

[trunk.sim]
seed = 7
time_scale = 0.1
p_human = 0.40
p_machine = 0.20
p_no_answer = 0.30
p_busy = 0.05
p_failed = 0.05
talk_mean = "215s"
"#;

fn spawn(dir: &Path, url: &str, node: usize) -> Child {
    let log = std::fs::File::create(dir.join(format!("daemon{node}.log"))).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_dialerd"))
        .args(["run", "--campaigns"])
        .arg(dir.join("campaigns"))
        .arg("--database")
        .arg(url)
        .env("RUST_LOG", "info")
        .env("DIALERD__NODE_ID", format!("bench{node}"))
        .env("DIALERD__LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn dialerd")
}

fn proc_kb(pid: u32, field: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn counts(pool: &Pool) -> (i64, i64) {
    let dials = pool.scalar("SELECT COUNT(*) FROM attempts", None).await;
    let open = pool
        .scalar(
            "SELECT COUNT(*) FROM attempts WHERE state IN ('dialing', 'answered')",
            None,
        )
        .await;
    (dials, open)
}

async fn run_one(n: usize, seconds: u64, cps: u32, db: &Db, nodes: usize) -> Figures {
    let tmp = tempfile::tempdir().expect("tempdir");
    let campaigns = tmp.path().join("campaigns");
    std::fs::create_dir_all(&campaigns).expect("mkdir");
    write_list(&campaigns.join("list.csv"), n);
    let campaign = CAMPAIGN.replace("calls_per_second = 500", &format!("calls_per_second = {cps}"));
    for c in 0..nodes {
        // Every campaign dials its own copy of the list (a number is unique within a campaign).
        let id = if nodes == 1 {
            "bench".to_string()
        } else {
            format!("bench{c}")
        };
        std::fs::write(campaigns.join(format!("{id}.toml")), &campaign).expect("campaign");
    }
    let start = Instant::now();
    let url = match db {
        Db::Sqlite => format!("sqlite://{}", tmp.path().join("bench.db").display()),
        Db::Postgres(server) => {
            let name = format!("dialerd_bench_{n}");
            let admin = sqlx::PgPool::connect(server).await.expect("connect to PostgreSQL");
            for sql in [
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("CREATE DATABASE {name}"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&admin)
                    .await
                    .expect("fresh database");
            }
            with_database(server, &name)
        }
    };
    let mut children: Vec<Child> = (0..nodes).map(|i| spawn(tmp.path(), &url, i)).collect();
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    let db_file = tmp.path().join("bench.db");
    // Wait for the database, then for the first dials (the import runs first).
    let pool = loop {
        let opened = match db {
            Db::Sqlite if db_file.exists() => sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect(&format!("sqlite://{}?mode=ro", db_file.display()))
                .await
                .ok()
                .map(Pool::Sqlite),
            Db::Sqlite => None,
            Db::Postgres(_) => sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .ok()
                .map(Pool::Postgres),
        };
        if let Some(p) = opened {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the daemon never created its database"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    loop {
        if counts(&pool).await.0 > 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "the daemon never dialled");
        for child in &mut children {
            assert!(
                child.try_wait().ok().flatten().is_none(),
                "a daemon exited; see its log"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let import_s = start.elapsed().as_secs_f64();
    // Warm-up: the slots fill in about one mean call length (about 9 s here).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let t0_ms = now_ms();
    let mut in_flight = Vec::new();
    let (mut rss, mut largest): (f64, f64) = (0.0, 0.0);
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        in_flight.push(counts(&pool).await.1);
        let each: Vec<f64> = pids.iter().map(|p| proc_kb(*p, "VmRSS:")).collect();
        rss = rss.max(each.iter().sum());
        largest = largest.max(each.iter().copied().fold(0.0, f64::max));
    }
    // Dials are counted by their start times in the database, over exactly the measured window
    // (the CPS window releases dials in bursts, which sampling a counter would miscount).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t1_ms = t0_ms + i64::try_from(seconds).unwrap_or(0) * 1000;
    let dials = pool
        .scalar(
            "SELECT COUNT(*) FROM attempts WHERE started_at >= $1 AND started_at < $2",
            Some((t0_ms, t1_ms)),
        )
        .await;
    let elapsed = (t1_ms - t0_ms) as f64 / 1000.0;
    let hwm: f64 = pids.iter().map(|p| proc_kb(*p, "VmHWM:")).sum();
    // SIGTERM: stop dialing, let calls end; not measured.
    for (pid, child) in pids.iter().zip(&mut children) {
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let _ = child.wait();
    }
    if let (Db::Postgres(server), Pool::Postgres(p)) = (db, pool) {
        p.close().await;
        if let Ok(admin) = sqlx::PgPool::connect(server).await {
            let drop = format!("DROP DATABASE IF EXISTS dialerd_bench_{n} WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await;
        }
    }
    in_flight.sort_unstable();
    Figures {
        contacts: n,
        import_s,
        dials_per_s: dials as f64 / elapsed,
        in_flight_median: in_flight.get(in_flight.len() / 2).copied().unwrap_or(0),
        rss_dialing_mb: rss / 1024.0,
        rss_largest_mb: largest / 1024.0,
        hwm_mb: hwm / 1024.0,
    }
}
