//! PostgreSQL: pacing snapshots, measured abandonment and answer → first agent speech (see [`crate::store`]'s `pacing`).
//!
//! A snapshot is one row per campaign written with `INSERT … ON CONFLICT DO UPDATE`, atomic when
//! the runners of several nodes publish at once (the last commit wins, as on SQLite). The reads
//! are single statements.

use super::PgEngine;
use crate::store::pacing::{MeasuredAbandonment, PacingSnapshot, SpeechLatency, speech_latency_of};
use crate::store::{StoreError, to_ms};
use chrono::{DateTime, Utc};
use sqlx::Row;

impl PgEngine {
    pub(in crate::store) async fn record_pacing(
        &self,
        campaign: &str,
        s: &PacingSnapshot,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pacing_snapshots (campaign_id, updated_at, mode, dial_ratio, p_human, p_machine, p_no_answer, p_early,
               calls_observed, abandon_policy, abandon_cap, amd_false_positive_rate)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (campaign_id) DO UPDATE SET updated_at = EXCLUDED.updated_at, mode = EXCLUDED.mode,
               dial_ratio = EXCLUDED.dial_ratio, p_human = EXCLUDED.p_human, p_machine = EXCLUDED.p_machine,
               p_no_answer = EXCLUDED.p_no_answer, p_early = EXCLUDED.p_early, calls_observed = EXCLUDED.calls_observed,
               abandon_policy = EXCLUDED.abandon_policy, abandon_cap = EXCLUDED.abandon_cap,
               amd_false_positive_rate = EXCLUDED.amd_false_positive_rate",
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

    pub(in crate::store) async fn pacing_snapshot(&self, campaign: &str) -> Result<Option<PacingSnapshot>, StoreError> {
        let row = sqlx::query(
            "SELECT mode, dial_ratio, p_human, p_machine, p_no_answer, p_early, calls_observed, abandon_policy,
               abandon_cap, amd_false_positive_rate
             FROM pacing_snapshots WHERE campaign_id = $1",
        )
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

    pub(in crate::store) async fn measured_abandonment(
        &self,
        campaign: &str,
        since: DateTime<Utc>,
    ) -> Result<MeasuredAbandonment, StoreError> {
        // SQLite sums the boolean itself (0/1); here it is a CASE, and SUM(BIGINT) is NUMERIC,
        // cast back to BIGINT.
        let r = sqlx::query(
            "SELECT COUNT(*) AS human,
               COALESCE(SUM(CASE WHEN outcome = 'abandoned' OR speech_abandoned = 1 THEN 1 ELSE 0 END), 0)::BIGINT AS abandoned
             FROM attempts
             WHERE campaign_id = $1 AND answered_at >= $2 AND outcome IN ('human', 'callback_requested', 'abandoned')",
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

    pub(in crate::store) async fn speech_latency(
        &self,
        campaign: &str,
        since: DateTime<Utc>,
    ) -> Result<SpeechLatency, StoreError> {
        // NULLS FIRST: the row order SQLite gives (the figures do not depend on it).
        let rows = sqlx::query(
            "SELECT speech_latency_ms, speech_abandoned FROM attempts
             WHERE campaign_id = $1 AND answered_at >= $2 AND (speech_latency_ms IS NOT NULL OR speech_abandoned = 1)
             ORDER BY speech_latency_ms NULLS FIRST",
        )
        .bind(campaign)
        .bind(to_ms(since))
        .fetch_all(self.pool())
        .await?;
        let calls = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<Option<i64>, _>("speech_latency_ms")?,
                    r.try_get::<i64, _>("speech_abandoned")? != 0,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(speech_latency_of(calls))
    }
}

/// Records a connected attempt's answer → first agent speech (ms; `None`: the agent never spoke)
/// and whether it made the call abandoned, inside `tx` (see [`crate::store::CallWrite::Speech`]).
///
/// Errors: [`StoreError::Query`].
pub(in crate::store) async fn speech_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    key: crate::core::AttemptKey,
    latency_ms: Option<i64>,
    silence_abandoned: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE attempts SET speech_latency_ms = $1, speech_abandoned = $2 WHERE contact_id = $3 AND attempt = $4",
    )
    .bind(latency_ms)
    .bind(i64::from(silence_abandoned))
    .bind(key.contact)
    .bind(i64::from(key.attempt))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
