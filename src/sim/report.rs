//! Simulator figures: what a run measured, and its text form. Occupancy is talk time /
//! (slots × dialing time); abandonment is abandoned / human-answered.

use crate::core::{AbandonCounts, Outcome, SlotCounts};
use serde::Serialize;
use std::fmt;

/// Counters kept while a simulation runs.
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
    recent_dials: std::collections::VecDeque<i64>,
}

impl Metrics {
    pub(crate) fn new(slots: u32) -> Metrics {
        Metrics {
            slots,
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

    /// Conversations in progress after a change.
    pub(crate) fn talking(&mut self, n: u32) {
        self.peak_talking = self.peak_talking.max(n);
    }

    pub(crate) fn outcome(&mut self, o: Outcome) {
        if matches!(o, Outcome::VoicemailLeft | Outcome::Machine) {
            self.machine_answers += 1;
        }
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

    pub(crate) fn finish(&self, day: AbandonCounts) -> SimReport {
        let slots = f64::from(self.slots.max(1));
        let dialing_h = self.dialing_ms as f64 / 3_600_000.0;
        let slot_hours = slots * dialing_h;
        let per_slot_hour = |x: f64| if slot_hours > 0.0 { x / slot_hours } else { 0.0 };
        let talk_min = self.talk_ms as f64 / 60_000.0;
        SimReport {
            dials: self.dials,
            human_answers: day.human,
            machine_answers: self.machine_answers,
            abandoned: day.abandoned,
            abandonment_rate: day.rate(),
            worst_hour_rate: self.worst_hour_rate,
            worst_hour_abandoned: self.worst_hour.abandoned,
            worst_hour_human: self.worst_hour.human,
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
            events: self.events,
        }
    }
}

/// What one simulation measured.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SimReport {
    /// Calls placed.
    pub dials: u64,
    /// Answers classified as a person (connected or abandoned).
    pub human_answers: u64,
    /// Answers classified as a machine.
    pub machine_answers: u64,
    /// People who answered and found no free slot.
    pub abandoned: u64,
    /// abandoned / human_answers over the run, 0..1.
    pub abandonment_rate: f64,
    /// The worst rate over any full rolling hour, 0..1.
    pub worst_hour_rate: f64,
    /// Abandoned calls in that hour.
    pub worst_hour_abandoned: u64,
    /// Human answers in that hour.
    pub worst_hour_human: u64,
    /// Hours the campaign was dialing (window open).
    pub dialing_hours: f64,
    /// Talk time / (slots × dialing time), 0..1.
    pub occupancy: f64,
    /// Talk minutes per agent slot per dialing hour.
    pub talk_minutes_per_slot_hour: f64,
    /// People connected per agent slot per dialing hour.
    pub connects_per_slot_hour: f64,
    /// Mean (dialing + talking) / slots, sampled each second.
    pub dial_ratio_mean: f64,
    /// Peak of the same.
    pub dial_ratio_peak: f64,
    /// Most conversations at once (never above the slots).
    pub peak_conversations: u32,
    /// Most dials within any one second (never above the CPS budget).
    pub peak_dials_per_second: u32,
    /// Dials placed outside the contact's calling window (always 0).
    pub dials_outside_window: u64,
    /// Simulated events processed.
    pub events: u64,
}

impl SimReport {
    /// A report of nothing (a run that could not start).
    pub fn empty() -> SimReport {
        Metrics::default().finish(AbandonCounts::default())
    }
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
        writeln!(f, "simulated events            {}", self.events)
    }
}
