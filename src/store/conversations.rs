//! The conversations API's reads: call records filtered, newest first, a page at a time behind
//! an opaque cursor, one record with its analysis, its transcript; and the recording URL a
//! trunk reports for a call (`[trunk] record = true`). Every list query walks an index in order
//! (`call_records_ended`, `call_records_campaign` or the `(contact_id, attempt)` key) and stops
//! at its `LIMIT`.

use super::{Store, StoreError, from_ms, to_ms};
use crate::call::{Message, ToolEvent};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

/// The largest page `GET /v1/conversations` returns.
pub const MAX_PAGE: u32 = 500;

/// Which conversations to list; every field set narrows the list.
#[derive(Clone, Debug, Default)]
pub struct ConversationFilter {
    /// Campaign id.
    pub campaign: Option<String>,
    /// Contact id.
    pub contact: Option<i64>,
    /// Attempt outcome (`human_answered`, `no_answer`, …).
    pub outcome: Option<String>,
    /// Disposition after the call.
    pub disposition: Option<String>,
    /// Calls that ended at or after this instant (UTC).
    pub ended_after: Option<DateTime<Utc>>,
    /// Calls that ended before this instant (UTC).
    pub ended_before: Option<DateTime<Utc>>,
    /// Page size, 1..=[`MAX_PAGE`].
    pub limit: u32,
    /// Continue after this position (from [`Cursor::decode`]).
    pub after: Option<Cursor>,
}

/// A position in the newest-first order: the last conversation of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Its end, milliseconds since the epoch (UTC).
    pub ended_ms: i64,
    /// Its call id.
    pub call_id: String,
}

impl Cursor {
    /// The opaque form clients pass back (`base64url("<ended_ms>:<call_id>")`).
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.ended_ms, self.call_id))
    }

    /// Reads [`Cursor::encode`]'s form; `None` for anything else.
    pub fn decode(s: &str) -> Option<Cursor> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let (ms, id) = raw.split_once(':')?;
        Some(Cursor {
            ended_ms: ms.parse().ok()?,
            call_id: id.to_string(),
        })
    }
}

/// One call record as the conversations API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    /// Stable call id (`c<contact>a<attempt>`).
    pub id: String,
    /// The trunk's own id for the call (Twilio `CallSid`, LiveKit room).
    pub trunk_call_id: String,
    /// Campaign id.
    pub campaign: String,
    /// Contact id.
    pub contact_id: i64,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// The voice agent that took the call.
    pub agent_id: String,
    /// Our caller id, E.164.
    pub from: String,
    /// The contact's number, E.164.
    pub to: String,
    /// When the dial started (UTC).
    pub dialed_at: DateTime<Utc>,
    /// When the call was answered (UTC), if it was.
    pub answered_at: Option<DateTime<Utc>>,
    /// When the agent first spoke (UTC), if it did.
    pub first_agent_speech_at: Option<DateTime<Utc>>,
    /// When the call ended (UTC).
    pub ended_at: DateTime<Utc>,
    /// Attempt outcome.
    pub outcome: String,
    /// Disposition after the call.
    pub disposition: String,
    /// Turns in the transcript.
    pub turn_count: i64,
    /// The trunk's recording, when the campaign records calls and the trunk reported one.
    pub recording_url: Option<String>,
    /// The stored analysis (JSON), once the pipeline has analysed the call.
    pub analysis: Option<serde_json::Value>,
}

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

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl Store {
    /// A page of conversations matching `f`, newest end first (ties by call id, descending),
    /// and the cursor of the next page when there may be one. Analyses are not loaded.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn conversations(
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
        let next = (page.len() == limit as usize)
            .then(|| page.last())
            .flatten()
            .map(|c| Cursor {
                ended_ms: to_ms(c.ended_at),
                call_id: c.id.clone(),
            });
        Ok((page, next))
    }

    /// The conversation `id` with its analysis, if there is such a call record.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for an undecodable analysis.
    pub async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
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
        let analysis = r
            .try_get::<Option<String>, _>("analysis")?
            .map(|s| serde_json::from_str(&s).map_err(|e| corrupt("analysis", e)))
            .transpose()?;
        conversation(&r, analysis).map(Some)
    }

    /// The transcript and tool calls of conversation `id`, in the order they happened.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for undecodable JSON.
    pub async fn conversation_transcript(
        &self,
        id: &str,
    ) -> Result<Option<(Vec<Message>, Vec<ToolEvent>)>, StoreError> {
        let row = sqlx::query("SELECT transcript, tool_events FROM call_records WHERE call_id = ?")
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        let Some(r) = row else { return Ok(None) };
        let messages =
            serde_json::from_str(&r.try_get::<String, _>("transcript")?).map_err(|e| corrupt("transcript", e))?;
        let tools =
            serde_json::from_str(&r.try_get::<String, _>("tool_events")?).map_err(|e| corrupt("tool_events", e))?;
        Ok(Some((messages, tools)))
    }

    /// Stores the recording the trunk made of its call `trunk_call_id`; false when no attempt
    /// has that call id.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn set_recording_url(&self, trunk_call_id: &str, url: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE attempts SET recording_url = ? WHERE call_id = ?")
            .bind(url)
            .bind(trunk_call_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn a_cursor_reads_back_and_garbage_does_not() {
        let c = Cursor {
            ended_ms: 1_764_000_000_123,
            call_id: "c12a3".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "!!", "bm90LWEtY3Vyc29y", "YWJjOmRlZg"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
