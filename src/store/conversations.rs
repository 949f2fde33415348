//! The conversations API's reads: call records filtered, newest first, a page at a time behind
//! an opaque cursor, one record with its analysis, its transcript; and the recording URL a
//! trunk reports for a call (`[trunk] record = true`). Every list query walks an index in order
//! (`call_records_ended`, `call_records_campaign` or the `(contact_id, attempt)` key) and stops
//! at its `LIMIT`.

use super::{Store, StoreError, to_ms};
use crate::call::{Message, ToolEvent};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

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

/// The cursor of the page after `page`, a page of `limit` rows asked for: its last row when the
/// page is full (there may be more), `None` otherwise.
pub(super) fn next_cursor(page: &[Conversation], limit: u32) -> Option<Cursor> {
    (page.len() == limit as usize)
        .then(|| page.last())
        .flatten()
        .map(|c| Cursor {
            ended_ms: to_ms(c.ended_at),
            call_id: c.id.clone(),
        })
}

/// The stored analysis (JSON text) decoded. Errors: [`StoreError::Corrupt`].
pub(super) fn decode_analysis(text: Option<String>) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|s| serde_json::from_str(&s).map_err(|e| corrupt("analysis", e)))
        .transpose()
}

/// The stored transcript and tool events (JSON arrays as text) decoded.
/// Errors: [`StoreError::Corrupt`].
pub(super) fn decode_transcript(transcript: &str, tools: &str) -> Result<(Vec<Message>, Vec<ToolEvent>), StoreError> {
    let messages = serde_json::from_str(transcript).map_err(|e| corrupt("transcript", e))?;
    let tools = serde_json::from_str(tools).map_err(|e| corrupt("tool_events", e))?;
    Ok((messages, tools))
}

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl Store {
    /// A page of conversations matching `f`, newest end first (ties by call id, descending, in
    /// byte order), and the cursor of the next page when there may be one (the page is full).
    /// `f.limit` is clamped to 1..=[`MAX_PAGE`]. Analyses are not loaded.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn conversations(
        &self,
        f: &ConversationFilter,
    ) -> Result<(Vec<Conversation>, Option<Cursor>), StoreError> {
        on_engine!(self, conversations(f))
    }

    /// The conversation `id` with its analysis, if there is such a call record.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for an undecodable analysis.
    pub async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        on_engine!(self, conversation(id))
    }

    /// The transcript and tool calls of conversation `id`, in the order they happened.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for undecodable JSON.
    pub async fn conversation_transcript(
        &self,
        id: &str,
    ) -> Result<Option<(Vec<Message>, Vec<ToolEvent>)>, StoreError> {
        on_engine!(self, conversation_transcript(id))
    }

    /// Stores the recording the trunk made of its call `trunk_call_id`; false when no attempt
    /// has that call id.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn set_recording_url(&self, trunk_call_id: &str, url: &str) -> Result<bool, StoreError> {
        on_engine!(self, set_recording_url(trunk_call_id, url))
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
