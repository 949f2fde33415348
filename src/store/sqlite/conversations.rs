//! SQLite: the conversations API's reads and the recording URL (see [`crate::store`]'s `conversations`).

use super::SqliteEngine;
use crate::call::{Message, ToolEvent};
use crate::store::conversations::{
    Conversation, ConversationFilter, Cursor, MAX_PAGE, decode_analysis, decode_transcript, next_cursor,
};
use crate::store::{StoreError, from_ms, to_ms};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

const SELECT: &str =
    "SELECT r.call_id, r.trunk_call_id, r.campaign_id, r.contact_id, r.attempt, r.agent_id, r.caller_number,
        r.callee_number, r.dialed_at, r.answered_at, r.first_agent_speech_at, r.ended_at, r.outcome,
        r.disposition, json_array_length(r.transcript) AS turn_count, a.recording_url";

fn conversation(r: &SqliteRow, analysis: Option<serde_json::Value>) -> Result<Conversation, StoreError> {
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

impl SqliteEngine {
    pub(in crate::store) async fn conversations(
        &self,
        f: &ConversationFilter,
    ) -> Result<(Vec<Conversation>, Option<Cursor>), StoreError> {
        let limit = f.limit.clamp(1, MAX_PAGE);
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(SELECT);
        q.push(" FROM call_records r LEFT JOIN attempts a ON a.contact_id = r.contact_id AND a.attempt = r.attempt WHERE 1 = 1");
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
            q.push(" AND (r.ended_at < ")
                .push_bind(c.ended_ms)
                .push(" OR (r.ended_at = ")
                .push_bind(c.ended_ms)
                .push(" AND r.call_id < ")
                .push_bind(c.call_id.clone())
                .push("))");
        }
        q.push(" ORDER BY r.ended_at DESC, r.call_id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.build().fetch_all(self.reader()).await?;
        let page = rows
            .iter()
            .map(|r| conversation(r, None))
            .collect::<Result<Vec<_>, _>>()?;
        let next = next_cursor(&page, limit);
        Ok((page, next))
    }

    pub(in crate::store) async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        let sql = format!(
            "{SELECT}, r.analysis FROM call_records r
             LEFT JOIN attempts a ON a.contact_id = r.contact_id AND a.attempt = r.attempt WHERE r.call_id = ?"
        );
        let Some(r) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.reader())
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
        let row = sqlx::query("SELECT transcript, tool_events FROM call_records WHERE call_id = ?")
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        let Some(r) = row else { return Ok(None) };
        decode_transcript(
            &r.try_get::<String, _>("transcript")?,
            &r.try_get::<String, _>("tool_events")?,
        )
        .map(Some)
    }

    pub(in crate::store) async fn set_recording_url(&self, trunk_call_id: &str, url: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE attempts SET recording_url = ? WHERE call_id = ?")
            .bind(url)
            .bind(trunk_call_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
