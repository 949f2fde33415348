//! Simulator figures: what a run measured, and its text form. Occupancy is talk time /
//! (slots × open time), counted over the hours the calling window is open only; abandonment is
//! abandoned / person-answered, with the rolling regulatory measures of [`super::rolling`].

use super::rolling::{ByMeasure, Rolling, WorstWindow};
use crate::core::{AbandonCounts, Outcome, RefusalReason, SlotCounts};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// Counters kept while a simulation runs. Instants are milliseconds of virtual time from the start.
#[derive(Clone, Debug, Default)]
pub(crate) struct Metrics {
    slots: u32,
    pub(crate) dials: u64,
    pub(crate) connects: u64,
    pub(crate) true_human_answers: u64,
    pub(crate) talk_ms: i64,
    pub(crate) events: u64,
    machine_answers: u64,
    dialing_ms: i64,
    ratio_sum: f64,
    ratio_peak: f64,
    ratio_samples: u64,
    worst_hour: AbandonCounts,
    worst_hour_rate: f64,
    pub(crate) peak_talking: u32,
    pub(crate) peak_dials_per_second: u32,
    pub(crate) dials_outside_window: u64,
    pub(crate) redials_within_abandon_hold: u64,
    pub(crate) min_redial_after_abandon_ms: Option<i64>,
    pub(crate) rolling: Rolling,
    recent_dials: VecDeque<i64>,
    /// Start of the open period in progress, if the window is open.
    open_from: Option<i64>,
    /// The last few open periods that have closed, `[from, to)`.
    spans: VecDeque<(i64, i64)>,
}

/// Closed open-periods kept for clipping conversations (a conversation outlives at most a few).
const SPANS_KEPT: usize = 4;

impl Metrics {
    pub(crate) fn new(slots: u32, rolling: Rolling) -> Metrics {
        Metrics {
            slots,
            rolling,
            ..Metrics::default()
        }
    }

    /// A dial at `at_ms`; `open` says whether the contact's window was open.
    pub(crate) fn dialed(&mut self, at_ms: i64, open: bool) {
        self.dials += 1;
        if !open {
            self.dials_outside_window += 1;
        }
        self.recent_dials.push_back(at_ms);
        while self.recent_dials.front().is_some_and(|&t| t <= at_ms - 1000) {
            self.recent_dials.pop_front();
        }
        self.peak_dials_per_second = self.peak_dials_per_second.max(self.recent_dials.len() as u32);
    }

    /// A contact dialled `since_ms` after the end of its last abandoned call; `hold_ms` is the hold.
    pub(crate) fn redial_after_abandon(&mut self, since_ms: i64, hold_ms: i64) {
        if since_ms < hold_ms {
            self.redials_within_abandon_hold += 1;
        }
        self.min_redial_after_abandon_ms = Some(self.min_redial_after_abandon_ms.map_or(since_ms, |m| m.min(since_ms)));
    }

    /// Conversations in progress after a change.
    pub(crate) fn talking(&mut self, n: u32) {
        self.peak_talking = self.peak_talking.max(n);
    }

    pub(crate) fn outcome(&mut self, o: Outcome) {
        if matches!(o, Outcome::VoicemailLeft | Outcome::Machine) {
            self.machine_answers += 1;
        }
    }

    /// The run's calling window is `open` at `at_ms` (called at each tick, in time order).
    pub(crate) fn window(&mut self, at_ms: i64, open: bool) {
        match (self.open_from, open) {
            (None, true) => self.open_from = Some(at_ms),
            (Some(from), false) => {
                self.open_from = None;
                self.spans.push_back((from, at_ms));
                if self.spans.len() > SPANS_KEPT {
                    self.spans.pop_front();
                }
            }
            _ => {}
        }
    }

    /// A conversation from `from_ms` to `to_ms`: its time inside open periods counts as talk time.
    pub(crate) fn talk(&mut self, from_ms: i64, to_ms: i64) {
        let overlap = |(a, b): (i64, i64)| (b.min(to_ms) - a.max(from_ms)).max(0);
        let closed: i64 = self.spans.iter().map(|&s| overlap(s)).sum();
        let current = self.open_from.map_or(0, |a| overlap((a, i64::MAX)));
        self.talk_ms += closed + current;
    }

    /// One tick of `tick_ms`: dialing time and dial ratio, counted while the window is open.
    pub(crate) fn sample(&mut self, c: SlotCounts, open: bool, tick_ms: i64) {
        if !open {
            return;
        }
        self.dialing_ms += tick_ms;
        let r = c.dial_ratio();
        self.ratio_sum += r;
        self.ratio_samples += 1;
        self.ratio_peak = self.ratio_peak.max(r);
    }

    /// The rolling hour ending at `at_ms` (only full hours count).
    pub(crate) fn minute_sample(&mut self, at_ms: i64, hour: AbandonCounts) {
        if at_ms >= 3_600_000 && hour.rate() > self.worst_hour_rate {
            self.worst_hour_rate = hour.rate();
            self.worst_hour = hour;
        }
    }

    /// The report: `hours` simulated, compliance `refusals` as counted by the core.
    pub(crate) fn finish(&self, hours: f64, refusals: &BTreeMap<RefusalReason, u64>) -> SimReport {
        let slots = f64::from(self.slots.max(1));
        let dialing_h = self.dialing_ms as f64 / 3_600_000.0;
        let slot_hours = slots * dialing_h;
        let per_slot_hour = |x: f64| if slot_hours > 0.0 { x / slot_hours } else { 0.0 };
        let talk_min = self.talk_ms as f64 / 60_000.0;
        let (human, abandoned, false_positives) = self.rolling.totals();
        let run_rate = self.rolling.run_rates();
        SimReport {
            dial_log: Vec::new(),
            dials: self.dials,
            human_answers: human,
            machine_answers: self.machine_answers,
            abandoned,
            abandonment_rate: run_rate.tsr,
            worst_hour_rate: self.worst_hour_rate,
            worst_hour_abandoned: self.worst_hour.abandoned,
            worst_hour_human: self.worst_hour.human,
            simulated_hours: hours,
            dialing_hours: dialing_h,
            occupancy: if slot_hours > 0.0 {
                talk_min / 60.0 / slot_hours
            } else {
                0.0
            },
            talk_minutes_per_slot_hour: per_slot_hour(talk_min),
            connects_per_slot_hour: per_slot_hour(self.connects as f64),
            dial_ratio_mean: if self.ratio_samples > 0 {
                self.ratio_sum / self.ratio_samples as f64
            } else {
                0.0
            },
            dial_ratio_peak: self.ratio_peak,
            peak_conversations: self.peak_talking,
            peak_dials_per_second: self.peak_dials_per_second,
            dials_outside_window: self.dials_outside_window,
            amd_false_positives: false_positives,
            run_rate,
            worst_24h: self.rolling.worst_24h(),
            worst_30d: self.rolling.worst_30d(),
            refusals: refusals.iter().map(|(r, n)| (r.as_str().to_string(), *n)).collect(),
            redials_within_abandon_hold: self.redials_within_abandon_hold,
            min_redial_after_abandon_hours: self.min_redial_after_abandon_ms.map(|m| m as f64 / 3_600_000.0),
            events: self.events,
        }
    }
}

/// What one simulation measured.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SimReport {
    /// Every dial of the run: the contact (1-based index in the list) and its start (UTC), in
    /// order; left out of the JSON report, for tests that check each dial independently.
    #[serde(skip)]
    pub dial_log: Vec<(i64, DateTime<Utc>)>,
    /// Calls placed.
    pub dials: u64,
    /// Answers classified as a person (connected or abandoned), over the run.
    pub human_answers: u64,
    /// Answers classified as a machine.
    pub machine_answers: u64,
    /// People who answered and found no free slot, over the run.
    pub abandoned: u64,
    /// abandoned / human_answers over the run, 0..1 (the US TSR measure; see `run_rate`).
    pub abandonment_rate: f64,
    /// The worst rate over any full rolling hour, 0..1.
    pub worst_hour_rate: f64,
    /// Abandoned calls in that hour.
    pub worst_hour_abandoned: u64,
    /// Human answers in that hour.
    pub worst_hour_human: u64,
    /// Hours of virtual time simulated, open or closed.
    pub simulated_hours: f64,
    /// Hours the campaign was dialing (window open).
    pub dialing_hours: f64,
    /// Talk time inside open hours / (slots × open hours), 0..1.
    pub occupancy: f64,
    /// Talk minutes per agent slot per open hour.
    pub talk_minutes_per_slot_hour: f64,
    /// People connected per agent slot per open hour.
    pub connects_per_slot_hour: f64,
    /// Mean (dialing + talking) / slots, sampled each open second.
    pub dial_ratio_mean: f64,
    /// Peak of the same.
    pub dial_ratio_peak: f64,
    /// Most conversations at once (never above the slots).
    pub peak_conversations: u32,
    /// Most dials within any one second (never above the CPS budget).
    pub peak_dials_per_second: u32,
    /// Dials placed while some zone of the contact was outside the calling window (always 0).
    pub dials_outside_window: u64,
    /// Persons AMD took for machines and hung up on or left a message for (the simulator knows).
    pub amd_false_positives: u64,
    /// Abandonment over the whole run under each measure, 0..1.
    pub run_rate: ByMeasure<f64>,
    /// The worst rolling 24-hour window ending at a person-answered call, per measure.
    pub worst_24h: ByMeasure<WorstWindow>,
    /// The worst rolling 30-day window ending at a person-answered call, per measure.
    pub worst_30d: ByMeasure<WorstWindow>,
    /// Dials refused for compliance by the core, by reason (`outside_hours`, `abandon_cap`, …).
    pub refusals: BTreeMap<String, u64>,
    /// Dials of a contact less than 72 h after the end of its abandoned call (always 0).
    pub redials_within_abandon_hold: u64,
    /// Shortest time from the end of an abandoned call to the next dial of that contact, hours.
    pub min_redial_after_abandon_hours: Option<f64>,
    /// Simulated events processed.
    pub events: u64,
}

impl SimReport {
    /// A report of nothing (a run that could not start).
    pub fn empty() -> SimReport {
        Metrics::default().finish(0.0, &BTreeMap::new())
    }
}

fn pct(w: &WorstWindow) -> String {
    format!("{:.2}% ({:.1} / {:.1})", w.rate * 100.0, w.abandoned, w.answered)
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dials                       {}", self.dials)?;
        writeln!(f, "human answers               {}", self.human_answers)?;
        writeln!(f, "machine answers             {}", self.machine_answers)?;
        writeln!(f, "abandoned                   {}", self.abandoned)?;
        writeln!(
            f,
            "abandonment rate            {:.2}% ({} / {})",
            self.abandonment_rate * 100.0,
            self.abandoned,
            self.human_answers
        )?;
        writeln!(
            f,
            "worst rolling hour          {:.2}% ({} / {})",
            self.worst_hour_rate * 100.0,
            self.worst_hour_abandoned,
            self.worst_hour_human
        )?;
        writeln!(
            f,
            "run rate tsr / ofcom actual / ofcom estimated  {:.2}% / {:.2}% / {:.2}%",
            self.run_rate.tsr * 100.0,
            self.run_rate.ofcom_actual * 100.0,
            self.run_rate.ofcom_estimated * 100.0
        )?;
        for (name, w) in [("24 h", &self.worst_24h), ("30 d", &self.worst_30d)] {
            writeln!(f, "worst rolling {name} tsr           {}", pct(&w.tsr))?;
            writeln!(f, "worst rolling {name} ofcom actual  {}", pct(&w.ofcom_actual))?;
            writeln!(f, "worst rolling {name} ofcom est.    {}", pct(&w.ofcom_estimated))?;
        }
        writeln!(f, "AMD false positives         {}", self.amd_false_positives)?;
        writeln!(f, "simulated hours             {:.2}", self.simulated_hours)?;
        writeln!(f, "dialing hours               {:.2}", self.dialing_hours)?;
        writeln!(f, "occupancy                   {:.1}%", self.occupancy * 100.0)?;
        writeln!(f, "talk minutes per slot-hour  {:.1}", self.talk_minutes_per_slot_hour)?;
        writeln!(f, "connects per slot-hour      {:.2}", self.connects_per_slot_hour)?;
        writeln!(
            f,
            "dial ratio mean / peak      {:.2} / {:.2}",
            self.dial_ratio_mean, self.dial_ratio_peak
        )?;
        writeln!(f, "peak conversations          {}", self.peak_conversations)?;
        writeln!(f, "peak dials in one second    {}", self.peak_dials_per_second)?;
        writeln!(f, "dials outside the window    {}", self.dials_outside_window)?;
        writeln!(
            f,
            "redials within 72 h of an abandon  {}",
            self.redials_within_abandon_hold
        )?;
        let refusals: Vec<String> = self.refusals.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let refusals = if refusals.is_empty() {
            "none".to_string()
        } else {
            refusals.join(", ")
        };
        writeln!(f, "compliance refusals         {refusals}")?;
        writeln!(f, "simulated events            {}", self.events)
    }
}
