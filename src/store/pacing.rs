//! Pacing figures for operators: the runner's published snapshot (dial ratio, estimated outcome
//! probabilities), measured abandonment computed from the attempts themselves, so it survives
//! restarts (no-slot abandons and calls abandoned for the agent's silence, 16 CFR
//! 310.4(b)(4)(i)), and the distribution of answer → first agent speech.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a runner publishes about its pacing.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PacingSnapshot {
    /// Pacing mode.
    pub mode: String,
    /// (dialing + talking) / slots at the snapshot.
    pub dial_ratio: f64,
    /// Estimated P(person answers), 0..1.
    pub p_human: f64,
    /// Estimated P(machine answers), 0..1.
    pub p_machine: f64,
    /// Estimated P(no answer), 0..1.
    pub p_no_answer: f64,
    /// Estimated P(busy or failed), 0..1.
    pub p_early: f64,
    /// Calls the estimators have seen.
    pub calls_observed: u64,
    /// Abandonment policy in force: `us_tsr`, `uk_ofcom` or `both`.
    pub abandon_policy: String,
    /// Abandonment cap, 0..1.
    pub abandon_cap: f64,
    /// AMD false-positive rate Ofcom's measure adds as abandoned calls, 0..1.
    pub amd_false_positive_rate: f64,
}

/// Human-answered and abandoned attempts over a window.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct MeasuredAbandonment {
    /// Attempts answered by a person (connected or abandoned).
    pub human: u64,
    /// Of those, abandoned.
    pub abandoned: u64,
}

impl Store {
    /// Stores the latest pacing snapshot of `campaign` at `now`.
    pub async fn record_pacing(
        &self,
        campaign: &str,
        s: &PacingSnapshot,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_engine!(self, record_pacing(campaign, s, now))
    }

    /// The latest pacing snapshot of `campaign`, if a runner has published one.
    pub async fn pacing_snapshot(&self, campaign: &str) -> Result<Option<PacingSnapshot>, StoreError> {
        on_engine!(self, pacing_snapshot(campaign))
    }

    /// Human-answered and abandoned attempts of `campaign` answered at or after `since` (UTC).
    pub async fn measured_abandonment(
        &self,
        campaign: &str,
        since: DateTime<Utc>,
    ) -> Result<MeasuredAbandonment, StoreError> {
        on_engine!(self, measured_abandonment(campaign, since))
    }
}

/// Answer → first agent speech over connected calls, for `dialerd status`.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SpeechLatency {
    /// Connected calls measured (the agent spoke, or the call ended without its speech).
    pub calls: u64,
    /// Median latency of the calls whose agent spoke, milliseconds.
    pub p50_ms: Option<i64>,
    /// 90th percentile, milliseconds.
    pub p90_ms: Option<i64>,
    /// 99th percentile, milliseconds.
    pub p99_ms: Option<i64>,
    /// Calls whose agent first spoke more than 2 s after the answer.
    pub over_2s: u64,
    /// Calls that ended with no agent speech.
    pub silent: u64,
    /// Calls counted abandoned for the agent's silence (16 CFR 310.4(b)(4)(i)).
    pub abandoned: u64,
}

/// The nearest-rank `q` quantile (0..1) of sorted `v`.
fn quantile(v: &[i64], q: f64) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    let rank = (q * v.len() as f64).ceil().max(1.0) as usize;
    v.get(rank.min(v.len()) - 1).copied()
}

impl Store {
    /// Answer → first agent speech of `campaign`'s connected attempts answered at or after
    /// `since` (UTC): p50/p90/p99 (nearest rank) and the calls over 2 s, silent or abandoned.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn speech_latency(&self, campaign: &str, since: DateTime<Utc>) -> Result<SpeechLatency, StoreError> {
        on_engine!(self, speech_latency(campaign, since))
    }
}

/// [`SpeechLatency`] of the measured calls, each `(latency_ms, abandoned for silence)` with
/// `None` for a call whose agent never spoke. Pure; the order of the calls does not matter.
pub(super) fn speech_latency_of(calls: impl IntoIterator<Item = (Option<i64>, bool)>) -> SpeechLatency {
    let mut out = SpeechLatency::default();
    let mut v = Vec::new();
    for (latency, abandoned) in calls {
        out.calls += 1;
        match latency {
            Some(ms) => {
                if ms > 2000 {
                    out.over_2s += 1;
                }
                v.push(ms);
            }
            None => out.silent += 1,
        }
        if abandoned {
            out.abandoned += 1;
        }
    }
    v.sort_unstable();
    out.p50_ms = quantile(&v, 0.50);
    out.p90_ms = quantile(&v, 0.90);
    out.p99_ms = quantile(&v, 0.99);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(super::quantile(&v, 0.5), Some(50));
        assert_eq!(super::quantile(&v, 0.9), Some(90));
        assert_eq!(super::quantile(&v, 0.99), Some(99));
        assert_eq!(super::quantile(&[7], 0.99), Some(7));
        assert_eq!(super::quantile(&[], 0.5), None);
    }
}
