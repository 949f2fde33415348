//! `[trunk.twilio]` of a campaign file: how answered Twilio calls reach the voice agent, and
//! its checks. The account and its credentials are daemon settings (`[twilio]`), never here.

use super::file::{TrunkFile, TrunkKindFile};
use serde::Deserialize;

/// `[trunk.twilio] connect`: the TwiML that joins an answered call to the voice agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TwilioConnectFile {
    /// `<Connect><Stream url="…">` to `stream_url` (`wss://`).
    Stream,
    /// `<Dial><Sip>` to `sip_uri` (`sip:` or `sips:`).
    Sip,
    /// The agent platform's own TwiML at `twiml_url`.
    Url,
}

/// `[trunk.twilio]`. Credentials never live here (`[twilio]` in the daemon settings).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioFile {
    /// How answered calls reach the agent.
    pub connect: TwilioConnectFile,
    /// The agent's Media Streams WebSocket, for `connect = "stream"`.
    pub stream_url: Option<String>,
    /// The agent's SIP URI, for `connect = "sip"`.
    pub sip_uri: Option<String>,
    /// The agent platform's TwiML URL, for `connect = "url"`.
    pub twiml_url: Option<String>,
}

/// Checks `[trunk.twilio]`: required with `kind = "twilio"`, with the URL its `connect` mode
/// needs; each problem goes to `err(key, reason)`.
pub fn validate(t: &TrunkFile, err: &mut dyn FnMut(&str, String)) {
    let Some(tw) = &t.twilio else {
        if t.kind == TrunkKindFile::Twilio {
            err(
                "trunk.twilio",
                "is required with kind = \"twilio\": set connect and its URL".into(),
            );
        }
        return;
    };
    let (key, value, schemes): (&str, &Option<String>, &[&str]) = match tw.connect {
        TwilioConnectFile::Stream => ("trunk.twilio.stream_url", &tw.stream_url, &["wss://"]),
        TwilioConnectFile::Sip => ("trunk.twilio.sip_uri", &tw.sip_uri, &["sip:", "sips:"]),
        TwilioConnectFile::Url => ("trunk.twilio.twiml_url", &tw.twiml_url, &["https://", "http://"]),
    };
    match value {
        None => err(
            key,
            format!("is required with connect = \"{:?}\"", tw.connect).to_lowercase(),
        ),
        Some(v) if !schemes.iter().any(|s| v.starts_with(s)) => {
            err(key, format!("`{v}` must start with {}", schemes.join(" or ")))
        }
        Some(_) => {}
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
    fn twilio_sections_are_checked() {
        let ok = [
            "kind = \"twilio\"\n[twilio]\nconnect = \"stream\"\nstream_url = \"wss://a.example/ws\"",
            "kind = \"twilio\"\n[twilio]\nconnect = \"sip\"\nsip_uri = \"sips:agent@a.example\"",
            "kind = \"twilio\"\n[twilio]\nconnect = \"url\"\ntwiml_url = \"https://a.example/twiml\"",
            "kind = \"sim\"",
        ];
        for t in ok {
            assert_eq!(problems(t), Vec::<String>::new(), "{t}");
        }
        let bad = [
            ("kind = \"twilio\"", "trunk.twilio: is required"),
            (
                "kind = \"twilio\"\n[twilio]\nconnect = \"stream\"",
                "trunk.twilio.stream_url: is required with connect = \"stream\"",
            ),
            (
                "kind = \"twilio\"\n[twilio]\nconnect = \"stream\"\nstream_url = \"https://a/ws\"",
                "must start with wss://",
            ),
            (
                "kind = \"twilio\"\n[twilio]\nconnect = \"sip\"\nsip_uri = \"agent@a\"",
                "trunk.twilio.sip_uri: `agent@a` must start with sip: or sips:",
            ),
            (
                "kind = \"twilio\"\n[twilio]\nconnect = \"url\"\nstream_url = \"wss://a\"",
                "trunk.twilio.twiml_url: is required",
            ),
        ];
        for (t, want) in bad {
            let p = problems(t);
            assert!(p.len() == 1 && p[0].contains(want), "{t}: {p:?}");
        }
        assert!(toml::from_str::<TrunkFile>("kind = \"twilio\"\n[twilio]\nconnect = \"ws\"").is_err());
        assert!(
            toml::from_str::<TrunkFile>("kind = \"twilio\"\n[twilio]\nconnect = \"url\"\nauth_token = \"x\"").is_err()
        );
    }
}
