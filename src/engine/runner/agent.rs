//! The runner's edge to the voice agent: live calls are made known to the [`AgentHub`] as soon
//! as the trunk reports them, and at a call's end the conversation the agent reported is merged
//! into the trunk's detail and the answer → first agent speech latency is queued for the attempt
//! (with whether the 2 s rule of 16 CFR 310.4(b)(4)(i) made the call abandoned), before the core
//! sees the end.
//!
//! [`AgentHub`]: crate::engine::agent_hub::AgentHub

use super::Runner;
use crate::core::{CallEvent, Phase};
use crate::store::CallWrite;
use crate::trunk::TrunkEvent;
use chrono::{DateTime, Utc};
use tracing::info;

impl Runner {
    /// Called with every trunk event before the core handles it.
    pub(super) fn agent_edges(&mut self, ev: &mut TrunkEvent, now: DateTime<Utc>) {
        let key = ev.key;
        match ev.event {
            CallEvent::Ringing | CallEvent::Answered(_) => {
                if let Some(hub) = &self.agents {
                    hub.open_call(&self.campaign.id, key, &ev.call_id, now);
                }
            }
            CallEvent::Ended(_) => {
                let Some(call) = self.dialer.call(key.contact).filter(|c| c.attempt == key.attempt) else {
                    return;
                };
                if call.phase == Phase::Talking {
                    let latency_ms = call.speech_latency_ms();
                    let silence_abandoned = call.abandoned_for_silence(now);
                    if silence_abandoned {
                        info!(campaign = %self.campaign.id, contact = key.contact, attempt = key.attempt,
                            outcome = "abandoned_silence", speech_latency_ms = latency_ms,
                            "The agent did not speak within 2 s of the answer: the call counts as abandoned (16 CFR 310.4(b)(4)(i)).");
                    }
                    self.writes.push(CallWrite::Speech {
                        key,
                        latency_ms,
                        silence_abandoned,
                    });
                }
                if let Some(agent) = self.agents.as_ref().and_then(|h| h.take_detail(key, now)) {
                    let trunk = ev.detail.take().map(|d| *d).unwrap_or_default();
                    ev.detail = Some(Box::new(trunk.merge(agent)));
                }
            }
            _ => {}
        }
    }
}
