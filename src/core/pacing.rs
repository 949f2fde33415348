//! Pacing: how many new calls to start now. Modes: progressive, ratio, predictive (an Erlang-style
//! model of answers and slot releases), and vicidial-adaptive (VICIdial's `ADAPT_HARD_LIMIT`
//! method, kept as a baseline for comparison). Every mode is capped by `max_dial_ratio`; the
//! caller applies the CPS budget and the calling windows.

use super::abandon::AbandonCounts;
use super::estimate::{Estimates, normal_cdf, normal_pdf};
use chrono::{DateTime, Duration, Utc};
use vicidial::Vicidial;

mod vicidial;

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
    /// The most new calls the caller will take (`u32::MAX`: no limit). Predictive stops its
    /// search there, so it returns at most `max(accept, progressive)`; other modes ignore it.
    pub accept: u32,
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
                // Progressive when neither the dial-ratio cap nor the caller leaves room above it.
                if cap.min(inp.accept) <= progressive {
                    progressive
                } else {
                    self.predictive(inp, cap).max(progressive)
                }
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
        let free = f64::from(inp.counts.free());
        let mut eventual_humans = 0.0;
        let mut moments = [(0.0f64, 0.0f64); HORIZONS.len()];
        let mut new_call = [0.0f64; HORIZONS.len()];
        let horizons = HORIZONS.map(|k| (k * human.median()).min(ring));
        for &e in inp.dialing_elapsed {
            // Per dialing call: P(still unresolved at e) and P(a person eventually answers |
            // unresolved), with ln(e) taken once for the three fits read at e.
            let (g0, gm, ge) = if e <= 0.0 {
                (0.0, 0.0, 0.0)
            } else {
                let ln_e = e.ln();
                (human.cdf_ln(ln_e), machine.cdf_ln(ln_e), early.cdf_ln(ln_e))
            };
            let s = (p.human * (1.0 - g0)
                + p.machine * (1.0 - gm)
                + if e < ring { p.no_answer } else { 0.0 }
                + p.early * (1.0 - ge))
                .max(1e-9);
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
        let model = Excess {
            moments,
            new_call,
            eventual_humans,
            p_human: p.human,
            aim,
        };
        model.largest_fit(cap.min(inp.accept))
    }
}

/// The predictive model at one decision: per horizon, the mean and variance of (answered persons
/// − slots released − free slots) among the calls in flight, and P(a new call's person answers
/// within the horizon).
struct Excess {
    moments: [(f64, f64); HORIZONS.len()],
    new_call: [f64; HORIZONS.len()],
    eventual_humans: f64,
    p_human: f64,
    aim: f64,
}

impl Excess {
    /// The most abandoned answers `n` new calls may cause, as expected: the aim × the persons
    /// expected to answer, at least one.
    fn allowed(&self, n: f64) -> f64 {
        self.aim * (self.eventual_humans + n * self.p_human).max(1.0)
    }

    /// `n` new calls keep the expected excess at every horizon within [`Excess::allowed`].
    fn fits(&self, n: f64) -> bool {
        let allowed = self.allowed(n);
        self.moments
            .iter()
            .zip(self.new_call)
            .all(|(&(mu, var), a)| expected_excess(mu + n * a, var + n * a * (1.0 - a)) <= allowed)
    }

    /// Every `n` in `lo..=hi` fits, proved from one bound at `hi`: the expected excess grows with
    /// the mean and the variance, hence with `n`, and the allowance grows with `n` too.
    fn fits_all(&self, lo: u32, hi: u32) -> bool {
        let (lo, hi) = (f64::from(lo), f64::from(hi));
        let allowed = self.allowed(lo);
        self.moments
            .iter()
            .zip(self.new_call)
            .all(|(&(mu, var), a)| excess_bound(mu + hi * a, var + hi * a * (1.0 - a)) <= allowed)
    }

    /// The largest `n ≤ limit` such that every `1..=n` fits: the same answer as trying
    /// `n = 1, 2, …` until one does not fit, but blocks of `n` that [`Excess::fits_all`] proves
    /// are passed at once (doubling while they pass, halving when not), so the exact test runs
    /// near the answer only.
    fn largest_fit(&self, limit: u32) -> u32 {
        let mut n = 0u32;
        let mut step = 1u32;
        while n < limit {
            let hi = n.saturating_add(step).min(limit);
            if self.fits_all(n + 1, hi) {
                n = hi;
                step = step.saturating_mul(2);
            } else if step > 1 {
                step /= 2;
            } else if self.fits(f64::from(n + 1)) {
                n += 1;
            } else {
                break;
            }
        }
        n
    }
}

/// An upper bound of [`expected_excess`]`(mu, var)` as computed. With σ = √var and z = mu/σ,
/// E[(X)+] = σ·(φ(z) + z·Φ(z)) ≤ σ·(max(z, 0) + φ(z)/(1 + z²)), from the Mills-ratio bound
/// Q(t) ≥ t·φ(t)/(1 + t²) for t ≥ 0 (Gordon 1941); plus a margin far above the rounding and
/// table error (≈ 1e-14·(σ + |mu|)) of the computed value.
fn excess_bound(mu: f64, var: f64) -> f64 {
    if var <= 1e-12 {
        return mu.max(0.0);
    }
    let sigma = var.sqrt();
    let z = mu / sigma;
    let bound = sigma * (z.max(0.0) + normal_pdf(z) / (1.0 + z * z));
    bound * (1.0 + 1e-9) + 1e-12 * (sigma + mu.abs())
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
            accept: u32::MAX,
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

    proptest::proptest! {
        /// The galloping search gives what trying n = 1, 2, … one by one gives, on any model.
        #[test]
        fn largest_fit_is_the_one_by_one_search(
            mus in proptest::array::uniform4(-300.0f64..20.0),
            vars in proptest::array::uniform4(0.0f64..80.0),
            new_call in proptest::array::uniform4(0.0f64..0.4),
            eventual_humans in 0.0f64..40.0,
            p_human in 0.0f64..0.5,
            aim in 0.0f64..0.05,
            limit in 0u32..400,
        ) {
            let model = Excess {
                moments: [(mus[0], vars[0]), (mus[1], vars[1]), (mus[2], vars[2]), (mus[3], vars[3])],
                new_call,
                eventual_humans,
                p_human,
                aim,
            };
            let mut n = 0;
            while n < limit && model.fits(f64::from(n + 1)) {
                n += 1;
            }
            proptest::prop_assert_eq!(model.largest_fit(limit), n);
        }

        /// `accept` only cuts the search: the answer is the unlimited one held to `max(accept, progressive)`.
        #[test]
        fn accept_holds_predictive_to_the_callers_limit(
            talking in 0u32..60,
            dialing in proptest::collection::vec(0.0f64..30.0, 0..120),
            talk_ages in proptest::collection::vec(0.0f64..600.0, 60),
            accept in 0u32..200,
        ) {
            let est = Estimates::new(&Priors::default());
            let c = SlotCounts { slots: 60, talking, dialing: dialing.len() as u32, ..SlotCounts::default() };
            let talking = &talk_ages[..talking as usize];
            let cfg = PacingConfig { mode: PacingMode::Predictive, ..PacingConfig::default() };
            let full = Pacer::new(cfg).calls_to_start(&input(c, &est, &dialing, talking));
            let mut inp = input(c, &est, &dialing, talking);
            inp.accept = accept;
            let progressive = c.free().saturating_sub(c.dialing);
            proptest::prop_assert_eq!(Pacer::new(cfg).calls_to_start(&inp), full.min(accept.max(progressive)));
        }
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
