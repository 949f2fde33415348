//! Pacing figures for operators: the runner's published snapshot (dial ratio, estimated outcome
//! probabilities) and measured abandonment computed from the attempts themselves, so it survives
//! restarts.

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
            .fetch_optional(self.pool())
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
            "SELECT COUNT(*) AS human, COALESCE(SUM(outcome = 'abandoned'), 0) AS abandoned FROM attempts
             WHERE campaign_id = ? AND answered_at >= ? AND outcome IN ('human', 'callback_requested', 'abandoned')",
        )
        .bind(campaign)
        .bind(to_ms(since))
        .fetch_one(self.pool())
        .await?;
        Ok(MeasuredAbandonment {
            human: r.try_get::<i64, _>("human")?.max(0) as u64,
            abandoned: r.try_get::<i64, _>("abandoned")?.max(0) as u64,
        })
    }
}
