//! The Twilio adapter against the call-flow emulator of the tests (`tests/twilio_emu`): the
//! daemon runs one `kind = "twilio"` campaign of short human calls to idle, with the account's
//! CPS set high so the adapter, not Twilio's limit, is measured.
//!
//! Prints the dials per second the adapter sustained (`Calls.json` requests that created a call,
//! between the 10th and the 90th percentile of their arrival instants at the emulator) and the
//! callback processing latency p50 / p99: from a callback's arrival at the daemon's listener to
//! its handling by the campaign runner (the runner's `latency_us`, logged at debug).
//!
//! `cargo bench --bench twilio [-- --contacts 2000 --cps 200 --slots 300]`

#[path = "../tests/twilio_emu/mod.rs"]
mod twilio_emu;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twilio_emu::Script;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (contacts, cps, slots) = (arg("--contacts", 2000), arg("--cps", 200), arg("--slots", 300));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (emu, url) = twilio_emu::start(|_, _| Script::Human { talk_ms: 500 }).await;
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("campaigns");
        std::fs::create_dir(&dir).expect("campaigns dir");
        let dialer = format!(
            "max_concurrent = {slots}\ncalls_per_second = {cps}\nring_timeout = \"20s\"\n\n[retry]\nmax_attempts = 1\ndelay = \"1s\""
        );
        // A real trunk under Ofcom's measure needs the AMD false-positive rate; these calls are all
        // people, so the US measure alone is what applies.
        let extra = "\n[compliance]\nabandon_policy = \"us_tsr\"\n";
        twilio_emu::campaign(&dir, "bench", &twilio_emu::phones(0, contacts), &dialer, extra);
        let db = root.path().join("bench.db");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialerd"));
        cmd.args(["run", "--until-idle", "--campaigns"])
            .arg(&dir)
            .arg("--database")
            .arg(&db);
        for (k, v) in twilio_emu::env(&url) {
            cmd.env(k, v);
        }
        let mut child = cmd
            .env("DIALERD__TWILIO__CALLS_PER_SECOND", "100000")
            .env("DIALERD__LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,dialerd::engine::runner=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dialerd");
        let stderr = child.stderr.take().expect("stderr");
        let started = Instant::now();
        let latencies = tokio::task::spawn_blocking(move || {
            let mut v = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let Ok(j) = serde_json::from_str::<serde_json::Value>(&line) else {
                    eprintln!("{line}");
                    continue;
                };
                if matches!(j["level"].as_str(), Some("WARN" | "ERROR")) {
                    eprintln!("{line}");
                }
                if let Some(us) = j["latency_us"].as_i64().or_else(|| j["fields"]["latency_us"].as_i64()) {
                    v.push(us);
                }
            }
            v
        });
        let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join");
        let mut latencies = latencies.await.expect("join");
        println!("dialerd exited {status:?} after {:.1} s", started.elapsed().as_secs_f64());
        let mut created = emu.lock().expect("emulator").created_at.clone();
        created.sort();
        let pick = |q: f64| created[((created.len() - 1) as f64 * q) as usize];
        if created.len() >= 10 {
            let (a, b) = (pick(0.1), pick(0.9));
            let n = created.iter().filter(|t| **t >= a && **t <= b).count();
            let secs = b.duration_since(a).max(Duration::from_millis(1)).as_secs_f64();
            println!(
                "Twilio adapter: {} calls created, {:.1} dials/s sustained (p10-p90 of Calls.json arrivals; campaign cps {cps}, {slots} slots)",
                created.len(),
                n as f64 / secs
            );
        }
        latencies.sort_unstable();
        if !latencies.is_empty() {
            let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
            println!(
                "callback processing latency (listener arrival -> runner): p50 {:.2} ms, p99 {:.2} ms over {} events",
                q(0.5),
                q(0.99),
                latencies.len()
            );
        }
    });
}
