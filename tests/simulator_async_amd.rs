//! The simulator under asynchronous AMD (`[trunk.sim] amd = "async"`): calls are answered as
//! `unknown` and connected at once, the verdict follows after a lognormal delay, and the core
//! moves machines to voicemail. Its figures count machines as machines, as the synchronous
//! model's do, and a person only once its verdict says so.

use dialerd::campaign::file::SimAmdFile;
use dialerd::core::PacingMode;
use dialerd::sim::bench::{bench_model, bench_rules};
use dialerd::sim::des::default_start;
use dialerd::sim::{CallModel, SimOptions, simulate};

#[test]
fn async_amd_counts_machines_as_machines() {
    let opts = SimOptions {
        hours: 4.0,
        days: None,
        seed: 11,
        calls_per_second: 20,
        timezone: chrono_tz::UTC,
        start: default_start(),
        contacts: None,
    };
    let rules = bench_rules(20, PacingMode::Progressive);
    let mut file = bench_model(0.25, 90);
    file.amd_false_positive = 0.0;
    file.amd_false_negative = 0.0;
    let sync = simulate(&rules, &CallModel::new(&file).unwrap(), &opts);
    file.amd = SimAmdFile::Async;
    let asynch = simulate(&rules, &CallModel::new(&file).unwrap(), &opts);
    // Same share of machines among answers, within sampling noise; none counted as a person.
    let share = |r: &dialerd::sim::SimReport| r.machine_answers as f64 / (r.machine_answers + r.human_answers) as f64;
    println!(
        "machine share of answers: sync {:.3} ({} dials), async {:.3} ({} dials)",
        share(&sync),
        sync.dials,
        share(&asynch),
        asynch.dials
    );
    assert!(asynch.machine_answers > 100, "{asynch:?}");
    assert!((share(&sync) - share(&asynch)).abs() < 0.04, "{sync:?}\n{asynch:?}");
    // P(machine) / (P(machine) + P(human)) of the model: 0.20 / 0.45.
    assert!((share(&asynch) - 0.20 / 0.45).abs() < 0.05, "{asynch:?}");
    // Progressive never abandons, and the slots hold while machines wait for their verdict.
    assert_eq!(asynch.abandoned, 0);
    assert!(asynch.peak_conversations <= 20);
}
