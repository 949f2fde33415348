//! The pure rules of the LiveKit trunk: room names (one room per attempt), the SIP status or
//! Twirp error of a failed `CreateSIPParticipant` → [`EndReason`], and the JSON the agent reads
//! (dispatch metadata, room metadata for a message to play). No I/O.

use crate::core::{AttemptKey, EndReason};
use serde::{Deserialize, Serialize};

/// Identity of the SIP participant (the person called) in every call's room.
pub const CALLEE_IDENTITY: &str = "callee";

/// The SIP participant attribute that holds its call status (LiveKit SIP participant
/// attributes: `dialing`, `ringing`, `active` once answered, `hangup`).
pub const SIP_CALL_STATUS: &str = "sip.callStatus";

/// The room of one attempt: `{room_prefix}{campaign}-{contact}-{attempt}`.
pub fn room_name(room_prefix: &str, campaign: &str, key: AttemptKey) -> String {
    format!("{room_prefix}{campaign}-{}-{}", key.contact, key.attempt)
}

/// The attempt of `room` when it is one of `campaign_prefix`'s rooms (`campaign_prefix` is
/// `{room_prefix}{campaign}-`); `None` for any other room of the project.
pub fn parse_room(room: &str, campaign_prefix: &str) -> Option<AttemptKey> {
    let rest = room.strip_prefix(campaign_prefix)?;
    let (contact, attempt) = rest.split_once('-')?;
    let key = AttemptKey {
        contact: contact.parse().ok()?,
        attempt: attempt.parse().ok()?,
    };
    // Only the canonical form: `07` or `+7` would name the same attempt twice.
    (format!("{}-{}", key.contact, key.attempt) == rest).then_some(key)
}

/// Why a call ended, from the SIP final response LiveKit attached to a failed
/// `CreateSIPParticipant` (Twirp error meta `sip_status_code`, RFC 3261 §21): 486 Busy Here, 600
/// Busy Everywhere and 603 Decline are a busy line (a retry later may reach the person); 408
/// Request Timeout, 480 Temporarily Unavailable and 487 Request Terminated went unanswered; 404
/// Not Found, 604 and anything else failed. Without a SIP status the Twirp code decides:
/// `deadline_exceeded` (the ringing timeout passed) is no answer, anything else failed.
pub fn end_reason(sip_status_code: Option<i32>, twirp_code: &str) -> EndReason {
    match sip_status_code {
        Some(486 | 600 | 603) => EndReason::Busy,
        Some(408 | 480 | 487) => EndReason::NoAnswer,
        Some(_) => EndReason::Failed,
        None if twirp_code == "deadline_exceeded" => EndReason::NoAnswer,
        None => EndReason::Failed,
    }
}

/// The agent dispatch's metadata (JSON, LiveKit `CreateDispatch` `metadata`): what the agent needs
/// to know about the call before it speaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchMetadata {
    /// Campaign id.
    pub campaign: String,
    /// Contact id.
    pub contact: i64,
    /// 1-based attempt number.
    pub attempt: u32,
    /// dialerd's id for the call: the room name.
    pub call_id: String,
    /// The campaign's `agent_id`.
    pub agent_id: String,
    /// Number called, E.164.
    pub phone: String,
    /// The rendered safe-harbor message, played when room metadata says `safe_harbor`.
    pub safe_harbor_message: Option<String>,
    /// The rendered voicemail message, played when room metadata says `voicemail`.
    pub voicemail_message: Option<String>,
}

/// What dialerd asks of the agent after the answer (room metadata, LiveKit `UpdateRoomMetadata`):
/// `{"action":"safe_harbor","message":"…"}` or `{"action":"voicemail","message":"…"}`. The agent
/// plays the message, then leaves; dialerd deletes the room after `message_timeout` regardless.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomAction {
    /// `safe_harbor` or `voicemail`.
    pub action: String,
    /// The text to say.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_round_trip_and_other_rooms_are_not_ours() {
        let key = AttemptKey {
            contact: 42,
            attempt: 3,
        };
        let room = room_name("dialerd-", "spring-2026", key);
        assert_eq!(room, "dialerd-spring-2026-42-3");
        assert_eq!(parse_room(&room, "dialerd-spring-2026-"), Some(key));
        assert_eq!(parse_room(&room, "dialerd-spring-"), None);
        assert_eq!(parse_room("dialerd-spring-2026-42", "dialerd-spring-2026-"), None);
        assert_eq!(parse_room("dialerd-spring-2026-42-x", "dialerd-spring-2026-"), None);
        assert_eq!(parse_room("dialerd-spring-2026-042-3", "dialerd-spring-2026-"), None);
        assert_eq!(parse_room("support-room", "dialerd-spring-2026-"), None);
    }

    #[test]
    fn sip_statuses_map_to_end_reasons() {
        for (sip, want) in [
            (486, EndReason::Busy),
            (600, EndReason::Busy),
            (603, EndReason::Busy),
            (480, EndReason::NoAnswer),
            (408, EndReason::NoAnswer),
            (487, EndReason::NoAnswer),
            (404, EndReason::Failed),
            (604, EndReason::Failed),
            (503, EndReason::Failed),
        ] {
            assert_eq!(end_reason(Some(sip), "anything"), want, "{sip}");
        }
        assert_eq!(end_reason(None, "deadline_exceeded"), EndReason::NoAnswer);
        assert_eq!(end_reason(None, "not_found"), EndReason::Failed);
    }
}
