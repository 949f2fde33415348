//! Outcome and duration estimators fed from finished calls, with priors while data is thin.
//! Probabilities use exponentially forgotten counts (a recent-window average); durations are
//! lognormal fits of ln(seconds). Pure: callers pass observations in; nothing is sampled here.
//! The normal CDF reads a table built once, on first use, from `libm::erfc`.

use super::types::Outcome;

/// Standard normal CDF Φ(x) = ½·erfc(−x/√2).
///
/// Inside ±[`TABLE_EDGE`] it is read from a table built once from `libm::erfc` at nodes
/// 1/[`TABLE_STEPS_PER_UNIT`] apart, interpolated by the quintic Hermite polynomial through Φ, φ
/// and φ′ = −x·φ at both ends of the interval: the error is at most max|Φ⁽⁶⁾|·step⁶/46080, about
/// 1e-15, against some 200 instructions per `erfc` call. Above the table it is 1 (1 − Φ(8) ≈
/// 6e-16, below the table's own error); below it, and for NaN, `libm::erfc` itself, so tiny left
/// tails keep their relative precision.
#[inline]
pub fn normal_cdf(x: f64) -> f64 {
    if x >= TABLE_EDGE {
        return 1.0;
    }
    if x <= -TABLE_EDGE || x.is_nan() {
        return erfc_cdf(x);
    }
    let u = (x + TABLE_EDGE) * TABLE_STEPS_PER_UNIT;
    // The nearest node below u, by the 1.5 × 2⁵² rounding trick (an `as` cast saturates, at a cost):
    // rounding u − ½ to an integer gives ⌊u⌋, or ⌊u⌋ − 1 at an exact node (then t = 1, the
    // interval's other end, which the polynomial meets as well).
    let k = ((u - 0.5) + ROUND) - ROUND;
    let t = u - k;
    let Some(c) = cdf_table().get(((k + ROUND).to_bits() & 0x7ff) as usize) else {
        return erfc_cdf(x);
    };
    c[0] + t * (c[1] + t * (c[2] + t * (c[3] + t * (c[4] + t * c[5]))))
}

/// 1.5 × 2⁵²: adding it to a float of magnitude below 2⁵¹ rounds it to an integer, held in the
/// low mantissa bits of the sum.
const ROUND: f64 = 6_755_399_441_055_744.0;

/// Φ(x) straight from `libm::erfc` (the table's source).
fn erfc_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The table covers −TABLE_EDGE..TABLE_EDGE (Φ(−8) ≈ 6e-16).
const TABLE_EDGE: f64 = 8.0;
/// Table nodes per unit of x.
const TABLE_STEPS_PER_UNIT: f64 = 64.0;
/// Intervals of the table: 2 × 8 × 64, and one more so that x just below 8 finds one.
const TABLE_INTERVALS: usize = 1025;

/// Per interval, the coefficients of Φ(x₀ + t·step) in powers of t ∈ [0, 1].
fn cdf_table() -> &'static [[f64; 6]] {
    static TABLE: std::sync::LazyLock<Vec<[f64; 6]>> = std::sync::LazyLock::new(|| {
        let h = 1.0 / TABLE_STEPS_PER_UNIT;
        // Φ, step·φ and step²·φ′ at node k.
        let node = |k: usize| {
            let x = -TABLE_EDGE + k as f64 * h;
            let pdf = normal_pdf(x);
            (erfc_cdf(x), h * pdf, h * h * (-x * pdf))
        };
        (0..TABLE_INTERVALS)
            .map(|k| {
                let ((f0, d0, s0), (f1, d1, s1)) = (node(k), node(k + 1));
                let df = f1 - f0;
                [
                    f0,
                    d0,
                    s0 / 2.0,
                    10.0 * df - 6.0 * d0 - 4.0 * d1 - 1.5 * s0 + 0.5 * s1,
                    -15.0 * df + 8.0 * d0 + 7.0 * d1 + 1.5 * s0 - s1,
                    6.0 * df - 3.0 * d0 - 3.0 * d1 - 0.5 * s0 + 0.5 * s1,
                ]
            })
            .collect()
    });
    &TABLE
}

/// Standard normal density φ(x).
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// A lognormal distribution of a duration in seconds: ln(T) ~ N(mu, sigma²).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogNormalFit {
    /// Mean of ln(seconds).
    pub mu: f64,
    /// Standard deviation of ln(seconds), > 0.
    pub sigma: f64,
}

impl LogNormalFit {
    /// The lognormal with the given mean (seconds) and sigma: mu = ln(mean) − sigma²/2.
    pub fn from_mean(mean_s: f64, sigma: f64) -> LogNormalFit {
        let sigma = sigma.max(1e-3);
        LogNormalFit {
            mu: mean_s.max(1e-3).ln() - sigma * sigma / 2.0,
            sigma,
        }
    }

    /// Mean in seconds: exp(mu + sigma²/2).
    pub fn mean(&self) -> f64 {
        (self.mu + self.sigma * self.sigma / 2.0).exp()
    }

    /// Median in seconds: exp(mu).
    pub fn median(&self) -> f64 {
        self.mu.exp()
    }

    /// P(T ≤ t), t in seconds.
    #[inline]
    pub fn cdf(&self, t: f64) -> f64 {
        if t <= 0.0 { 0.0 } else { self.cdf_ln(t.ln()) }
    }

    /// P(T ≤ t) given ln(t): the same value as [`LogNormalFit::cdf`], for callers that evaluate
    /// several fits at one instant and take the logarithm once.
    #[inline]
    pub fn cdf_ln(&self, ln_t: f64) -> f64 {
        normal_cdf((ln_t - self.mu) / self.sigma)
    }

    /// P(T ≤ elapsed + h | T > elapsed): the chance an activity that has lasted `elapsed` seconds
    /// ends within the next `h` seconds.
    pub fn ends_within(&self, elapsed: f64, h: f64) -> f64 {
        let survive = 1.0 - self.cdf(elapsed);
        if survive <= 1e-12 {
            1.0
        } else {
            ((self.cdf(elapsed + h) - self.cdf(elapsed)) / survive).clamp(0.0, 1.0)
        }
    }
}

/// Running lognormal fit with exponential forgetting, starting from a prior worth `prior_weight` observations.
#[derive(Clone, Debug, PartialEq)]
pub struct DurationEstimator {
    weight: f64,
    mean_ln: f64,
    m2_ln: f64,
    forget: f64,
}

impl DurationEstimator {
    /// Starts at `prior` as if `prior_weight` observations had been seen; each new observation
    /// multiplies older weight by `1 − 1/window`.
    pub fn new(prior: LogNormalFit, prior_weight: f64, window: f64) -> DurationEstimator {
        DurationEstimator {
            weight: prior_weight,
            mean_ln: prior.mu,
            m2_ln: prior.sigma * prior.sigma * prior_weight,
            forget: 1.0 - 1.0 / window.max(1.0),
        }
    }

    /// Adds one observed duration (seconds > 0; others are ignored).
    pub fn observe(&mut self, secs: f64) {
        if !(secs > 0.0 && secs.is_finite()) {
            return;
        }
        let x = secs.ln();
        self.weight *= self.forget;
        self.m2_ln *= self.forget;
        self.weight += 1.0;
        let delta = x - self.mean_ln;
        self.mean_ln += delta / self.weight;
        self.m2_ln += delta * (x - self.mean_ln);
    }

    /// The current fit.
    pub fn fit(&self) -> LogNormalFit {
        let var = (self.m2_ln / self.weight.max(1e-9)).max(1e-4);
        LogNormalFit {
            mu: self.mean_ln,
            sigma: var.sqrt(),
        }
    }
}

/// Outcome classes the pacer distinguishes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutcomeProbs {
    /// P(a person answers).
    pub human: f64,
    /// P(a machine answers).
    pub machine: f64,
    /// P(rings out unanswered).
    pub no_answer: f64,
    /// P(busy or failed: ends early without answer).
    pub early: f64,
}

/// Exponentially forgotten outcome counts with a prior.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeEstimator {
    counts: [f64; 4],
    prior: [f64; 4],
    prior_weight: f64,
    forget: f64,
    observed: u64,
}

impl OutcomeEstimator {
    /// Starts from `prior` (probabilities summing to 1) worth `prior_weight` calls; older
    /// observations fade by `1 − 1/window` per call.
    pub fn new(prior: OutcomeProbs, prior_weight: f64, window: f64) -> OutcomeEstimator {
        OutcomeEstimator {
            counts: [0.0; 4],
            prior: [prior.human, prior.machine, prior.no_answer, prior.early],
            prior_weight,
            forget: 1.0 - 1.0 / window.max(1.0),
            observed: 0,
        }
    }

    /// Records how a call ended. `Unknown` outcomes carry no information and are ignored.
    /// AMD-classified answers count by what was detected.
    pub fn observe(&mut self, outcome: Outcome) {
        let class = match outcome {
            Outcome::Human | Outcome::CallbackRequested | Outcome::Abandoned => 0,
            Outcome::VoicemailLeft | Outcome::Machine => 1,
            Outcome::NoAnswer => 2,
            Outcome::Busy | Outcome::Failed => 3,
            Outcome::Unknown => return,
        };
        for c in &mut self.counts {
            *c *= self.forget;
        }
        self.counts[class] += 1.0;
        self.observed += 1;
    }

    /// Calls observed so far.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// Current estimate: (counts + prior·weight) / (total + weight).
    pub fn probs(&self) -> OutcomeProbs {
        let total: f64 = self.counts.iter().sum::<f64>() + self.prior_weight;
        let p = |i: usize| (self.counts[i] + self.prior[i] * self.prior_weight) / total;
        OutcomeProbs {
            human: p(0),
            machine: p(1),
            no_answer: p(2),
            early: p(3),
        }
    }
}

/// Everything the predictive pacer needs to know about the call population.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimates {
    /// Outcome probabilities.
    pub outcomes: OutcomeEstimator,
    /// Time from dial to a person answering (seconds).
    pub human_answer: DurationEstimator,
    /// Time from dial to a machine answering (seconds).
    pub machine_answer: DurationEstimator,
    /// Time from dial to busy/failure (seconds).
    pub early_end: DurationEstimator,
    /// Time a person holds an agent slot (seconds).
    pub talk: DurationEstimator,
}

/// Prior beliefs, used until real outcomes outweigh them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Priors {
    /// Outcome probabilities.
    pub outcomes: OutcomeProbs,
    /// Mean time for a person to answer, seconds.
    pub human_answer_mean_s: f64,
    /// Mean time for a machine to answer, seconds.
    pub machine_answer_mean_s: f64,
    /// Mean time to busy/failure, seconds.
    pub early_end_mean_s: f64,
    /// Mean talk time, seconds.
    pub talk_mean_s: f64,
}

impl Default for Priors {
    fn default() -> Priors {
        Priors {
            outcomes: OutcomeProbs {
                human: 0.2,
                machine: 0.2,
                no_answer: 0.45,
                early: 0.15,
            },
            human_answer_mean_s: 8.0,
            machine_answer_mean_s: 10.0,
            early_end_mean_s: 3.0,
            talk_mean_s: 120.0,
        }
    }
}

/// Weight of the priors, in calls.
const PRIOR_WEIGHT: f64 = 30.0;
/// Effective window of the estimators, in calls.
const WINDOW: f64 = 1000.0;

impl Estimates {
    /// Estimators starting from `p`.
    pub fn new(p: &Priors) -> Estimates {
        let d = |mean: f64, sigma: f64| {
            DurationEstimator::new(LogNormalFit::from_mean(mean, sigma), PRIOR_WEIGHT / 3.0, WINDOW)
        };
        Estimates {
            outcomes: OutcomeEstimator::new(p.outcomes, PRIOR_WEIGHT, WINDOW),
            human_answer: d(p.human_answer_mean_s, 0.5),
            machine_answer: d(p.machine_answer_mean_s, 0.5),
            early_end: d(p.early_end_mean_s, 0.5),
            talk: d(p.talk_mean_s, 0.7),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_reference_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-12);
        assert!((normal_cdf(1.96) - 0.975_002).abs() < 1e-5);
        assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-5);
    }

    #[test]
    fn normal_cdf_table_matches_erfc() {
        // Nodes, midpoints and odd points of every interval, and both sides of the edges.
        let mut worst: f64 = 0.0;
        for i in 0..=(16 * 64 * 7) {
            let x = -8.0 + f64::from(i) / (64.0 * 7.0);
            worst = worst.max((normal_cdf(x) - erfc_cdf(x)).abs());
        }
        assert!(worst < 5e-15, "worst absolute error {worst:e}");
        for x in [-8.0, -7.999_999, -7.0 - 1e-13, 7.999_999, 8.0 - 1e-15, 8.0, -30.0, 30.0] {
            assert!((normal_cdf(x) - erfc_cdf(x)).abs() < 5e-15, "{x}");
        }
        assert!(normal_cdf(f64::NAN).is_nan());
        // Monotone across an interval boundary.
        let b = -1.0 + 1.0 / 64.0;
        assert!(normal_cdf(b - 1e-12) <= normal_cdf(b) && normal_cdf(b) <= normal_cdf(b + 1e-12));
    }

    #[test]
    fn lognormal_fit_and_conditioning() {
        let f = LogNormalFit::from_mean(180.0, 0.6);
        assert!((f.mean() - 180.0).abs() < 1e-6);
        assert!((f.cdf(f.median()) - 0.5).abs() < 1e-9);
        // A call that already lasted 10 minutes is less likely to end in the next 10 s than a fresh one
        // of median age: lognormal hazard falls for long calls.
        assert!(f.ends_within(600.0, 10.0) < f.ends_within(f.median(), 10.0));
        assert_eq!(f.ends_within(1e9, 1.0), 1.0);
    }

    #[test]
    fn estimators_move_from_prior_to_data() {
        let mut e = OutcomeEstimator::new(
            OutcomeProbs {
                human: 0.5,
                machine: 0.2,
                no_answer: 0.2,
                early: 0.1,
            },
            30.0,
            1000.0,
        );
        assert!((e.probs().human - 0.5).abs() < 1e-12);
        for i in 0..3000 {
            e.observe(if i % 10 == 0 { Outcome::Human } else { Outcome::NoAnswer });
        }
        let p = e.probs();
        assert!((p.human - 0.1).abs() < 0.02, "{p:?}");
        assert!((p.human + p.machine + p.no_answer + p.early - 1.0).abs() < 1e-9);

        let mut d = DurationEstimator::new(LogNormalFit::from_mean(120.0, 0.7), 10.0, 1000.0);
        for i in 0..5000 {
            d.observe(if i % 2 == 0 { 60.0 } else { 240.0 });
        }
        let fit = d.fit();
        assert!((fit.median() - 120.0).abs() < 5.0, "{fit:?}");
        assert!((fit.sigma - 2f64.ln()).abs() < 0.05, "{fit:?}");
    }
}
