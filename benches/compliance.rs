//! Compliance benchmark: `cargo bench --bench compliance [-- --json] [-- --days D --seeds N
//! --slots 5,20 --threads T --tsr-too]`. The same grid as `dialerd bench compliance`: predictive
//! pacing, 30 simulated days per cell, `both` at 3 % with the model's AMD false-positive rate.

use dialerd::core::AbandonPolicy;
use dialerd::sim::bench_compliance::{ComplianceOptions, bench_compliance, compliance_text};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let num = |name: &str| arg(name).and_then(|v| v.parse::<u64>().ok());
    let mut opts = ComplianceOptions::default();
    if let Some(d) = num("--days") {
        opts.days = d as u32;
    }
    if let Some(s) = num("--seeds") {
        opts.seeds = s;
    }
    if let Some(t) = num("--threads") {
        opts.threads = t as usize;
    }
    if let Some(list) = arg("--slots") {
        opts.slots = list.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if args.iter().any(|a| a == "--tsr-too") {
        opts.policies.push(AbandonPolicy::UsTsr);
    }
    let t = std::time::Instant::now();
    match bench_compliance(&opts) {
        Ok(runs) if args.iter().any(|a| a == "--json") => {
            println!("{}", serde_json::to_string_pretty(&runs).unwrap_or_default())
        }
        Ok(runs) => print!("{}", compliance_text(&runs)),
        Err(e) => {
            eprintln!("bench compliance: {e}");
            std::process::exit(1);
        }
    }
    eprintln!("bench wall time {:.1} s", t.elapsed().as_secs_f64());
}
