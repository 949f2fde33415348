//! The daemon at scale: `dialerd run` on the sim trunk with lists of 10,000, 100,000 and
//! 1,000,000 contacts (one campaign, 5,000 agent slots, 500 calls per second), measured from the
//! outside as an operator would: the daemon is a child process, and this bench reads its SQLite
//! file (WAL, so reading never blocks it) and its `/proc` status once a second.
//!
//! Prints, per list size: sustained dials per second over the measured window (after a warm-up),
//! the median number of calls in flight, the peak resident memory while dialing (VmRSS) and the
//! process's high-water mark (VmHWM, which includes the import).
//!
//! `cargo bench --bench daemon [-- --sizes 10000,100000 --seconds 20 --cps 500]`

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
    hwm_mb: f64,
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
    println!(
        "sim trunk, progressive, 5000 agent slots, calls_per_second = {cps}, {seconds} s measured after a 12 s warm-up"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut all = Vec::new();
    for n in sizes {
        let f = rt.block_on(run_one(n, seconds, cps));
        println!(
            "contacts {:>9}: import {:>5.1} s, {:>6.1} dials/s sustained, {:>5} calls in flight (median), \
             RSS {:>5.1} MB while dialing, VmHWM {:>5.1} MB",
            f.contacts, f.import_s, f.dials_per_s, f.in_flight_median, f.rss_dialing_mb, f.hwm_mb
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

fn spawn(dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_dialerd"))
        .args(["run", "--campaigns"])
        .arg(dir.join("campaigns"))
        .arg("--database")
        .arg(format!("sqlite://{}", dir.join("bench.db").display()))
        .env("RUST_LOG", "info")
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

async fn counts(pool: &sqlx::SqlitePool) -> (i64, i64) {
    let dials: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attempts")
        .fetch_one(pool)
        .await
        .unwrap_or(0);
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM attempts WHERE campaign_id = 'bench' AND state IN ('dialing', 'answered')",
    )
    .fetch_one(pool)
    .await
    .unwrap_or(0);
    (dials, open)
}

async fn run_one(n: usize, seconds: u64, cps: u32) -> Figures {
    let tmp = tempfile::tempdir().expect("tempdir");
    let campaigns = tmp.path().join("campaigns");
    std::fs::create_dir_all(&campaigns).expect("mkdir");
    write_list(&campaigns.join("list.csv"), n);
    let campaign = CAMPAIGN.replace("calls_per_second = 500", &format!("calls_per_second = {cps}"));
    std::fs::write(campaigns.join("bench.toml"), campaign).expect("campaign");
    let start = Instant::now();
    let mut child = spawn(tmp.path());
    let pid = child.id();
    let db = tmp.path().join("bench.db");
    // Wait for the database, then for the first dials (the import runs first).
    let pool = loop {
        if db.exists()
            && let Ok(p) = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect(&format!("sqlite://{}?mode=ro", db.display()))
                .await
        {
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
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "the daemon exited; see its log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let import_s = start.elapsed().as_secs_f64();
    // Warm-up: the slots fill in about one mean call length (about 9 s here).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let t0_ms = now_ms();
    let mut in_flight = Vec::new();
    let mut rss: f64 = 0.0;
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        in_flight.push(counts(&pool).await.1);
        rss = rss.max(proc_kb(pid, "VmRSS:"));
    }
    // Dials are counted by their start times in the database, over exactly the measured window
    // (the CPS window releases dials in bursts, which sampling a counter would miscount).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t1_ms = t0_ms + i64::try_from(seconds).unwrap_or(0) * 1000;
    let dials: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attempts WHERE started_at >= ? AND started_at < ?")
        .bind(t0_ms)
        .bind(t1_ms)
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
    let elapsed = (t1_ms - t0_ms) as f64 / 1000.0;
    let hwm = proc_kb(pid, "VmHWM:");
    // SIGTERM: stop dialing, let calls end; not measured.
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = child.wait();
    in_flight.sort_unstable();
    Figures {
        contacts: n,
        import_s,
        dials_per_s: dials as f64 / elapsed,
        in_flight_median: in_flight.get(in_flight.len() / 2).copied().unwrap_or(0),
        rss_dialing_mb: rss / 1024.0,
        hwm_mb: hwm / 1024.0,
    }
}
