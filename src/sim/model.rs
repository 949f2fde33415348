//! The statistical call model: what happens when a number is dialled. Outcome probabilities,
//! lognormal answer and talk times, fixed busy/failure/voicemail times, and a callback rate,
//! all from `[trunk.sim]`; the AMD verdict either with the answer or after it (`amd = "async"`). Durations are in real call time (seconds); a driver applies any
//! time scale itself.

use crate::campaign::file::SimFile;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, LogNormal};
use std::time::Duration;

/// What the far end does, before AMD and agent slots come into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampledOutcome {
    /// A person answers after `answer_after`.
    Human,
    /// A machine answers after `answer_after`.
    Machine,
    /// Nobody answers (the call rings out at the ring timeout).
    NoAnswer,
    /// Busy signal after `answer_after`.
    Busy,
    /// Network failure after `answer_after`.
    Failed,
}

/// One sampled call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampledCall {
    /// What the far end does.
    pub outcome: SampledOutcome,
    /// Time from dial to answer, busy or failure (unused for `NoAnswer`).
    pub answer_after: Duration,
    /// Talk time if a person is connected to an agent.
    pub talk: Duration,
    /// The person asks for a callback during the conversation.
    pub wants_callback: bool,
    /// AMD gets this call wrong: a person taken for a machine, or a machine passed to an agent.
    pub amd_wrong: bool,
    /// With asynchronous AMD, how long after the answer the verdict comes (zero otherwise).
    pub amd_delay: Duration,
}

/// The call model, built from `[trunk.sim]`.
#[derive(Clone, Debug)]
pub struct CallModel {
    cumulative: [f64; 4],
    human_answer: LogNormal<f64>,
    machine_answer: LogNormal<f64>,
    talk: LogNormal<f64>,
    busy_time: Duration,
    failed_time: Duration,
    /// Length of the voicemail message as played.
    pub voicemail_length: Duration,
    callback_rate: f64,
    /// Time AMD takes to classify an answer.
    pub amd_time: Duration,
    /// The verdict comes after the answer (`[trunk.sim] amd = "async"`).
    pub amd_async: bool,
    amd_delay: LogNormal<f64>,
    amd_false_positive: f64,
    amd_false_negative: f64,
    /// How long a machine passed to an agent holds the slot.
    pub amd_false_negative_hold: Duration,
    /// Length of the safe-harbor message as played.
    pub safe_harbor_length: Duration,
    /// Connect → the agent's first words (real time, never scaled: the 2 s rule is wall-clock).
    pub agent_speech_delay: Duration,
}

/// Error for a model whose parameters no distribution accepts (validation should prevent it).
#[derive(Debug, thiserror::Error)]
#[error("invalid call model: {0}")]
pub struct ModelError(String);

/// A lognormal with the given mean (seconds) and sigma: mu = ln(mean) − sigma²/2.
fn lognormal(mean: Duration, sigma: f64) -> Result<LogNormal<f64>, ModelError> {
    let mean = mean.as_secs_f64().max(1e-3);
    LogNormal::new(mean.ln() - sigma * sigma / 2.0, sigma).map_err(|e| ModelError(e.to_string()))
}

impl CallModel {
    /// Builds the model from a validated `[trunk.sim]`.
    ///
    /// Errors: [`ModelError`] when a sigma is negative or not finite.
    pub fn new(s: &SimFile) -> Result<CallModel, ModelError> {
        let p = [s.p_human, s.p_machine, s.p_no_answer, s.p_busy];
        let mut cumulative = [0.0; 4];
        let mut acc = 0.0;
        for (c, p) in cumulative.iter_mut().zip(p) {
            acc += p;
            *c = acc;
        }
        Ok(CallModel {
            cumulative,
            human_answer: lognormal(s.human_answer_mean, s.answer_sigma)?,
            machine_answer: lognormal(s.machine_answer_mean, s.answer_sigma)?,
            talk: lognormal(s.talk_mean, s.talk_sigma)?,
            busy_time: s.busy_time,
            failed_time: s.failed_time,
            voicemail_length: s.voicemail_length,
            callback_rate: s.callback_rate,
            amd_time: s.amd_time,
            amd_async: s.amd == crate::campaign::file::SimAmdFile::Async,
            amd_delay: lognormal(s.amd_time, s.amd_sigma)?,
            amd_false_positive: s.amd_false_positive,
            amd_false_negative: s.amd_false_negative,
            amd_false_negative_hold: s.amd_false_negative_hold,
            safe_harbor_length: s.safe_harbor_length,
            agent_speech_delay: s.agent_speech_delay,
        })
    }

    /// Whether the agent's first words come more than 2 s after the connect, which abandons the
    /// call (FTC TSR 16 CFR 310.4(b)(4)(i)).
    pub fn agent_speech_late(&self) -> bool {
        chrono::TimeDelta::from_std(self.agent_speech_delay).unwrap_or(chrono::TimeDelta::MAX)
            > crate::core::call::AGENT_SPEECH_DEADLINE
    }

    /// Draws one call.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> SampledCall {
        let u: f64 = rng.random();
        let outcome = match self.cumulative.iter().position(|&c| u < c) {
            Some(0) => SampledOutcome::Human,
            Some(1) => SampledOutcome::Machine,
            Some(2) => SampledOutcome::NoAnswer,
            Some(3) => SampledOutcome::Busy,
            _ => SampledOutcome::Failed,
        };
        let secs = |x: f64| Duration::from_secs_f64(x.clamp(0.0, 86_400.0));
        let answer_after = match outcome {
            SampledOutcome::Human => secs(self.human_answer.sample(rng)),
            SampledOutcome::Machine => secs(self.machine_answer.sample(rng)),
            SampledOutcome::NoAnswer => Duration::MAX,
            SampledOutcome::Busy => self.busy_time,
            SampledOutcome::Failed => self.failed_time,
        };
        let talk = secs(self.talk.sample(rng));
        let wants_callback = rng.random::<f64>() < self.callback_rate;
        let amd_draw: f64 = rng.random();
        let amd_wrong = match outcome {
            SampledOutcome::Human => amd_draw < self.amd_false_positive,
            SampledOutcome::Machine => amd_draw < self.amd_false_negative,
            _ => false,
        };
        // Drawn only in async mode, so the synchronous model's draws are unchanged.
        let amd_delay = if self.amd_async {
            secs(self.amd_delay.sample(rng))
        } else {
            Duration::ZERO
        };
        SampledCall {
            outcome,
            answer_after,
            talk,
            wants_callback,
            amd_wrong,
            amd_delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn frequencies_and_means_follow_the_file() {
        let s = SimFile::default();
        let m = CallModel::new(&s).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let n = 200_000;
        let (mut human, mut talk) = (0u32, 0.0);
        for _ in 0..n {
            let c = m.sample(&mut rng);
            if c.outcome == SampledOutcome::Human {
                human += 1;
            }
            talk += c.talk.as_secs_f64();
        }
        let p = human as f64 / n as f64;
        assert!((p - s.p_human).abs() < 0.005, "P(human) {p}");
        let mean = talk / n as f64;
        assert!(
            (mean / s.talk_mean.as_secs_f64() - 1.0).abs() < 0.02,
            "mean talk {mean}"
        );
    }
}
