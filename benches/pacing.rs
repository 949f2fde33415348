//! Pacing benchmark: `cargo bench --bench pacing [-- --json] [-- --seeds N --hours H]`.
//! The same grid as `dialerd bench pacing`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let seeds = arg("--seeds").unwrap_or(5.0) as u64;
    let hours = arg("--hours").unwrap_or(8.0);
    let t = std::time::Instant::now();
    let results = dialerd::sim::bench::bench_pacing(seeds, hours);
    if args.iter().any(|a| a == "--json") {
        println!("{}", serde_json::to_string_pretty(&results).unwrap_or_default());
    } else {
        print!("{}", dialerd::sim::bench::bench_text(&results));
    }
    eprintln!("bench wall time {:.1} s", t.elapsed().as_secs_f64());
}
