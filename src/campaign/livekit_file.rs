//! `[trunk.livekit]` of a campaign file: which LiveKit SIP outbound trunk places the calls, which
//! agent is dispatched into each call's room, and its checks. The project URL and the API key and
//! secret are daemon settings (`[livekit]`), never here.

use super::file::{TrunkFile, TrunkKindFile};
use serde::Deserialize;
use std::time::Duration;

/// Room names start with this when `room_prefix` is not set.
pub const DEFAULT_ROOM_PREFIX: &str = "dialerd-";

/// How long the agent gets to play a safe-harbor or voicemail message before dialerd deletes the
/// room, when `message_timeout` is not set.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// `[trunk.livekit]`. Credentials never live here (`[livekit]` in the daemon settings).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivekitFile {
    /// The SIP outbound trunk that places the calls (`ST_…`, LiveKit SIP API `sip_trunk_id`).
    pub sip_trunk_id: String,
    /// The agent dispatched into each call's room (`agent_name` of an explicitly dispatched
    /// LiveKit agent worker).
    pub agent_name: String,
    /// Prefix of room names (`{room_prefix}{campaign}-{contact}-{attempt}`); letters, digits, `-`, `_`.
    #[serde(default)]
    pub room_prefix: Option<String>,
    /// Longest a connected call may last (LiveKit `max_call_duration`); LiveKit's default when unset.
    #[serde(default, with = "humantime_serde")]
    pub max_call_duration: Option<Duration>,
    /// How long the agent gets to play the safe-harbor or voicemail message before the room is
    /// deleted (default 30 s).
    #[serde(default, with = "humantime_serde")]
    pub message_timeout: Option<Duration>,
}

impl LivekitFile {
    /// The room prefix in force.
    pub fn room_prefix(&self) -> &str {
        self.room_prefix.as_deref().unwrap_or(DEFAULT_ROOM_PREFIX)
    }

    /// The message timeout in force.
    pub fn message_timeout(&self) -> Duration {
        self.message_timeout.unwrap_or(DEFAULT_MESSAGE_TIMEOUT)
    }
}

/// Checks `[trunk.livekit]`: required with `kind = "livekit"`, with a trunk id and an agent name;
/// each problem goes to `err(key, reason)`.
pub fn validate(t: &TrunkFile, err: &mut dyn FnMut(&str, String)) {
    if t.kind == TrunkKindFile::Livekit && t.record {
        err(
            "trunk.record",
            "is not supported with kind = \"livekit\" yet (recording needs LiveKit Egress); remove it or use Twilio"
                .into(),
        );
    }
    let Some(lk) = &t.livekit else {
        if t.kind == TrunkKindFile::Livekit {
            err(
                "trunk.livekit",
                "is required with kind = \"livekit\": set sip_trunk_id and agent_name".into(),
            );
        }
        return;
    };
    if lk.sip_trunk_id.trim().is_empty() {
        err("trunk.livekit.sip_trunk_id", "must not be empty".into());
    }
    if lk.agent_name.trim().is_empty() {
        err("trunk.livekit.agent_name", "must not be empty".into());
    }
    if let Some(p) = &lk.room_prefix
        && (p.len() > 64 || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        err(
            "trunk.livekit.room_prefix",
            format!("`{p}` must be at most 64 letters, digits, `-` or `_`"),
        );
    }
    if let Some(d) = lk.max_call_duration
        && d < Duration::from_secs(60)
    {
        err("trunk.livekit.max_call_duration", "must be at least 1 minute".into());
    }
    if let Some(d) = lk.message_timeout
        && !(Duration::from_secs(2)..=Duration::from_secs(300)).contains(&d)
    {
        err(
            "trunk.livekit.message_timeout",
            "must be between 2 s and 5 minutes".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml_text: &str) -> Vec<String> {
        let t: TrunkFile = toml::from_str(toml_text).unwrap();
        let mut out = Vec::new();
        validate(&t, &mut |k, r| out.push(format!("{k}: {r}")));
        out
    }

    #[test]
    fn livekit_sections_are_checked() {
        let ok = [
            "kind = \"livekit\"\n[livekit]\nsip_trunk_id = \"ST_a\"\nagent_name = \"renewals\"",
            "kind = \"livekit\"\n[livekit]\nsip_trunk_id = \"ST_a\"\nagent_name = \"r\"\nroom_prefix = \"lk_\"\nmax_call_duration = \"15m\"\nmessage_timeout = \"20s\"",
            "kind = \"sim\"",
            "kind = \"sim\"\nrecord = true",
        ];
        for t in ok {
            assert_eq!(problems(t), Vec::<String>::new(), "{t}");
        }
        let bad = [
            ("kind = \"livekit\"", "trunk.livekit: is required"),
            (
                "kind = \"livekit\"\n[livekit]\nsip_trunk_id = \" \"\nagent_name = \"r\"",
                "trunk.livekit.sip_trunk_id: must not be empty",
            ),
            (
                "kind = \"livekit\"\n[livekit]\nsip_trunk_id = \"ST_a\"\nagent_name = \"\"",
                "trunk.livekit.agent_name: must not be empty",
            ),
            (
                "kind = \"livekit\"\n[livekit]\nsip_trunk_id = \"ST_a\"\nagent_name = \"r\"\nroom_prefix = \"a b\"",
                "trunk.livekit.room_prefix: `a b` must be",
            ),
            (
                "kind = \"livekit\"\n[livekit]\nsip_trunk_id = \"ST_a\"\nagent_name = \"r\"\nmax_call_duration = \"10s\"",
                "trunk.livekit.max_call_duration: must be at least 1 minute",
            ),
            (
                "kind = \"livekit\"\n[livekit]\nsip_trunk_id = \"ST_a\"\nagent_name = \"r\"\nmessage_timeout = \"1h\"",
                "trunk.livekit.message_timeout: must be between",
            ),
            (
                "kind = \"livekit\"\nrecord = true\n[livekit]\nsip_trunk_id = \"ST_a\"\nagent_name = \"r\"",
                "trunk.record: is not supported with kind = \"livekit\" yet",
            ),
        ];
        for (t, want) in bad {
            let p = problems(t);
            assert!(p.len() == 1 && p[0].contains(want), "{t}: {p:?}");
        }
        // Credentials are refused in a campaign file.
        assert!(
            toml::from_str::<TrunkFile>(
                "kind = \"livekit\"\n[livekit]\nsip_trunk_id = \"ST_a\"\nagent_name = \"r\"\napi_secret = \"x\""
            )
            .is_err()
        );
    }
}
