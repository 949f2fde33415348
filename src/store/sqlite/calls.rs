//! SQLite: call records (see [`crate::store`]'s `calls`).

use super::SqliteEngine;
use crate::call::CallRecord;
use crate::core::AttemptKey;
use crate::store::calls::{contact_fields, corrupt, detail_json};
use crate::store::{NewJob, PostCall, StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use sqlx::{Row, Sqlite, Transaction};

/// Inserts the call record of a just-closed attempt inside `tx`; false when the attempt has no
/// trunk call id (the dial never reached the trunk) or already has a record.
pub(in crate::store) async fn insert_call_record(
    tx: &mut Transaction<'_, Sqlite>,
    key: AttemptKey,
    post: &PostCall,
    ended_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (detail, transcript, tools) = detail_json(post)?;
    let r = sqlx::query(
        "INSERT INTO call_records (call_id, trunk_call_id, campaign_id, contact_id, attempt, agent_id, caller_number,
             callee_number, dialed_at, answered_at, first_agent_speech_at, ended_at, outcome, disposition, transcript, tool_events)
         SELECT ?, a.call_id, a.campaign_id, a.contact_id, a.attempt, ?, ?, a.phone_e164, a.started_at, a.answered_at, ?, ?,
             a.outcome, a.disposition, ?, ?
         FROM attempts a WHERE a.contact_id = ? AND a.attempt = ? AND a.call_id IS NOT NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(CallRecord::id_for(key.contact, key.attempt))
    .bind(&post.agent_id)
    .bind(&post.caller_number)
    .bind(detail.first_agent_speech_at.map(to_ms))
    .bind(to_ms(ended_at))
    .bind(transcript)
    .bind(tools)
    .bind(key.contact)
    .bind(key.attempt)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

impl SqliteEngine {
    pub(in crate::store) async fn call_record(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT r.*, c.created_at AS contact_created_at, c.first_name, c.last_name, c.email, c.custom_fields,
                 k.created_at AS campaign_started_at,
                 (SELECT MIN(a.started_at) FROM attempts a WHERE a.contact_id = r.contact_id) AS first_dialed_at
             FROM call_records r JOIN contacts c ON c.id = r.contact_id JOIN campaigns k ON k.id = r.campaign_id
             WHERE r.call_id = ?",
        )
        .bind(call_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let fields = contact_fields(
            &r.try_get::<String, _>("custom_fields")?,
            [
                ("first_name", r.try_get("first_name")?),
                ("last_name", r.try_get("last_name")?),
                ("email", r.try_get("email")?),
            ],
        )?;
        let opt = |v: Option<i64>| v.map(from_ms);
        Ok(Some(CallRecord {
            call_id: r.try_get("call_id")?,
            trunk_call_id: r.try_get("trunk_call_id")?,
            campaign_id: r.try_get("campaign_id")?,
            contact_id: r.try_get("contact_id")?,
            attempt: r.try_get("attempt")?,
            agent_id: r.try_get("agent_id")?,
            caller_number: r.try_get("caller_number")?,
            callee_number: r.try_get("callee_number")?,
            contact_created_at: from_ms(r.try_get("contact_created_at")?),
            campaign_started_at: from_ms(r.try_get("campaign_started_at")?),
            first_dialed_at: from_ms(r.try_get::<Option<i64>, _>("first_dialed_at")?.unwrap_or_default()),
            dialed_at: from_ms(r.try_get("dialed_at")?),
            answered_at: opt(r.try_get("answered_at")?),
            first_agent_speech_at: opt(r.try_get("first_agent_speech_at")?),
            ended_at: from_ms(r.try_get("ended_at")?),
            outcome: r.try_get("outcome")?,
            disposition: r.try_get("disposition")?,
            transcript: serde_json::from_str(&r.try_get::<String, _>("transcript")?)
                .map_err(|e| corrupt("transcript", e))?,
            tool_events: serde_json::from_str(&r.try_get::<String, _>("tool_events")?)
                .map_err(|e| corrupt("tool_events", e))?,
            contact_fields: fields,
        }))
    }

    pub(in crate::store) async fn save_analysis(
        &self,
        call_id: &str,
        analysis: &serde_json::Value,
        job_id: i64,
        follow_on: &[NewJob],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE call_records SET analysis = ?, analyzed_at = ? WHERE call_id = ?")
            .bind(analysis.to_string())
            .bind(to_ms(now))
            .bind(call_id)
            .execute(&mut *tx)
            .await?;
        super::outbox::insert_jobs(&mut tx, follow_on, now).await?;
        sqlx::query("UPDATE outbox SET state = 'done', updated_at = ? WHERE id = ?")
            .bind(to_ms(now))
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn call_analysis(&self, call_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let v: Option<Option<String>> = sqlx::query_scalar("SELECT analysis FROM call_records WHERE call_id = ?")
            .bind(call_id)
            .fetch_optional(self.pool())
            .await?;
        v.flatten()
            .map(|s| serde_json::from_str(&s).map_err(|e| corrupt("analysis", e)))
            .transpose()
    }

    pub(in crate::store) async fn call_ids(&self, campaign: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT call_id FROM call_records WHERE campaign_id = ? ORDER BY ended_at, call_id")
                .bind(campaign)
                .fetch_all(self.pool())
                .await?,
        )
    }
}
