//! The voice agent's events, as `POST /v1/calls/{call_id}/events` carries them: transcript turns,
//! tool calls, opt-outs, callback requests, the agent's own answering-machine verdict and the end
//! of the call. Parsed from JSON by hand so a refusal names the event and the field.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Every event `type` the agent events API accepts, in the order the API documents them.
pub const EVENT_TYPES: &[&str] = &[
    "agent_speech",
    "message_received",
    "track_conversion",
    "opt_out",
    "callback_requested",
    "answered_by",
    "end_call",
];

/// What answered the call, in the agent's own judgement (`answered_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnsweredBy {
    /// A person.
    Human,
    /// An answering machine or voicemail box.
    Machine,
}

/// What an agent event says.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentEventKind {
    /// The agent said `text` (an agent transcript turn; may carry `[KNOWLEDGE_GAP: topic]`).
    AgentSpeech {
        /// What the agent said.
        text: String,
    },
    /// The person said `text` (a user transcript turn).
    MessageReceived {
        /// What the person said.
        text: String,
    },
    /// The agent called its `track_conversion` tool.
    TrackConversion {
        /// The conversion's type; the campaign's `conversion_event` when absent.
        event_type: Option<String>,
        /// The tool's `details` object (`{}` when absent).
        details: Value,
    },
    /// The person asked not to be called again.
    OptOut,
    /// The person asked to be called back, at `callback_at` (UTC) when they named a time.
    CallbackRequested {
        /// The time they asked for, read from RFC 3339 with its offset.
        callback_at: Option<DateTime<Utc>>,
    },
    /// The agent's own answering-machine detection.
    AnsweredBy(AnsweredBy),
    /// The agent is done: hang up the call.
    EndCall,
}

/// One event from the agent.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentEvent {
    /// Idempotency key: an event whose `id` was already taken for this call is ignored.
    pub id: Option<String>,
    /// When it happened (UTC); `None`: when it was received.
    pub at: Option<DateTime<Utc>>,
    /// What it says.
    pub kind: AgentEventKind,
}

/// Reads a request body: `{"events": [ ... ]}` or one event object.
///
/// Errors: a message naming the event (`events[2]`) and the field that is missing, of the wrong
/// type, or not known for its event type.
pub fn parse_events(body: &Value) -> Result<Vec<AgentEvent>, String> {
    let obj = body
        .as_object()
        .ok_or_else(|| "the body must be a JSON object: one event, or {\"events\": [...]}".to_string())?;
    match obj.get("events") {
        Some(Value::Array(list)) if obj.len() == 1 => {
            if list.is_empty() {
                return Err("events: the list is empty".into());
            }
            list.iter()
                .enumerate()
                .map(|(i, e)| parse_event(e).map_err(|m| format!("events[{i}]{m}")))
                .collect()
        }
        Some(Value::Array(_)) => Err("a body with `events` takes no other field".into()),
        Some(_) => Err("events: must be an array of event objects".into()),
        None => parse_event(body).map(|e| vec![e]).map_err(|m| format!("event{m}")),
    }
}

/// Reads one event; the error text starts with `.field: ` or `: `.
fn parse_event(v: &Value) -> Result<AgentEvent, String> {
    let obj = v.as_object().ok_or_else(|| ": must be an object".to_string())?;
    let kind = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(".type: must be a string".into()),
        None => return Err(".type: missing".into()),
    };
    let fields: &[&str] = match kind {
        "agent_speech" | "message_received" => &["text"],
        "track_conversion" => &["event_type", "details"],
        "opt_out" | "end_call" => &[],
        "callback_requested" => &["callback_at"],
        "answered_by" => &["answered_by"],
        other => {
            return Err(format!(
                ".type: unknown event type `{other}` (one of {})",
                EVENT_TYPES.join(", ")
            ));
        }
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["type", "at", "id"].contains(&k.as_str()) && !fields.contains(&k.as_str()))
    {
        return Err(format!(".{k}: not a field of `{kind}`"));
    }
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => return Err(".id: must be a non-empty string".into()),
    };
    let at = match obj.get("at") {
        None | Some(Value::Null) => None,
        Some(v) => Some(instant(v).map_err(|m| format!(".at: {m}"))?),
    };
    let text = |obj: &Map<String, Value>| match obj.get("text") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(".text: must not be empty".to_string()),
        Some(_) => Err(".text: must be a string".to_string()),
        None => Err(".text: missing".to_string()),
    };
    let kind = match kind {
        "agent_speech" => AgentEventKind::AgentSpeech { text: text(obj)? },
        "message_received" => AgentEventKind::MessageReceived { text: text(obj)? },
        "track_conversion" => AgentEventKind::TrackConversion {
            event_type: match obj.get("event_type") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(_) => return Err(".event_type: must be a non-empty string".into()),
            },
            details: match obj.get("details") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(v @ Value::Object(_)) => v.clone(),
                Some(_) => return Err(".details: must be an object".into()),
            },
        },
        "opt_out" => AgentEventKind::OptOut,
        "end_call" => AgentEventKind::EndCall,
        "callback_requested" => AgentEventKind::CallbackRequested {
            callback_at: match obj.get("callback_at") {
                None | Some(Value::Null) => None,
                Some(v) => Some(instant(v).map_err(|m| format!(".callback_at: {m}"))?),
            },
        },
        _ => AgentEventKind::AnsweredBy(match obj.get("answered_by").and_then(Value::as_str) {
            Some("human") => AnsweredBy::Human,
            Some("machine") => AnsweredBy::Machine,
            Some(_) => return Err(".answered_by: must be `human` or `machine`".into()),
            None => return Err(".answered_by: missing (`human` or `machine`)".into()),
        }),
    };
    Ok(AgentEvent { id, at, kind })
}

/// An RFC 3339 instant with its offset, as UTC.
fn instant(v: &Value) -> Result<DateTime<Utc>, String> {
    let s = v.as_str().ok_or("must be an RFC 3339 string")?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 instant with an offset ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_batch_and_a_single_event_are_read() {
        let batch = json!({"events": [
            {"type": "agent_speech", "text": "Hi!", "at": "2026-12-01T15:00:00Z", "id": "e1"},
            {"type": "message_received", "text": "Hello"},
            {"type": "track_conversion", "event_type": "plan_upgrade", "details": {"plan": "annual"}},
            {"type": "opt_out"},
            {"type": "callback_requested", "callback_at": "2026-12-02T15:00:00-05:00"},
            {"type": "answered_by", "answered_by": "machine"},
            {"type": "end_call"}
        ]});
        let ev = parse_events(&batch).unwrap();
        assert_eq!(ev.len(), EVENT_TYPES.len());
        assert_eq!(ev[0].id.as_deref(), Some("e1"));
        assert_eq!(
            ev[4].kind,
            AgentEventKind::CallbackRequested {
                callback_at: Some(DateTime::parse_from_rfc3339("2026-12-02T20:00:00Z").unwrap().into())
            }
        );
        assert_eq!(ev[5].kind, AgentEventKind::AnsweredBy(AnsweredBy::Machine));
        let one = parse_events(&json!({"type": "end_call"})).unwrap();
        assert_eq!(one[0].kind, AgentEventKind::EndCall);
    }

    #[test]
    fn refusals_name_the_event_and_the_field() {
        let cases = [
            (json!([]), "JSON object"),
            (json!({"events": []}), "events: the list is empty"),
            (json!({"events": [{"type": "agent_speech"}]}), "events[0].text: missing"),
            (
                json!({"events": [{"type": "end_call"}, {"type": "dance"}]}),
                "events[1].type: unknown event type `dance`",
            ),
            (
                json!({"type": "opt_out", "text": "x"}),
                "event.text: not a field of `opt_out`",
            ),
            (
                json!({"type": "agent_speech", "text": "x", "at": "yesterday"}),
                "event.at:",
            ),
            (
                json!({"type": "answered_by", "answered_by": "fax"}),
                "event.answered_by:",
            ),
            (
                json!({"type": "track_conversion", "details": [1]}),
                "event.details: must be an object",
            ),
            (json!({"text": "x"}), "event.type: missing"),
        ];
        for (body, want) in cases {
            let e = parse_events(&body).unwrap_err();
            assert!(e.contains(want), "{body}: `{e}` lacks `{want}`");
        }
    }
}
