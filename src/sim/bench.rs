//! `dialerd bench pacing`: every pacing mode over a grid of campaigns (slots × human answer rate ×
//! mean talk time), several seeds each, eight-hour days, in the discrete-event simulator.

use super::des::{SimOptions, default_start, simulate};
use super::model::CallModel;
use super::report::SimReport;
use crate::campaign::file::SimFile;
use crate::core::{
    AbandonCap, AbandonPolicy, AttemptLimits, CallbackPolicy, CallingWindow, LegalHours, PacingConfig, PacingMode,
    Policy, Priors, RetryPolicy, Rules, VoicemailAction,
};
use chrono::TimeDelta;
use serde::Serialize;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// The grid of the benchmark.
pub const SLOTS: [u32; 3] = [5, 20, 100];
/// P(human answer) values of the grid.
pub const HUMAN: [f64; 3] = [0.10, 0.20, 0.35];
/// Mean talk times of the grid, seconds.
pub const TALK_S: [u64; 2] = [60, 180];

/// One cell of the grid.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Cell {
    /// Agent slots.
    pub slots: u32,
    /// P(a person answers).
    pub p_human: f64,
    /// Mean talk time, seconds.
    pub talk_s: u64,
}

/// One mode's figures in one cell, over the seeds.
#[derive(Clone, Debug, Serialize)]
pub struct ModeFigures {
    /// The pacing mode.
    pub mode: &'static str,
    /// Mean occupancy, 0..1.
    pub occupancy: f64,
    /// Mean abandonment rate over the day, 0..1.
    pub abandon_mean: f64,
    /// Worst seed's abandonment rate over the day, 0..1.
    pub abandon_worst: f64,
    /// Mean talk minutes per slot-hour.
    pub talk_min_per_slot_hour: f64,
    /// Talk minutes per slot-hour over progressive's, in the same cell.
    pub gain_vs_progressive: f64,
    /// Median wall time of one simulated day (`hours` of virtual time), milliseconds: the `ms/day` column.
    pub wall_ms_median: f64,
    /// Call attempts simulated per wall-clock second (median run).
    pub attempts_per_second: f64,
}

/// One cell's results.
#[derive(Clone, Debug, Serialize)]
pub struct CellResult {
    /// The cell.
    pub cell: Cell,
    /// Per mode, in [`PacingMode::ALL`] order.
    pub modes: Vec<ModeFigures>,
    /// Predictive occupancy / vicidial-adaptive occupancy.
    pub predictive_vs_vicidial_occupancy: f64,
}

/// The rules the benchmark runs: always open (the benchmark is about pacing), ring 25 s, 3 % target.
pub fn bench_rules(slots: u32, mode: PacingMode) -> Rules {
    let window = CallingWindow::legal_only(
        LegalHours {
            start_secs: 0,
            end_secs: 86_400,
        },
        None,
        None,
    );
    Rules {
        slots,
        pacing: PacingConfig {
            mode,
            ..PacingConfig::default()
        },
        ring_timeout_s: 25.0,
        priors: Priors::default(),
        policy: Policy {
            retry: RetryPolicy::uniform(3, TimeDelta::minutes(30)),
            voicemail: VoicemailAction::LeaveMessage,
            callback: CallbackPolicy {
                enabled: true,
                delay: TimeDelta::hours(1),
            },
        },
        window,
        // The US measure without AMD false positives, as the pacing grid has always reported.
        cap: AbandonCap {
            policy: AbandonPolicy::UsTsr,
            ..AbandonCap::DEFAULT
        },
        limits: AttemptLimits {
            abandon_hold: mode.can_abandon().then_some(crate::core::compliance::ABANDON_HOLD),
            ..AttemptLimits::default()
        },
        state_rules: Default::default(),
        consent: None,
    }
}

/// The call model of a cell: the given human rate and talk time; machines 20 %, busy 5 %, failed 3 %,
/// the rest unanswered; AMD with 2 % false positives and 5 % false negatives.
pub fn bench_model(p_human: f64, talk_s: u64) -> SimFile {
    SimFile {
        p_human,
        p_machine: 0.20,
        p_busy: 0.05,
        p_failed: 0.03,
        p_no_answer: 1.0 - p_human - 0.28,
        talk_mean: Duration::from_secs(talk_s),
        talk_sigma: 0.6,
        amd_false_positive: 0.02,
        amd_false_negative: 0.05,
        ..SimFile::default()
    }
}

/// Runs one simulated day; returns the report and its wall time.
pub fn run_day(cell: Cell, mode: PacingMode, seed: u64, hours: f64) -> (SimReport, Duration) {
    let rules = bench_rules(cell.slots, mode);
    let model = CallModel::new(&bench_model(cell.p_human, cell.talk_s));
    let opts = SimOptions {
        hours,
        days: None,
        seed,
        calls_per_second: 20,
        timezone: chrono_tz::UTC,
        start: default_start(),
        contacts: None,
    };
    let t = Instant::now();
    let report = match model {
        Ok(m) => simulate(&rules, &m, &opts),
        Err(_) => return (SimReport::empty(), t.elapsed()),
    };
    (report, t.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Runs the grid: every cell, every mode, `seeds` seeds of `hours` hours.
pub fn bench_pacing(seeds: u64, hours: f64) -> Vec<CellResult> {
    let mut out = Vec::new();
    for &slots in &SLOTS {
        for &p_human in &HUMAN {
            for &talk_s in &TALK_S {
                let cell = Cell { slots, p_human, talk_s };
                let mut modes: Vec<ModeFigures> = PacingMode::ALL
                    .iter()
                    .map(|&mode| {
                        let runs: Vec<(SimReport, Duration)> =
                            (1..=seeds).map(|s| run_day(cell, mode, s, hours)).collect();
                        let n = runs.len().max(1) as f64;
                        let mean = |f: fn(&SimReport) -> f64| runs.iter().map(|(r, _)| f(r)).sum::<f64>() / n;
                        let walls: Vec<f64> = runs.iter().map(|(_, w)| w.as_secs_f64() * 1000.0).collect();
                        let aps: Vec<f64> = runs
                            .iter()
                            .map(|(r, w)| r.dials as f64 / w.as_secs_f64().max(1e-9))
                            .collect();
                        ModeFigures {
                            mode: mode.as_str(),
                            occupancy: mean(|r| r.occupancy),
                            abandon_mean: mean(|r| r.abandonment_rate),
                            abandon_worst: runs.iter().map(|(r, _)| r.abandonment_rate).fold(0.0, f64::max),
                            talk_min_per_slot_hour: mean(|r| r.talk_minutes_per_slot_hour),
                            gain_vs_progressive: 0.0,
                            wall_ms_median: median(walls),
                            attempts_per_second: median(aps),
                        }
                    })
                    .collect();
                let base = modes[0].talk_min_per_slot_hour.max(1e-9);
                for m in &mut modes {
                    m.gain_vs_progressive = m.talk_min_per_slot_hour / base;
                }
                let occ = |name: &str| modes.iter().find(|m| m.mode == name).map_or(0.0, |m| m.occupancy);
                let ratio = occ("predictive") / occ("vicidial-adaptive").max(1e-9);
                out.push(CellResult {
                    cell,
                    modes,
                    predictive_vs_vicidial_occupancy: ratio,
                });
            }
        }
    }
    out
}

/// The benchmark as a text table.
pub fn bench_text(results: &[CellResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>5} {:>5} {:>5}  {:<18} {:>6} {:>8} {:>8} {:>8} {:>6} {:>8} {:>10}",
        "slots", "human", "talk", "mode", "occ%", "aband%", "worst%", "talk/sh", "gain", "ms/day", "attempts/s"
    );
    for r in results {
        for m in &r.modes {
            let _ = writeln!(
                s,
                "{:>5} {:>5.2} {:>5}  {:<18} {:>6.1} {:>8.2} {:>8.2} {:>8.1} {:>6.3} {:>8.1} {:>10.0}",
                r.cell.slots,
                r.cell.p_human,
                r.cell.talk_s,
                m.mode,
                m.occupancy * 100.0,
                m.abandon_mean * 100.0,
                m.abandon_worst * 100.0,
                m.talk_min_per_slot_hour,
                m.gain_vs_progressive,
                m.wall_ms_median,
                m.attempts_per_second
            );
        }
        let _ = writeln!(
            s,
            "{:>18}  predictive / vicidial-adaptive occupancy = {:.3}",
            "", r.predictive_vs_vicidial_occupancy
        );
    }
    s
}
