//! The TwiML dialerd sends (Twilio "TwiML for Programmable Voice"), written with `quick-xml`
//! so every attribute and text is escaped: the instructions that connect an answered call to
//! the voice agent (`<Connect><Stream>`, `<Dial><Sip>`, or the agent platform's own TwiML URL),
//! and the messages that end a call (`<Say>` or `<Play>`, then `<Hangup/>`).

use quick_xml::Writer;
use quick_xml::events::BytesText;

/// How an answered call reaches the voice agent (`[trunk.twilio] connect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentConnect {
    /// `<Connect><Stream url="wss://…">`: Twilio Media Streams to the agent's WebSocket.
    Stream {
        /// The agent's `wss://` URL.
        url: String,
    },
    /// `<Dial><Sip>`: a SIP call to the agent's SIP URI (`sip:agent@example.com`).
    Sip {
        /// The agent's SIP URI.
        uri: String,
    },
    /// The agent platform's own TwiML URL, given to Twilio as the call's `Url`.
    Url {
        /// The TwiML URL.
        url: String,
    },
}

/// Who the call is for, passed to the agent: `<Parameter>`s of a stream, `X-` headers of a SIP
/// call (Twilio passes `X-` headers of a SIP URI on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallParameters {
    /// Campaign id.
    pub campaign: String,
    /// Contact id.
    pub contact: i64,
    /// 1-based attempt number.
    pub attempt: u32,
    /// The voice agent's id.
    pub agent_id: String,
}

impl CallParameters {
    fn pairs(&self) -> [(&'static str, String); 4] {
        [
            ("campaign", self.campaign.clone()),
            ("contact", self.contact.to_string()),
            ("attempt", self.attempt.to_string()),
            ("agent_id", self.agent_id.clone()),
        ]
    }
}

/// What a call hears before it is hung up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Announcement {
    /// Text read by Twilio's text-to-speech (`<Say>`).
    Say(String),
    /// An audio file played (`<Play>`), by URL.
    Play(String),
}

fn document(body: impl FnOnce(&mut Writer<Vec<u8>>) -> std::io::Result<()>) -> String {
    let mut w = Writer::new(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = w.create_element("Response").write_inner_content(body);
    String::from_utf8(w.into_inner()).unwrap_or_default()
}

/// The `Twiml` of a new call that connects it to the agent, or `None` for
/// [`AgentConnect::Url`] (the call then carries `Url` instead).
pub fn connect(to: &AgentConnect, params: &CallParameters) -> Option<String> {
    match to {
        AgentConnect::Stream { url } => Some(document(|w| {
            w.create_element("Connect").write_inner_content(|w| {
                w.create_element("Stream")
                    .with_attribute(("url", url.as_str()))
                    .write_inner_content(|w| {
                        for (name, value) in params.pairs() {
                            w.create_element("Parameter")
                                .with_attribute(("name", name))
                                .with_attribute(("value", value.as_str()))
                                .write_empty()?;
                        }
                        Ok(())
                    })?;
                Ok(())
            })?;
            Ok(())
        })),
        AgentConnect::Sip { uri } => {
            let headers = serde_urlencoded::to_string(
                params
                    .pairs()
                    .map(|(n, v)| (format!("X-Dialerd-{}", header_case(n)), v)),
            )
            .unwrap_or_default();
            let sep = if uri.contains('?') { '&' } else { '?' };
            let target = format!("{uri}{sep}{headers}");
            Some(document(|w| {
                w.create_element("Dial").write_inner_content(|w| {
                    w.create_element("Sip").write_text_content(BytesText::new(&target))?;
                    Ok(())
                })?;
                Ok(())
            }))
        }
        AgentConnect::Url { .. } => None,
    }
}

/// `agent_id` → `Agent-Id`.
fn header_case(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// TwiML that plays `message` and hangs up (voicemail, safe-harbor message).
pub fn announce_then_hangup(message: &Announcement) -> String {
    document(|w| {
        match message {
            Announcement::Say(text) => w.create_element("Say").write_text_content(BytesText::new(text))?,
            Announcement::Play(url) => w.create_element("Play").write_text_content(BytesText::new(url))?,
        };
        w.create_element("Hangup").write_empty()?;
        Ok(())
    })
}

/// TwiML that hangs up at once.
pub fn hangup() -> String {
    document(|w| {
        w.create_element("Hangup").write_empty()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> CallParameters {
        CallParameters {
            campaign: "spring \"A&B\"".into(),
            contact: 42,
            attempt: 2,
            agent_id: "agent<1>".into(),
        }
    }

    #[test]
    fn stream_carries_the_attempt_as_escaped_parameters() {
        let t = connect(
            &AgentConnect::Stream {
                url: "wss://agent.example/ws?a=1&b=2".into(),
            },
            &params(),
        )
        .unwrap();
        assert_eq!(
            t,
            "<Response><Connect><Stream url=\"wss://agent.example/ws?a=1&amp;b=2\">\
             <Parameter name=\"campaign\" value=\"spring &quot;A&amp;B&quot;\"/>\
             <Parameter name=\"contact\" value=\"42\"/>\
             <Parameter name=\"attempt\" value=\"2\"/>\
             <Parameter name=\"agent_id\" value=\"agent&lt;1&gt;\"/>\
             </Stream></Connect></Response>"
        );
    }

    #[test]
    fn sip_dials_the_uri_with_x_headers() {
        let t = connect(
            &AgentConnect::Sip {
                uri: "sip:agent@sip.example.com".into(),
            },
            &params(),
        )
        .unwrap();
        assert_eq!(
            t,
            "<Response><Dial><Sip>sip:agent@sip.example.com?X-Dialerd-Campaign=spring+%22A%26B%22\
             &amp;X-Dialerd-Contact=42&amp;X-Dialerd-Attempt=2&amp;X-Dialerd-Agent-Id=agent%3C1%3E</Sip></Dial></Response>"
        );
    }

    #[test]
    fn url_mode_has_no_twiml() {
        assert_eq!(
            connect(
                &AgentConnect::Url {
                    url: "https://agent.example/twiml".into()
                },
                &params()
            ),
            None
        );
    }

    #[test]
    fn announcements_escape_text_and_hang_up() {
        assert_eq!(
            announce_then_hangup(&Announcement::Say("Hi <Ann> & co, call 1-800".into())),
            "<Response><Say>Hi &lt;Ann&gt; &amp; co, call 1-800</Say><Hangup/></Response>"
        );
        assert_eq!(
            announce_then_hangup(&Announcement::Play("https://x.example/vm.mp3?a=1&b=2".into())),
            "<Response><Play>https://x.example/vm.mp3?a=1&amp;b=2</Play><Hangup/></Response>"
        );
        assert_eq!(hangup(), "<Response><Hangup/></Response>");
    }

    #[test]
    fn the_twiml_parses_back_to_the_same_text() {
        // Round trip through quick-xml's reader: the escaped message reads back unchanged.
        let msg = "a < b && \"c\" > 'd' ]]>";
        let t = announce_then_hangup(&Announcement::Say(msg.into()));
        let mut r = quick_xml::Reader::from_str(&t);
        let mut text = String::new();
        loop {
            match r.read_event().unwrap() {
                quick_xml::events::Event::Text(e) => text.push_str(&e.decode().unwrap()),
                quick_xml::events::Event::GeneralRef(e) => {
                    let name = e.decode().unwrap();
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name).unwrap();
                    text.push_str(resolved);
                }
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(text, msg);
    }
}
