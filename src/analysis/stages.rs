//! Deterministic stages (no language model): call metrics, speed-to-lead, knowledge gaps and
//! conversions. Pure functions of the call record.

use crate::call::{CallRecord, Message, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const GAP_OPEN: &str = "[KNOWLEDGE_GAP:";

/// Durations and turn counts of a call. Times in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Answer to hang-up (0 when never answered), seconds.
    pub duration_s: f64,
    /// Dial to answer or end, seconds.
    pub ring_s: f64,
    /// Transcript messages.
    pub turns: usize,
    /// Agent messages.
    pub agent_turns: usize,
    /// User messages.
    pub user_turns: usize,
    /// Agent talk time, seconds (each turn lasts until the next one starts, the last until the end).
    pub agent_talk_s: f64,
    /// User talk time, seconds (as above).
    pub user_talk_s: f64,
}

fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    ((b - a).num_milliseconds().max(0) as f64) / 1000.0
}

/// Metrics of `r`.
pub fn metrics(r: &CallRecord) -> Metrics {
    let mut m = Metrics {
        duration_s: r.answered_at.map_or(0.0, |a| secs(a, r.ended_at)),
        ring_s: secs(r.dialed_at, r.answered_at.unwrap_or(r.ended_at)),
        turns: r.transcript.len(),
        agent_turns: 0,
        user_turns: 0,
        agent_talk_s: 0.0,
        user_talk_s: 0.0,
    };
    for (i, msg) in r.transcript.iter().enumerate() {
        let end = r.transcript.get(i + 1).map_or(r.ended_at, |n| n.at);
        let t = secs(msg.at, end);
        match msg.role {
            Role::Agent => {
                m.agent_turns += 1;
                m.agent_talk_s += t;
            }
            Role::User => {
                m.user_turns += 1;
                m.user_talk_s += t;
            }
        }
    }
    m
}

/// Speed-to-lead, seconds from the lead's origin: the contact's creation, or the campaign's
/// start when the contact was imported before it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpeedToLead {
    /// `contact_created` or `campaign_started`.
    pub origin: String,
    /// The origin instant (UTC).
    pub origin_at: DateTime<Utc>,
    /// Origin to the contact's first dial, seconds.
    pub to_first_dial_s: f64,
    /// Origin to the agent's first words on this call, seconds; `None` when the agent never spoke.
    pub to_first_agent_response_s: Option<f64>,
}

/// Speed-to-lead of `r`.
pub fn speed_to_lead(r: &CallRecord) -> SpeedToLead {
    let (origin, origin_at) = if r.contact_created_at >= r.campaign_started_at {
        ("contact_created", r.contact_created_at)
    } else {
        ("campaign_started", r.campaign_started_at)
    };
    SpeedToLead {
        origin: origin.into(),
        origin_at,
        to_first_dial_s: secs(origin_at, r.first_dialed_at),
        to_first_agent_response_s: r.first_agent_speech_at.map(|t| secs(origin_at, t)),
    }
}

/// Topics of `[KNOWLEDGE_GAP: topic]` markers in agent turns, trimmed, de-duplicated
/// (case-insensitively), in order of first appearance.
pub fn knowledge_gaps(transcript: &[Message]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in transcript.iter().filter(|m| m.role == Role::Agent) {
        let mut rest = m.text.as_str();
        while let Some(start) = rest.find(GAP_OPEN) {
            let after = &rest[start + GAP_OPEN.len()..];
            let Some(end) = after.find(']') else { break };
            let topic = after[..end].trim();
            if !topic.is_empty() && !out.iter().any(|t| t.eq_ignore_ascii_case(topic)) {
                out.push(topic.to_string());
            }
            rest = &after[end + 1..];
        }
    }
    out
}

/// `text` without knowledge-gap markers, whitespace tidied.
pub fn strip_gap_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(GAP_OPEN) {
        let after = &rest[start + GAP_OPEN.len()..];
        let Some(end) = after.find(']') else { break };
        out.push_str(&rest[..start]);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The transcript with markers stripped from every message.
pub fn clean_transcript(transcript: &[Message]) -> Vec<Message> {
    transcript
        .iter()
        .map(|m| Message {
            text: strip_gap_markers(&m.text),
            ..m.clone()
        })
        .collect()
}

/// One recorded conversion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    /// The call id.
    pub room_name: String,
    /// `event_type` from the tool call, else the campaign's `conversion_event`, else `conversion`.
    pub event_type: String,
    /// `details` from the tool call (object; `{}` when absent).
    pub details: serde_json::Value,
    /// The contact (its id).
    pub user_id: String,
    /// The voice agent.
    pub agent_id: String,
    /// When the tool was called (UTC).
    pub timestamp: DateTime<Utc>,
}

/// Conversions from `track_conversion` tool calls of `r`.
pub fn conversions(r: &CallRecord, default_event: Option<&str>) -> Vec<Conversion> {
    r.tool_events
        .iter()
        .filter(|t| t.name == "track_conversion")
        .map(|t| Conversion {
            room_name: r.call_id.clone(),
            event_type: t
                .arguments
                .get("event_type")
                .and_then(|v| v.as_str())
                .or(default_event)
                .unwrap_or("conversion")
                .to_string(),
            details: t
                .arguments
                .get("details")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({})),
            user_id: r.contact_id.to_string(),
            agent_id: r.agent_id.clone(),
            timestamp: t.at,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, text: &str) -> Message {
        Message {
            role,
            text: text.into(),
            at: Utc::now(),
        }
    }

    #[test]
    fn gaps_are_extracted_deduplicated_and_stripped() {
        let t = vec![
            msg(Role::Agent, "Not sure. [KNOWLEDGE_GAP: Refund policy] Let me check."),
            msg(Role::User, "[KNOWLEDGE_GAP: user turns do not count]"),
            msg(
                Role::Agent,
                "[KNOWLEDGE_GAP: refund policy] and [KNOWLEDGE_GAP:  data export ]",
            ),
        ];
        assert_eq!(knowledge_gaps(&t), vec!["Refund policy", "data export"]);
        assert_eq!(strip_gap_markers(&t[0].text), "Not sure. Let me check.");
        assert_eq!(strip_gap_markers(&t[2].text), "and");
        assert_eq!(
            strip_gap_markers("broken [KNOWLEDGE_GAP: x"),
            "broken [KNOWLEDGE_GAP: x"
        );
    }
}
