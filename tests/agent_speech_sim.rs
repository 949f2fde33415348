//! "What if the agent takes 2.5 s to speak?" in the simulator: `[trunk.sim] agent_speech_delay`
//! past 2 s makes every connected call abandoned (16 CFR 310.4(b)(4)(i)) in the report and in
//! the core's own ledger, even under progressive pacing, which never lacks a free slot.

use dialerd::core::PacingMode;
use dialerd::sim::bench::{bench_model, bench_rules};
use dialerd::sim::des::default_start;
use dialerd::sim::{CallModel, SimOptions, simulate};
use std::time::Duration;

fn run(delay_ms: u64) -> dialerd::sim::SimReport {
    let mut file = bench_model(0.3, 120);
    file.agent_speech_delay = Duration::from_millis(delay_ms);
    let model = CallModel::new(&file).unwrap();
    let opts = SimOptions {
        hours: 2.0,
        days: None,
        seed: 11,
        calls_per_second: 20,
        timezone: chrono_tz::UTC,
        start: default_start(),
        contacts: None,
    };
    simulate(&bench_rules(20, PacingMode::Progressive), &model, &opts)
}

#[test]
fn an_agent_slower_than_2_s_abandons_every_connected_call() {
    let quick = run(500);
    let slow = run(2500);
    println!(
        "agent speech 0.5 s: {} abandoned of {} person answers; 2.5 s: {} of {}",
        quick.abandoned, quick.human_answers, slow.abandoned, slow.human_answers
    );
    assert!(quick.human_answers > 50, "{quick:?}");
    assert_eq!(quick.abandoned, 0, "progressive with a prompt agent abandons nothing");
    assert_eq!(slow.human_answers, quick.human_answers, "the delay changes no dial");
    assert_eq!(slow.abandoned, slow.human_answers, "every connected call is abandoned");
    assert!((slow.abandonment_rate - 1.0).abs() < 1e-12);
}
