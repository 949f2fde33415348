//! Plausible conversation transcripts for the sim trunk, drawn from templates. At the
//! `[trunk.sim]` rates a call carries a `[KNOWLEDGE_GAP: topic]` marker in an agent turn, a
//! `track_conversion` tool call, an opt-out, or a callback request.

use crate::call::{CallDetail, Message, Role, ToolEvent};
use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, RngExt};
use std::time::Duration;

/// How often the optional parts of a conversation appear (each 0..1, per connected call).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TranscriptRates {
    /// P(an agent turn carries a knowledge-gap marker).
    pub knowledge_gap: f64,
    /// P(the agent calls `track_conversion`).
    pub conversion: f64,
    /// P(the person opts out).
    pub opt_out: f64,
}

const OPENINGS: &[&str] = &[
    "Hi, this is the renewals assistant calling from Acme. Is now a good time to talk about your plan?",
    "Hello! I'm calling from Acme about your upcoming renewal. Do you have two minutes?",
    "Good day, this is Acme's assistant. I'm reaching out about your account renewal.",
];
const USER_OPEN: &[&str] = &["Sure, go ahead.", "Yes, I have a minute.", "Okay, what is this about?"];
const AGENT_MIDDLE: &[&str] = &[
    "Your plan renews next month. We can keep it as is, or move you to the annual option, which saves about fifteen percent.",
    "I can confirm your current plan and walk you through the renewal options.",
    "There is a loyalty discount available if you renew this week.",
];
const USER_MIDDLE: &[&str] = &[
    "What would the annual option cost me?",
    "Does the discount apply to the premium plan too?",
    "I was thinking about downgrading, to be honest.",
    "Can you tell me what changed in the new pricing?",
];
const GAP_TOPICS: &[&str] = &["international pricing", "data export", "family plan", "refund policy"];
const AGENT_CLOSE: &[&str] = &[
    "Thanks for your time today. Have a great day!",
    "I appreciate your time. Goodbye!",
];
const USER_CLOSE: &[&str] = &["Thanks, bye.", "Okay, talk soon.", "Alright, goodbye."];

fn pick<'a, R: Rng + ?Sized>(rng: &mut R, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

/// The user's turn that opts out of further calls in a template transcript.
pub const OPT_OUT_TEXT: &str = "Please stop calling me and remove me from your list.";

/// When the person opted out in `detail` (the opt-out turn's time), if they did.
pub fn opt_out_at(detail: &CallDetail) -> Option<DateTime<Utc>> {
    detail
        .transcript
        .iter()
        .find(|m| m.role == Role::User && m.text == OPT_OUT_TEXT)
        .map(|m| m.at)
}

/// Draws a conversation that starts at `answered_at` and lasts `talk` (already time-scaled);
/// `wants_callback` adds a callback request. Turn times are spread evenly over the talk time.
pub fn generate<R: Rng + ?Sized>(
    rng: &mut R,
    rates: TranscriptRates,
    answered_at: DateTime<Utc>,
    talk: Duration,
    wants_callback: bool,
) -> CallDetail {
    let mut turns: Vec<(Role, String)> = vec![
        (Role::Agent, pick(rng, OPENINGS).to_string()),
        (Role::User, pick(rng, USER_OPEN).to_string()),
        (Role::Agent, pick(rng, AGENT_MIDDLE).to_string()),
        (Role::User, pick(rng, USER_MIDDLE).to_string()),
    ];
    if rng.random::<f64>() < rates.knowledge_gap {
        let topic = pick(rng, GAP_TOPICS);
        turns.push((
            Role::Agent,
            format!("I'm not certain about {topic}; I'll have a colleague follow up. [KNOWLEDGE_GAP: {topic}]"),
        ));
    } else {
        turns.push((
            Role::Agent,
            "Good question: the annual plan is billed once a year at the discounted rate.".into(),
        ));
    }
    let opted_out = rng.random::<f64>() < rates.opt_out;
    let converted = !opted_out && rng.random::<f64>() < rates.conversion;
    let mut conversion_turn = None;
    if opted_out {
        turns.push((Role::User, OPT_OUT_TEXT.into()));
        turns.push((
            Role::Agent,
            "Understood, I've removed you from our calling list. Sorry for the trouble.".into(),
        ));
    } else if wants_callback {
        turns.push((Role::User, "I'm busy right now, can you call me back later?".into()));
        turns.push((Role::Agent, "Of course, we'll call you back later today.".into()));
    } else if converted {
        turns.push((Role::User, "Okay, let's go with the annual plan.".into()));
        turns.push((Role::Agent, "Great, I've switched you to the annual plan.".into()));
        conversion_turn = Some(turns.len() - 1);
    } else {
        turns.push((Role::User, "I'll think about it.".into()));
    }
    turns.push((Role::Agent, pick(rng, AGENT_CLOSE).to_string()));
    turns.push((Role::User, pick(rng, USER_CLOSE).to_string()));

    let step = talk.as_millis() as i64 / (turns.len() as i64 + 1);
    let at = |i: usize| answered_at + TimeDelta::milliseconds(step * i as i64);
    let transcript: Vec<Message> = turns
        .into_iter()
        .enumerate()
        .map(|(i, (role, text))| Message { role, text, at: at(i) })
        .collect();
    let tool_events = conversion_turn
        .map(|i| ToolEvent {
            name: "track_conversion".into(),
            arguments: if rng.random::<bool>() {
                serde_json::json!({"details": {"plan": "annual", "discount_pct": 15}})
            } else {
                serde_json::json!({"event_type": "plan_upgrade", "details": {"plan": "annual"}})
            },
            at: at(i),
        })
        .into_iter()
        .collect();
    CallDetail {
        first_agent_speech_at: transcript.iter().find(|m| m.role == Role::Agent).map(|m| m.at),
        transcript,
        tool_events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn rates_one_and_zero_control_markers_and_conversions() {
        let t0 = Utc::now();
        let mut rng = StdRng::seed_from_u64(1);
        let all = TranscriptRates {
            knowledge_gap: 1.0,
            conversion: 1.0,
            opt_out: 0.0,
        };
        let d = generate(&mut rng, all, t0, Duration::from_secs(60), false);
        assert!(d.transcript.iter().any(|m| m.text.contains("[KNOWLEDGE_GAP:")));
        assert_eq!(d.tool_events.len(), 1);
        assert!(d.transcript.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(d.transcript.last().is_some_and(|m| m.at <= t0 + TimeDelta::seconds(60)));
        let none = TranscriptRates::default();
        let d = generate(&mut rng, none, t0, Duration::from_secs(60), false);
        assert!(!d.transcript.iter().any(|m| m.text.contains("[KNOWLEDGE_GAP:")));
        assert!(d.tool_events.is_empty());
        assert_eq!(d.first_agent_speech_at, Some(d.transcript[0].at));
    }
}
