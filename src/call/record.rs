//! The call record: what the engine stores when a call ends and what every analysis stage
//! reads. Plain serde data; instants are UTC.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who spoke a transcript message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The voice agent.
    Agent,
    /// The person called.
    User,
}

/// One transcript message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who spoke.
    pub role: Role,
    /// What was said (agent turns may carry `[KNOWLEDGE_GAP: topic]` markers until analysed).
    pub text: String,
    /// When the turn started (UTC).
    pub at: DateTime<Utc>,
}

/// A tool call the agent made during the conversation (`track_conversion`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolEvent {
    /// Tool name.
    pub name: String,
    /// Arguments as the agent passed them (JSON object).
    pub arguments: serde_json::Value,
    /// When the call was made (UTC).
    pub at: DateTime<Utc>,
}

/// What a trunk knows about a connected conversation, carried on its `Ended` event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallDetail {
    /// The conversation, in order.
    pub transcript: Vec<Message>,
    /// Tool calls, in order.
    pub tool_events: Vec<ToolEvent>,
    /// When the agent first spoke (UTC), if it did.
    pub first_agent_speech_at: Option<DateTime<Utc>>,
}

impl CallDetail {
    /// `self` with `other` merged in (a trunk's detail and the agent's events): messages and tool
    /// calls of both in time order (stable, `self` first on ties), the earlier first agent speech.
    pub fn merge(mut self, other: CallDetail) -> CallDetail {
        self.transcript.extend(other.transcript);
        self.transcript.sort_by_key(|m| m.at);
        self.tool_events.extend(other.tool_events);
        self.tool_events.sort_by_key(|t| t.at);
        self.first_agent_speech_at = match (self.first_agent_speech_at, other.first_agent_speech_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self
    }
}

/// Everything the pipeline needs about one finished call, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Stable call id (`c<contact>a<attempt>`), also the `room_name` of conversions.
    pub call_id: String,
    /// The trunk's own id for the call.
    pub trunk_call_id: String,
    /// Campaign id.
    pub campaign_id: String,
    /// Contact id.
    pub contact_id: i64,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Voice agent that took the call.
    pub agent_id: String,
    /// Our caller id, E.164.
    pub caller_number: String,
    /// The number called, E.164.
    pub callee_number: String,
    /// When the contact was imported (UTC).
    pub contact_created_at: DateTime<Utc>,
    /// When the campaign was first started (UTC).
    pub campaign_started_at: DateTime<Utc>,
    /// When the contact's first attempt was dialled (UTC).
    pub first_dialed_at: DateTime<Utc>,
    /// When this attempt was dialled (UTC).
    pub dialed_at: DateTime<Utc>,
    /// When it was answered, if it was (UTC).
    pub answered_at: Option<DateTime<Utc>>,
    /// When the agent first spoke, if it did (UTC).
    pub first_agent_speech_at: Option<DateTime<Utc>>,
    /// When it ended (UTC).
    pub ended_at: DateTime<Utc>,
    /// The attempt's outcome (`human`, `no_answer`, ...).
    pub outcome: String,
    /// The attempt's disposition (`completed`, `retry_scheduled`, ...).
    pub disposition: String,
    /// The conversation.
    pub transcript: Vec<Message>,
    /// Tool calls made during the conversation.
    pub tool_events: Vec<ToolEvent>,
    /// Contact fields: first_name, last_name, email and custom CSV columns.
    pub contact_fields: BTreeMap<String, String>,
}

impl CallRecord {
    /// Stable call id of an attempt.
    pub fn id_for(contact: i64, attempt: u32) -> String {
        format!("c{contact}a{attempt}")
    }
}
