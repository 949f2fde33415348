//! PostgreSQL: the conversations API's reads and the recording URL (see [`crate::store`]'s `conversations`).
//!
//! The order is SQLite's: newest end first, ties by call id descending in byte order (`COLLATE
//! "C"`, whatever the database's collation), so a cursor `(ended_at, call_id)` names the same
//! position on both engines. The `ended_at` prefix of that order walks `call_records_ended` /
//! `call_records_campaign`; ties on one instant are sorted among themselves (incremental sort).

use super::PgEngine;
use crate::call::{Message, ToolEvent};
use crate::store::conversations::{
    Conversation, ConversationFilter, Cursor, MAX_PAGE, decode_analysis, decode_transcript, next_cursor,
};
use crate::store::{StoreError, from_ms, to_ms};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

/// The columns of a conversation. `turn_count`: the transcript's length, 0 when it is not a
/// JSON array (as SQLite's `json_array_length`), as BIGINT.
macro_rules! select {
    () => {
        "SELECT r.call_id, r.trunk_call_id, r.campaign_id, r.contact_id, r.attempt, r.agent_id, r.caller_number,
            r.callee_number, r.dialed_at, r.answered_at, r.first_agent_speech_at, r.ended_at, r.outcome,
            r.disposition,
            (CASE WHEN json_typeof(r.transcript::json) = 'array' THEN json_array_length(r.transcript::json) ELSE 0 END)::BIGINT
                AS turn_count,
            a.recording_url"
    };
}

/// The joins every read of conversations makes: the attempt holds the recording.
macro_rules! from_joined {
    () => {
        " FROM call_records r LEFT JOIN attempts a ON a.contact_id = r.contact_id AND a.attempt = r.attempt"
    };
}

fn conversation(r: &PgRow, analysis: Option<serde_json::Value>) -> Result<Conversation, StoreError> {
    let opt = |v: Option<i64>| v.map(from_ms);
    Ok(Conversation {
        id: r.try_get("call_id")?,
        trunk_call_id: r.try_get("trunk_call_id")?,
        campaign: r.try_get("campaign_id")?,
        contact_id: r.try_get("contact_id")?,
        attempt: r.try_get("attempt")?,
        agent_id: r.try_get("agent_id")?,
        from: r.try_get("caller_number")?,
        to: r.try_get("callee_number")?,
        dialed_at: from_ms(r.try_get("dialed_at")?),
        answered_at: opt(r.try_get("answered_at")?),
        first_agent_speech_at: opt(r.try_get("first_agent_speech_at")?),
        ended_at: from_ms(r.try_get("ended_at")?),
        outcome: r.try_get("outcome")?,
        disposition: r.try_get("disposition")?,
        turn_count: r.try_get::<Option<i64>, _>("turn_count")?.unwrap_or(0),
        recording_url: r.try_get("recording_url")?,
        analysis,
    })
}

impl PgEngine {
    pub(in crate::store) async fn conversations(
        &self,
        f: &ConversationFilter,
    ) -> Result<(Vec<Conversation>, Option<Cursor>), StoreError> {
        let limit = f.limit.clamp(1, MAX_PAGE);
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(concat!(select!(), from_joined!(), " WHERE 1 = 1"));
        if let Some(c) = &f.campaign {
            q.push(" AND r.campaign_id = ").push_bind(c.clone());
        }
        if let Some(c) = f.contact {
            q.push(" AND r.contact_id = ").push_bind(c);
        }
        if let Some(o) = &f.outcome {
            q.push(" AND r.outcome = ").push_bind(o.clone());
        }
        if let Some(d) = &f.disposition {
            q.push(" AND r.disposition = ").push_bind(d.clone());
        }
        if let Some(t) = f.ended_after {
            q.push(" AND r.ended_at >= ").push_bind(to_ms(t));
        }
        if let Some(t) = f.ended_before {
            q.push(" AND r.ended_at < ").push_bind(to_ms(t));
        }
        if let Some(c) = &f.after {
            // SQLite's `ended_at < e OR (ended_at = e AND call_id < id)`, with the bound on
            // `ended_at` alone first so the index range starts at the cursor.
            q.push(" AND r.ended_at <= ")
                .push_bind(c.ended_ms)
                .push(" AND (r.ended_at < ")
                .push_bind(c.ended_ms)
                .push(" OR r.call_id COLLATE \"C\" < ")
                .push_bind(c.call_id.clone())
                .push(")");
        }
        q.push(" ORDER BY r.ended_at DESC, r.call_id COLLATE \"C\" DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.build().fetch_all(self.pool()).await?;
        let page = rows
            .iter()
            .map(|r| conversation(r, None))
            .collect::<Result<Vec<_>, _>>()?;
        let next = next_cursor(&page, limit);
        Ok((page, next))
    }

    pub(in crate::store) async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        let Some(r) = sqlx::query(concat!(
            select!(),
            ", r.analysis",
            from_joined!(),
            " WHERE r.call_id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        let analysis = decode_analysis(r.try_get::<Option<String>, _>("analysis")?)?;
        conversation(&r, analysis).map(Some)
    }

    pub(in crate::store) async fn conversation_transcript(
        &self,
        id: &str,
    ) -> Result<Option<(Vec<Message>, Vec<ToolEvent>)>, StoreError> {
        let row = sqlx::query("SELECT transcript, tool_events FROM call_records WHERE call_id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = row else { return Ok(None) };
        decode_transcript(
            &r.try_get::<String, _>("transcript")?,
            &r.try_get::<String, _>("tool_events")?,
        )
        .map(Some)
    }

    pub(in crate::store) async fn set_recording_url(&self, trunk_call_id: &str, url: &str) -> Result<bool, StoreError> {
        // One statement; two nodes reporting the same call's recording both set it (the last wins).
        let r = sqlx::query("UPDATE attempts SET recording_url = $1 WHERE call_id = $2")
            .bind(url)
            .bind(trunk_call_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
