//! Pacing figures for operators: the runner's published snapshot (dial ratio, estimated outcome
//! probabilities), measured abandonment computed from the attempts themselves, so it survives
//! restarts (no-slot abandons and calls abandoned for the agent's silence, 16 CFR
//! 310.4(b)(4)(i)), and the distribution of answer → first agent speech.

use super::{Store, StoreError, to_ms};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

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
        sqlx::query(
            "INSERT INTO pacing_snapshots (campaign_id, updated_at, mode, dial_ratio, p_human, p_machine, p_no_answer, p_early,
               calls_observed, abandon_policy, abandon_cap, amd_false_positive_rate)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(campaign_id) DO UPDATE SET updated_at = excluded.updated_at, mode = excluded.mode,
               dial_ratio = excluded.dial_ratio, p_human = excluded.p_human, p_machine = excluded.p_machine,
               p_no_answer = excluded.p_no_answer, p_early = excluded.p_early, calls_observed = excluded.calls_observed,
               abandon_policy = excluded.abandon_policy, abandon_cap = excluded.abandon_cap,
               amd_false_positive_rate = excluded.amd_false_positive_rate",
        )
        .bind(campaign)
        .bind(to_ms(now))
        .bind(&s.mode)
        .bind(s.dial_ratio)
        .bind(s.p_human)
        .bind(s.p_machine)
        .bind(s.p_no_answer)
        .bind(s.p_early)
        .bind(i64::try_from(s.calls_observed).unwrap_or(i64::MAX))
        .bind(&s.abandon_policy)
        .bind(s.abandon_cap)
        .bind(s.amd_false_positive_rate)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The latest pacing snapshot of `campaign`, if a runner has published one.
    pub async fn pacing_snapshot(&self, campaign: &str) -> Result<Option<PacingSnapshot>, StoreError> {
        let row = sqlx::query("SELECT * FROM pacing_snapshots WHERE campaign_id = ?")
            .bind(campaign)
            .fetch_optional(self.reader())
            .await?;
        row.map(|r| {
            Ok(PacingSnapshot {
                mode: r.try_get("mode")?,
                dial_ratio: r.try_get("dial_ratio")?,
                p_human: r.try_get("p_human")?,
                p_machine: r.try_get("p_machine")?,
                p_no_answer: r.try_get("p_no_answer")?,
                p_early: r.try_get("p_early")?,
                calls_observed: r.try_get::<i64, _>("calls_observed")?.max(0) as u64,
                abandon_policy: r.try_get("abandon_policy")?,
                abandon_cap: r.try_get("abandon_cap")?,
                amd_false_positive_rate: r.try_get("amd_false_positive_rate")?,
            })
        })
        .transpose()
    }

    /// Human-answered and abandoned attempts of `campaign` answered at or after `since` (UTC).
    pub async fn measured_abandonment(
        &self,
        campaign: &str,
        since: DateTime<Utc>,
    ) -> Result<MeasuredAbandonment, StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS human, COALESCE(SUM(outcome = 'abandoned' OR speech_abandoned = 1), 0) AS abandoned FROM attempts
             WHERE campaign_id = ? AND answered_at >= ? AND outcome IN ('human', 'callback_requested', 'abandoned')",
        )
        .bind(campaign)
        .bind(to_ms(since))
        .fetch_one(self.reader())
        .await?;
        Ok(MeasuredAbandonment {
            human: r.try_get::<i64, _>("human")?.max(0) as u64,
            abandoned: r.try_get::<i64, _>("abandoned")?.max(0) as u64,
        })
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
        let rows = sqlx::query(
            "SELECT speech_latency_ms, speech_abandoned FROM attempts
             WHERE campaign_id = ? AND answered_at >= ? AND (speech_latency_ms IS NOT NULL OR speech_abandoned = 1)
             ORDER BY speech_latency_ms",
        )
        .bind(campaign)
        .bind(to_ms(since))
        .fetch_all(self.reader())
        .await?;
        let mut out = SpeechLatency::default();
        let mut v = Vec::with_capacity(rows.len());
        for r in &rows {
            out.calls += 1;
            match r.try_get::<Option<i64>, _>("speech_latency_ms")? {
                Some(ms) => {
                    if ms > 2000 {
                        out.over_2s += 1;
                    }
                    v.push(ms);
                }
                None => out.silent += 1,
            }
            if r.try_get::<i64, _>("speech_abandoned")? != 0 {
                out.abandoned += 1;
            }
        }
        out.p50_ms = quantile(&v, 0.50);
        out.p90_ms = quantile(&v, 0.90);
        out.p99_ms = quantile(&v, 0.99);
        Ok(out)
    }
}

/// Records a connected attempt's answer → first agent speech inside `tx` (see [`super::CallWrite::Speech`]).
pub(super) async fn speech_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    key: crate::core::AttemptKey,
    latency_ms: Option<i64>,
    silence_abandoned: bool,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE attempts SET speech_latency_ms = ?, speech_abandoned = ? WHERE contact_id = ? AND attempt = ?")
        .bind(latency_ms)
        .bind(i64::from(silence_abandoned))
        .bind(key.contact)
        .bind(key.attempt)
        .execute(&mut **tx)
        .await?;
    Ok(())
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
