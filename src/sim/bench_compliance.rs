//! `dialerd bench compliance`: predictive pacing over the pacing grid's cells for 30 simulated
//! days each, under the abandonment cap (`both` by default: US TSR over 30 days and Ofcom over 24
//! hours with the configured AMD false-positive rate), a calling window that closes at night and
//! at weekends, per-day and gap limits and the 72-hour hold after an abandoned call. Cells run on
//! every core, each in its own simulator; the output order does not depend on the scheduling.

use super::bench::{Cell, HUMAN, SLOTS, TALK_S, bench_model, bench_rules};
use super::des::{SimOptions, default_start, simulate};
use super::model::{CallModel, ModelError};
use super::report::SimReport;
use super::rolling::{ByMeasure, WorstWindow};
use crate::core::compliance::ABANDON_HOLD;
use crate::core::{
    AbandonCap, AbandonPolicy, AttemptLimits, CallingWindow, LegalHours, PacingMode, Rules, WindowError,
};
use chrono::{NaiveDate, TimeDelta};
use chrono_tz::Tz;
use serde::Serialize;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The campaign's calling window inside legal hours (08:00–21:00 local): 09:00–16:59 on weekdays.
pub const WINDOW: &str = "0 * 9-16 * * Mon-Fri";
/// The zone of every contact of the pool.
pub const ZONE: Tz = chrono_tz::America::New_York;
/// The abandonment cap, 0..1 (3 % under both rules).
pub const CAP: f64 = 0.03;
/// Attempts allowed per local day of the contact.
pub const MAX_PER_DAY: u32 = 2;
/// Least time between two attempts to the same contact, minutes.
pub const MIN_GAP_MIN: i64 = 60;
/// CPS budget of every run, dials per second.
pub const CPS: u32 = 20;

/// Errors of the compliance benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The benchmark's calling window did not build.
    #[error("{0}")]
    Window(#[from] WindowError),
    /// A cell's call model did not build.
    #[error("{0}")]
    Model(#[from] ModelError),
}

/// What to run.
#[derive(Clone, Debug)]
pub struct ComplianceOptions {
    /// Simulated days per run (24 hours each, nights and weekends included).
    pub days: u32,
    /// Seeds per cell and policy, 1..=seeds.
    pub seeds: u64,
    /// The policies to run each cell under.
    pub policies: Vec<AbandonPolicy>,
    /// Only cells with these slot counts (empty: every cell of the grid).
    pub slots: Vec<u32>,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

impl Default for ComplianceOptions {
    fn default() -> ComplianceOptions {
        ComplianceOptions {
            days: 30,
            seeds: 1,
            policies: vec![AbandonPolicy::Both],
            slots: Vec::new(),
            threads: 0,
        }
    }
}

/// One 30-day run of one cell.
#[derive(Clone, Debug, Serialize)]
pub struct ComplianceRun {
    /// The cell.
    pub cell: Cell,
    /// `us_tsr`, `uk_ofcom` or `both`.
    pub policy: &'static str,
    /// The seed.
    pub seed: u64,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// The figures.
    pub report: SimReport,
}

/// The rules of the compliance grid: predictive pacing, the bench's retry policy, legal hours
/// 08:00–21:00 and [`WINDOW`] in each contact's zone, 25 December as a holiday, `policy` at
/// [`CAP`] with `amd_false_positive_rate` as the configured rate, [`MAX_PER_DAY`], [`MIN_GAP_MIN`]
/// and the 72-hour hold after an abandoned call.
///
/// Errors: [`WindowError`] if the window does not parse (it is a constant; it does).
pub fn compliance_rules(slots: u32, policy: AbandonPolicy, amd_false_positive_rate: f64) -> Result<Rules, WindowError> {
    let mut rules = bench_rules(slots, PacingMode::Predictive);
    let christmas = NaiveDate::from_ymd_opt(2026, 12, 25);
    rules.window = CallingWindow::new(&[WINDOW.to_string()], LegalHours::DEFAULT, None, None)?.with_holidays(christmas);
    rules.cap = AbandonCap {
        policy,
        cap: CAP,
        amd_false_positive_rate,
    };
    rules.limits = AttemptLimits {
        max_per_day: Some(MAX_PER_DAY),
        min_gap: Some(TimeDelta::minutes(MIN_GAP_MIN)),
        abandon_hold: Some(ABANDON_HOLD),
    };
    Ok(rules)
}

/// The options of one compliance run: `days` days from [`default_start`] (a Tuesday), pool in [`ZONE`].
pub fn compliance_options(days: u32, seed: u64) -> SimOptions {
    SimOptions {
        hours: f64::from(days) * 24.0,
        days: Some(days),
        seed,
        calls_per_second: CPS,
        timezone: ZONE,
        start: default_start(),
        contacts: None,
    }
}

/// Runs one cell under `policy` for `days` days with `seed`.
///
/// Errors: [`BenchError`] when the rules or the model do not build.
pub fn run_compliance(cell: Cell, policy: AbandonPolicy, days: u32, seed: u64) -> Result<ComplianceRun, BenchError> {
    let file = bench_model(cell.p_human, cell.talk_s);
    let rules = compliance_rules(cell.slots, policy, file.amd_false_positive)?;
    let model = CallModel::new(&file)?;
    let t = Instant::now();
    let report = simulate(&rules, &model, &compliance_options(days, seed));
    Ok(ComplianceRun {
        cell,
        policy: policy.as_str(),
        seed,
        wall_s: t.elapsed().as_secs_f64(),
        report,
    })
}

/// Runs the grid: every cell (or those with `opts.slots`), every policy, every seed, on
/// `opts.threads` threads. Runs come back in grid order, policy and seed within a cell.
///
/// Errors: the first [`BenchError`] of any run.
pub fn bench_compliance(opts: &ComplianceOptions) -> Result<Vec<ComplianceRun>, BenchError> {
    let mut jobs = Vec::new();
    for &slots in SLOTS.iter().filter(|s| opts.slots.is_empty() || opts.slots.contains(s)) {
        for &p_human in &HUMAN {
            for &talk_s in &TALK_S {
                for &policy in &opts.policies {
                    for seed in 1..=opts.seeds {
                        jobs.push((Cell { slots, p_human, talk_s }, policy, seed));
                    }
                }
            }
        }
    }
    // Longest first (more slots, shorter talk, fewer answers: more dials), so the last job is short.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| {
        let (c, _, _) = jobs[i];
        std::cmp::Reverse((
            c.slots,
            std::cmp::Reverse(c.talk_s),
            std::cmp::Reverse((c.p_human * 100.0) as u32),
        ))
    });
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Result<ComplianceRun, BenchError>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let (cell, policy, seed) = jobs[i];
                    let run = run_compliance(cell, policy, opts.days, seed);
                    if let Ok(mut d) = done.lock() {
                        d.push((i, run));
                    }
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The worst of each figure across `runs`: (30-day run rates, rolling 24 h, rolling 30 d); the
/// counts of answers over the cap are summed over the runs.
pub fn worst(runs: &[ComplianceRun]) -> (ByMeasure<f64>, ByMeasure<WorstWindow>, ByMeasure<WorstWindow>) {
    let mut rate = ByMeasure::<f64>::default();
    let (mut w24, mut w30) = (ByMeasure::<WorstWindow>::default(), ByMeasure::<WorstWindow>::default());
    // The worst window; answers over the cap are added up, window sizes maxed.
    let max_w = |a: &mut WorstWindow, b: WorstWindow| {
        let (over, most) = (
            a.over_cap + b.over_cap,
            a.over_cap_most_answered.max(b.over_cap_most_answered),
        );
        if b.rate > a.rate {
            *a = b;
        }
        a.over_cap = over;
        a.over_cap_most_answered = most;
    };
    for r in runs {
        let rep = &r.report;
        rate.tsr = rate.tsr.max(rep.run_rate.tsr);
        rate.ofcom_actual = rate.ofcom_actual.max(rep.run_rate.ofcom_actual);
        rate.ofcom_estimated = rate.ofcom_estimated.max(rep.run_rate.ofcom_estimated);
        for (a, b) in [(&mut w24, rep.worst_24h), (&mut w30, rep.worst_30d)] {
            max_w(&mut a.tsr, b.tsr);
            max_w(&mut a.ofcom_actual, b.ofcom_actual);
            max_w(&mut a.ofcom_estimated, b.ofcom_estimated);
        }
    }
    (rate, w24, w30)
}

/// The grid as a text table, then the worst value of each measure across it.
pub fn compliance_text(runs: &[ComplianceRun]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>5} {:>5} {:>4} {:<6} {:>4}  {:>6} {:>6} {:>6}  {:>6} {:>6} {:>6}  {:>6}  {:>7} {:>5} {:>7}  refusals",
        "slots",
        "human",
        "talk",
        "policy",
        "seed",
        "tsr30",
        "ofc30a",
        "ofc30e",
        "tsr24",
        "ofc24a",
        "ofc24e",
        "tsr30w",
        "talk/sh",
        "occ%",
        "wall s"
    );
    let p = |x: f64| format!("{:.2}", x * 100.0);
    for r in runs {
        let rep = &r.report;
        let refusals: Vec<String> = rep.refusals.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            s,
            "{:>5} {:>5.2} {:>4} {:<6} {:>4}  {:>6} {:>6} {:>6}  {:>6} {:>6} {:>6}  {:>6}  {:>7.1} {:>5.1} {:>7.1}  {}",
            r.cell.slots,
            r.cell.p_human,
            r.cell.talk_s,
            r.policy,
            r.seed,
            p(rep.run_rate.tsr),
            p(rep.run_rate.ofcom_actual),
            p(rep.run_rate.ofcom_estimated),
            p(rep.worst_24h.tsr.rate),
            p(rep.worst_24h.ofcom_actual.rate),
            p(rep.worst_24h.ofcom_estimated.rate),
            p(rep.worst_30d.tsr.rate),
            rep.talk_minutes_per_slot_hour,
            rep.occupancy * 100.0,
            r.wall_s,
            if refusals.is_empty() {
                "none".to_string()
            } else {
                refusals.join(", ")
            }
        );
    }
    let _ = writeln!(
        s,
        "rates in %; tsr30/ofc30: over the whole run; 24/30w: worst rolling window at any answer"
    );
    let mut policies: Vec<&str> = runs.iter().map(|r| r.policy).collect();
    policies.sort_unstable();
    policies.dedup();
    for policy in policies {
        let of: Vec<ComplianceRun> = runs.iter().filter(|r| r.policy == policy).cloned().collect();
        summary(&mut s, policy, &of);
    }
    let outside: u64 = runs.iter().map(|r| r.report.dials_outside_window).sum();
    let redials: u64 = runs.iter().map(|r| r.report.redials_within_abandon_hold).sum();
    let _ = writeln!(
        s,
        "dials outside the window {outside}, redials within 72 h of an abandon {redials}"
    );
    s
}

/// The worst value of each measure across `runs` of one policy, as text.
fn summary(s: &mut String, policy: &str, runs: &[ComplianceRun]) {
    let (rate, w24, w30) = worst(runs);
    let win = |w: &WorstWindow| {
        let over = if w.over_cap == 0 {
            String::new()
        } else {
            format!(
                "; over the cap at {} answers, in windows of at most {:.0} answers",
                w.over_cap, w.over_cap_most_answered
            )
        };
        format!(
            "{:.2}% ({:.1} / {:.1} at {:.1} h{over})",
            w.rate * 100.0,
            w.abandoned,
            w.answered,
            w.at_hours
        )
    };
    let _ = writeln!(
        s,
        "{policy}: worst 30-day rate: tsr {:.2}%, ofcom actual {:.2}%, ofcom estimated {:.2}%",
        rate.tsr * 100.0,
        rate.ofcom_actual * 100.0,
        rate.ofcom_estimated * 100.0
    );
    for (name, w) in [("24-hour", &w24), ("30-day", &w30)] {
        let _ = writeln!(s, "{policy}: worst rolling {name}:");
        let _ = writeln!(s, "  tsr             {}", win(&w.tsr));
        let _ = writeln!(s, "  ofcom actual    {}", win(&w.ofcom_actual));
        let _ = writeln!(s, "  ofcom estimated {}", win(&w.ofcom_estimated));
    }
}
