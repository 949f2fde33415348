//! Pacing: how many new calls to start now. Modes: progressive, ratio, predictive (an Erlang-style
//! model of answers and slot releases), and vicidial-adaptive (VICIdial's `ADAPT_HARD_LIMIT`
//! method, kept as a baseline for comparison). Every mode is capped by `max_dial_ratio`; the
//! caller applies the CPS budget and the calling windows.

use super::abandon::AbandonCounts;
use super::estimate::{Estimates, normal_cdf, normal_pdf};
use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;

/// Snapshot of a campaign's agent slots and calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotCounts {
    /// Agent slots (`max_concurrent`): the most conversations at once.
    pub slots: u32,
    /// Calls connected to an agent slot (talking).
    pub talking: u32,
    /// Calls placed and not yet answered or classified (dialing or ringing).
    pub dialing: u32,
    /// Answered people who found no free slot, hearing the safe-harbor message.
    pub safe_harbor: u32,
    /// Answered machines: leaving voicemail or being hung up.
    pub machine: u32,
}

impl SlotCounts {
    /// Agent slots not in a conversation.
    pub fn free(&self) -> u32 {
        self.slots.saturating_sub(self.talking)
    }

    /// Lines per agent slot: (dialing + talking) / slots, VICIdial's "dial level".
    pub fn dial_ratio(&self) -> f64 {
        if self.slots == 0 {
            0.0
        } else {
            f64::from(self.dialing + self.talking) / f64::from(self.slots)
        }
    }
}

/// Pacing modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacingMode {
    /// One call per free agent slot: `n = free − dialing`. Never abandons.
    Progressive,
    /// A fixed ratio: `n = floor(ratio × free) − dialing`.
    Ratio,
    /// The largest `n` whose expected abandoned answers stay under the target share of expected
    /// human answers, with measured-abandonment feedback.
    Predictive,
    /// VICIdial's adaptive `ADAPT_HARD_LIMIT` dial level, as published. A baseline, not for production.
    VicidialAdaptive,
}

impl PacingMode {
    /// Every mode, in the order reports list them.
    pub const ALL: [PacingMode; 4] = [
        PacingMode::Progressive,
        PacingMode::Ratio,
        PacingMode::Predictive,
        PacingMode::VicidialAdaptive,
    ];

    /// The name used in campaign files, flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PacingMode::Progressive => "progressive",
            PacingMode::Ratio => "ratio",
            PacingMode::Predictive => "predictive",
            PacingMode::VicidialAdaptive => "vicidial-adaptive",
        }
    }

    /// True when the mode can dial more calls than free slots, so an answer can find no slot.
    pub fn can_abandon(self) -> bool {
        self != PacingMode::Progressive
    }
}

impl std::str::FromStr for PacingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PacingMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s || m.as_str().replace('-', "_") == s)
            .ok_or_else(|| format!("unknown pacing mode `{s}` (progressive, ratio, predictive, vicidial-adaptive)"))
    }
}

/// Pacing settings from `[dialer]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PacingConfig {
    /// The mode.
    pub mode: PacingMode,
    /// Lines per free slot in `ratio` mode (≥ 1).
    pub ratio: f64,
    /// Abandonment target, abandoned / human-answered, in 0..1 (default 0.03, FTC TSR 16 CFR 310.4(b)(4)(i)).
    pub target_abandon_rate: f64,
    /// Most lines per agent slot, (dialing + talking) / slots (≥ 1).
    pub max_dial_ratio: f64,
    /// VICIdial `adaptive_intensity` in −100..100 (default 0).
    pub vicidial_intensity: f64,
    /// Share of the target the predictive model aims at per decision (default 0.2); the rest is
    /// margin for model error.
    pub predictive_aim: f64,
    /// Predictive falls back to progressive while measured abandonment exceeds this share of the
    /// target (default 0.8).
    pub feedback_guard: f64,
}

impl Default for PacingConfig {
    fn default() -> PacingConfig {
        PacingConfig {
            mode: PacingMode::Progressive,
            ratio: 1.5,
            target_abandon_rate: 0.03,
            max_dial_ratio: 3.0,
            vicidial_intensity: 0.0,
            predictive_aim: 0.2,
            feedback_guard: 0.8,
        }
    }
}

/// What the pacer sees at a decision.
#[derive(Clone, Copy, Debug)]
pub struct PacingInput<'a> {
    /// Decision time (UTC).
    pub now: DateTime<Utc>,
    /// Slot and call counts.
    pub counts: SlotCounts,
    /// Seconds since dial of each call still dialing.
    pub dialing_elapsed: &'a [f64],
    /// Seconds since connect of each call talking.
    pub talking_elapsed: &'a [f64],
    /// Outcome and duration estimates.
    pub estimates: &'a Estimates,
    /// Measured abandonment over the rolling window(s) in force; the worst one.
    pub measured: AbandonCounts,
    /// Ring timeout in seconds.
    pub ring_timeout_s: f64,
}

/// Horizons, as multiples of the median human answer time, at which the model checks abandonment.
const HORIZONS: [f64; 4] = [0.5, 1.0, 2.0, 3.0];

/// E[(X)+] for X ~ N(mu, var): sigma·φ(mu/sigma) + mu·Φ(mu/sigma) (the normal loss function).
fn expected_excess(mu: f64, var: f64) -> f64 {
    if var <= 1e-12 {
        return mu.max(0.0);
    }
    let sigma = var.sqrt();
    sigma * normal_pdf(mu / sigma) + mu * normal_cdf(mu / sigma)
}

/// Stateful pacer (VICIdial's dial level and its samples; the last decision's ratio).
#[derive(Clone, Debug)]
pub struct Pacer {
    cfg: PacingConfig,
    vici: Vicidial,
    /// Integral feedback on the predictive aim: shrinks while measured abandonment runs above
    /// [`HOLD_AT`] of the target, grows while below, so the hard guard is rarely reached.
    aim_scale: f64,
    last_scale_update: Option<DateTime<Utc>>,
}

/// The share of the target the feedback term holds measured abandonment at.
const HOLD_AT: f64 = 0.6;
/// How often the feedback term moves, and by how much (× per step).
const SCALE_PERIOD_S: i64 = 10;
const SCALE_DOWN: f64 = 0.85;
const SCALE_UP: f64 = 1.05;

impl Pacer {
    /// A pacer for `cfg`.
    pub fn new(cfg: PacingConfig) -> Pacer {
        Pacer {
            cfg,
            vici: Vicidial::new(),
            aim_scale: 1.0,
            last_scale_update: None,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &PacingConfig {
        &self.cfg
    }

    /// Replaces the settings; adaptive state is kept.
    pub fn set_config(&mut self, cfg: PacingConfig) {
        self.cfg = cfg;
    }

    /// The current VICIdial dial level (1.0..3.0).
    pub fn vicidial_level(&self) -> f64 {
        self.vici.level
    }

    /// Records that `n` calls were placed at `now` (VICIdial counts placements per minute and day).
    pub fn placed(&mut self, now: DateTime<Utc>, n: u32) {
        for _ in 0..n {
            self.vici.placed.push_back(now);
        }
    }

    /// Records an abandoned ("dropped") call at `now`.
    pub fn dropped(&mut self, now: DateTime<Utc>) {
        self.vici.drops.push_back(now);
    }

    /// New calls to start now (before the CPS budget and windows are applied).
    pub fn calls_to_start(&mut self, inp: &PacingInput<'_>) -> u32 {
        let c = inp.counts;
        let progressive = c.free().saturating_sub(c.dialing);
        let cap = ((self.cfg.max_dial_ratio * f64::from(c.slots)).floor() as u32).saturating_sub(c.dialing + c.talking);
        let n = match self.cfg.mode {
            PacingMode::Progressive => progressive,
            PacingMode::Ratio => ((self.cfg.ratio * f64::from(c.free())).floor() as u32).saturating_sub(c.dialing),
            PacingMode::Predictive => {
                self.update_aim_scale(inp);
                self.predictive(inp, cap).max(progressive)
            }
            PacingMode::VicidialAdaptive => self.vici.decide(inp, &self.cfg),
        };
        n.min(cap.max(progressive))
    }

    /// The feedback term's current multiplier of the predictive aim.
    pub fn aim_scale(&self) -> f64 {
        self.aim_scale
    }

    fn update_aim_scale(&mut self, inp: &PacingInput<'_>) {
        if self
            .last_scale_update
            .is_some_and(|t| inp.now - t < Duration::seconds(SCALE_PERIOD_S))
        {
            return;
        }
        self.last_scale_update = Some(inp.now);
        let m = inp.measured;
        if m.human < 20 {
            return;
        }
        let over = m.rate() > HOLD_AT * self.cfg.target_abandon_rate;
        self.aim_scale = (self.aim_scale * if over { SCALE_DOWN } else { SCALE_UP }).clamp(0.05, 2.0);
    }

    fn predictive(&self, inp: &PacingInput<'_>, cap: u32) -> u32 {
        let target = self.cfg.target_abandon_rate;
        let m = inp.measured;
        if m.abandoned as f64 > self.cfg.feedback_guard * target * m.human as f64 {
            return 0; // the caller takes the progressive floor
        }
        let est = inp.estimates;
        let p = est.outcomes.probs();
        let (human, machine, early, talk) = (
            est.human_answer.fit(),
            est.machine_answer.fit(),
            est.early_end.fit(),
            est.talk.fit(),
        );
        let ring = inp.ring_timeout_s;
        // Per dialing call: P(still unresolved at e) and P(a person eventually answers | unresolved).
        let surv = |e: f64| {
            p.human * (1.0 - human.cdf(e))
                + p.machine * (1.0 - machine.cdf(e))
                + if e < ring { p.no_answer } else { 0.0 }
                + p.early * (1.0 - early.cdf(e))
        };
        let free = f64::from(inp.counts.free());
        let mut eventual_humans = 0.0;
        let mut moments = [(0.0f64, 0.0f64); HORIZONS.len()];
        let mut new_call = [0.0f64; HORIZONS.len()];
        let horizons = HORIZONS.map(|k| (k * human.median()).min(ring));
        for &e in inp.dialing_elapsed {
            let s = surv(e).max(1e-9);
            let g0 = human.cdf(e);
            eventual_humans += (p.human * (1.0 - g0) / s).min(1.0);
            for (i, &h) in horizons.iter().enumerate() {
                let q = (p.human * (human.cdf(e + h) - g0) / s).clamp(0.0, 1.0);
                moments[i].0 += q;
                moments[i].1 += q * (1.0 - q);
            }
        }
        for &d in inp.talking_elapsed {
            // P(ends within h | lasted d), with the survival at d computed once per call.
            let c0 = talk.cdf(d);
            let survive = (1.0 - c0).max(1e-12);
            for (i, &h) in horizons.iter().enumerate() {
                let r = ((talk.cdf(d + h) - c0) / survive).clamp(0.0, 1.0);
                moments[i].0 -= r;
                moments[i].1 += r * (1.0 - r);
            }
        }
        for (i, &h) in horizons.iter().enumerate() {
            moments[i].0 -= free;
            new_call[i] = p.human * human.cdf(h);
        }
        let aim = self.cfg.predictive_aim * self.aim_scale * target;
        let fits = |n: f64| {
            let humans = eventual_humans + n * p.human;
            moments
                .iter()
                .zip(new_call)
                .all(|(&(mu, var), a)| expected_excess(mu + n * a, var + n * a * (1.0 - a)) <= aim * humans.max(1.0))
        };
        let mut n = 0;
        while n < cap && fits(f64::from(n + 1)) {
            n += 1;
        }
        n
    }
}

/// One per-second VICIdial sample: (time, ready slots, answered calls waiting for a slot, agents).
type VicidialSample = (DateTime<Utc>, f64, f64, f64);

/// VICIdial `ADAPT_HARD_LIMIT` state.
#[derive(Clone, Debug)]
struct Vicidial {
    level: f64,
    last_place: Option<DateTime<Utc>>,
    last_sample: Option<DateTime<Utc>>,
    last_adjust: Option<DateTime<Utc>>,
    samples: VecDeque<VicidialSample>,
    placed: VecDeque<DateTime<Utc>>,
    drops: VecDeque<DateTime<Utc>>,
}

impl Vicidial {
    fn new() -> Vicidial {
        Vicidial {
            level: 1.0,
            last_place: None,
            last_sample: None,
            last_adjust: None,
            samples: VecDeque::new(),
            placed: VecDeque::new(),
            drops: VecDeque::new(),
        }
    }

    fn decide(&mut self, inp: &PacingInput<'_>, cfg: &PacingConfig) -> u32 {
        let now = inp.now;
        let c = inp.counts;
        if self.last_sample.is_none_or(|t| now - t >= Duration::seconds(1)) {
            self.last_sample = Some(now);
            self.samples
                .push_back((now, f64::from(c.free()), f64::from(c.safe_harbor), f64::from(c.slots)));
        }
        while self.samples.front().is_some_and(|s| now - s.0 > Duration::seconds(15)) {
            self.samples.pop_front();
        }
        let day_ago = now - Duration::days(1);
        while self.placed.front().is_some_and(|&t| t < day_ago) {
            self.placed.pop_front();
        }
        while self.drops.front().is_some_and(|&t| t < day_ago) {
            self.drops.pop_front();
        }
        // The first adjustment comes after 15 s of samples.
        let last_adjust = *self.last_adjust.get_or_insert(now);
        if now - last_adjust >= Duration::seconds(15) && !self.samples.is_empty() {
            self.last_adjust = Some(now);
            let k = self.samples.len() as f64;
            let mean = |f: fn(&VicidialSample) -> f64| self.samples.iter().map(f).sum::<f64>() / k;
            let agents = mean(|s| s.3);
            if agents > 0.0 {
                let d = mean(|s| s.1) - mean(|s| s.2);
                let m = d / agents;
                let i = cfg.vicidial_intensity / 100.0;
                let m2 = if m >= 0.0 { m * (1.0 + i) } else { m * (i - 1.0).abs() };
                self.level = (self.level * (1.0 + m2)).clamp(1.0, 3.0);
            }
            let minute_ago = now - Duration::minutes(1);
            let placed_minute = self.placed.iter().filter(|&&t| t >= minute_ago).count();
            let drops_minute = self.drops.iter().filter(|&&t| t >= minute_ago).count();
            if placed_minute > 20 && drops_minute * 2 > placed_minute {
                self.level = (self.level / 2.0).max(1.0);
            }
            if self.placed.len() > 50 && inp.measured.rate() > cfg.target_abandon_rate {
                self.level = 1.0;
            }
        }
        if self.last_place.is_some_and(|t| now - t < Duration::milliseconds(2500)) {
            return 0;
        }
        self.last_place = Some(now);
        let target = (self.level * f64::from(c.slots)).round() as u32;
        target.saturating_sub(c.dialing + c.talking)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::estimate::Priors;

    fn input<'a>(counts: SlotCounts, est: &'a Estimates, dialing: &'a [f64], talking: &'a [f64]) -> PacingInput<'a> {
        PacingInput {
            now: DateTime::parse_from_rfc3339("2026-12-01T15:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            counts,
            dialing_elapsed: dialing,
            talking_elapsed: talking,
            estimates: est,
            measured: AbandonCounts::default(),
            ring_timeout_s: 25.0,
        }
    }

    #[test]
    fn progressive_and_ratio() {
        let est = Estimates::new(&Priors::default());
        let c = SlotCounts {
            slots: 5,
            talking: 2,
            dialing: 1,
            ..SlotCounts::default()
        };
        let mut p = Pacer::new(PacingConfig::default());
        assert_eq!(p.calls_to_start(&input(c, &est, &[0.0], &[1.0, 2.0])), 2);
        let mut r = Pacer::new(PacingConfig {
            mode: PacingMode::Ratio,
            ratio: 2.0,
            ..PacingConfig::default()
        });
        assert_eq!(r.calls_to_start(&input(c, &est, &[0.0], &[1.0, 2.0])), 5);
    }

    #[test]
    fn predictive_over_dials_with_low_answer_rates_and_never_below_progressive() {
        let est = Estimates::new(&Priors::default());
        let mut p = Pacer::new(PacingConfig {
            mode: PacingMode::Predictive,
            ..PacingConfig::default()
        });
        let talking: Vec<f64> = (0..18).map(|i| f64::from(i) * 10.0).collect();
        let c = SlotCounts {
            slots: 20,
            talking: 18,
            dialing: 0,
            ..SlotCounts::default()
        };
        let n = p.calls_to_start(&input(c, &est, &[], &talking));
        assert!(
            n > 2,
            "with P(human) 0.2 predictive dials more than the 2 free slots: {n}"
        );
        assert!(n <= 60 - 18, "capped by max_dial_ratio: {n}");
        // Measured abandonment over the guard: progressive only.
        let mut inp = input(c, &est, &[], &talking);
        inp.measured = AbandonCounts {
            human: 100,
            abandoned: 3,
        };
        assert_eq!(p.calls_to_start(&inp), 2);
    }

    #[test]
    fn vicidial_places_every_2_5_s_and_adapts() {
        let est = Estimates::new(&Priors::default());
        let mut p = Pacer::new(PacingConfig {
            mode: PacingMode::VicidialAdaptive,
            ..PacingConfig::default()
        });
        let c = SlotCounts {
            slots: 10,
            talking: 0,
            dialing: 0,
            ..SlotCounts::default()
        };
        let mut inp = input(c, &est, &[], &[]);
        assert_eq!(p.calls_to_start(&inp), 10, "level 1.0 × 10 agents");
        inp.now += Duration::seconds(1);
        assert_eq!(p.calls_to_start(&inp), 0, "within 2.5 s of the last placement");
        // All agents idle for 15 s: m = 1 → level doubles.
        for _ in 2..=16 {
            inp.now += Duration::seconds(1);
            p.calls_to_start(&inp);
        }
        assert!(p.vicidial_level() > 1.9, "level {}", p.vicidial_level());
    }
}
