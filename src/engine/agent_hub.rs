//! Where the voice agent's events go: the hub knows every live call by its stable id
//! (`c<contact>a<attempt>`) and by its trunk's own id, accumulates the conversation the agent
//! reports (transcript turns, tool calls, first agent speech) until the runner takes it with the
//! call's end, sends the core events the agent's events imply (`OptOut`, `CallbackRequested`,
//! `AgentSpoke`, `AmdVerdict`) on the owning campaign's trunk event channel, and hangs the call up
//! on `end_call` (`Trunk::act(call_id, Hangup)`). Ended calls are remembered for
//! [`ENDED_MEMORY`], so a late event is told the call is over rather than unknown.

use crate::call::{AgentEvent, AgentEventKind, AnsweredBy, CallDetail, CallRecord, Message, Role, ToolEvent};
use crate::core::{AnswerAction, AnswerKind, AttemptKey, CallEvent};
use crate::trunk::{Trunk, TrunkEvent};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// How long an ended call is remembered, so its late events answer "ended" (409), not "unknown".
pub const ENDED_MEMORY: TimeDelta = TimeDelta::hours(1);

/// Why agent events were not taken. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum AgentHubError {
    /// No live or recently ended call has this id.
    #[error("no call `{0}` is live here")]
    UnknownCall(String),
    /// Two live calls have this trunk call id; the stable id names each.
    #[error("trunk call id `{0}` names more than one live call; use the stable id c<contact>a<attempt>")]
    Ambiguous(String),
    /// The call has ended; its record is written.
    #[error("call `{0}` has ended")]
    Ended(String),
    /// The call's campaign runner has stopped.
    #[error("the campaign of call `{0}` is stopping")]
    Stopped(String),
}

/// What a delivery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Events taken.
    pub accepted: usize,
    /// Events ignored because their `id` was already taken for this call.
    pub duplicates: usize,
}

struct Route {
    events: mpsc::Sender<TrunkEvent>,
    trunk: Arc<dyn Trunk>,
}

struct LiveCall {
    campaign: String,
    key: AttemptKey,
    trunk_call_id: String,
    detail: CallDetail,
    seen: HashSet<String>,
    ended: bool,
}

#[derive(Default)]
struct Inner {
    campaigns: HashMap<String, Arc<Route>>,
    /// Stable id and trunk id → stable id; `None` for a trunk id two live calls share (two sim
    /// trunks both number their calls from 1): such a call is reached by its stable id only.
    ids: HashMap<String, Option<String>>,
    calls: HashMap<String, LiveCall>,
    ended: VecDeque<(DateTime<Utc>, String)>,
}

impl Inner {
    fn forget_before(&mut self, cutoff: DateTime<Utc>) {
        while let Some((at, _)) = self.ended.front()
            && *at < cutoff
        {
            if let Some((_, id)) = self.ended.pop_front()
                && let Some(call) = self.calls.remove(&id)
            {
                if self.ids.get(&call.trunk_call_id) == Some(&Some(id.clone())) {
                    self.ids.remove(&call.trunk_call_id);
                }
                self.ids.remove(&id);
            }
        }
    }
}

/// Routes the voice agent's events to the campaigns' runners.
#[derive(Default)]
pub struct AgentHub {
    inner: Mutex<Inner>,
}

impl AgentHub {
    /// A hub with no campaign and no call.
    pub fn new() -> AgentHub {
        AgentHub::default()
    }

    /// Routes the events of `campaign`'s calls to `events` (the channel its trunk reports on) and
    /// their `end_call` to `trunk`, replacing an earlier registration.
    pub fn register_campaign(&self, campaign: &str, events: mpsc::Sender<TrunkEvent>, trunk: Arc<dyn Trunk>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner
                .campaigns
                .insert(campaign.to_string(), Arc::new(Route { events, trunk }));
        }
    }

    /// Makes a call known (idempotent): its stable id and `trunk_call_id` both name it from now on.
    pub fn open_call(&self, campaign: &str, key: AttemptKey, trunk_call_id: &str, now: DateTime<Utc>) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let id = CallRecord::id_for(key.contact, key.attempt);
        if inner.calls.get(&id).is_some_and(|c| c.trunk_call_id == trunk_call_id) {
            return;
        }
        inner.forget_before(now - ENDED_MEMORY);
        inner.ids.insert(id.clone(), Some(id.clone()));
        let shared = inner
            .ids
            .get(trunk_call_id)
            .and_then(|other| other.as_ref())
            .is_some_and(|other| *other != id && inner.calls.get(other).is_some_and(|c| !c.ended));
        let alias = if shared { None } else { Some(id.clone()) };
        inner.ids.insert(trunk_call_id.to_string(), alias);
        inner.calls.insert(
            id,
            LiveCall {
                campaign: campaign.to_string(),
                key,
                trunk_call_id: trunk_call_id.to_string(),
                detail: CallDetail::default(),
                seen: HashSet::new(),
                ended: false,
            },
        );
    }

    /// Marks the call `key` ended at `now` and returns the conversation its agent reported,
    /// `None` when it reported none. Later events for it are refused as ended.
    pub fn take_detail(&self, key: AttemptKey, now: DateTime<Utc>) -> Option<CallDetail> {
        let mut inner = self.inner.lock().ok()?;
        let id = CallRecord::id_for(key.contact, key.attempt);
        let call = inner.calls.get_mut(&id)?;
        if call.ended {
            return None;
        }
        call.ended = true;
        let detail = std::mem::take(&mut call.detail);
        inner.ended.push_back((now, id));
        let empty = detail.transcript.is_empty() && detail.tool_events.is_empty();
        (!empty).then_some(detail)
    }

    /// Takes `events` for the call `call_id` (stable or trunk id), received at `received` (UTC):
    /// turns and tool calls join its conversation, and the core events they imply go to its
    /// runner in order; `end_call` then hangs up. Events whose `id` was taken before are skipped.
    ///
    /// Errors: [`AgentHubError`], before anything is changed.
    pub async fn deliver(
        &self,
        call_id: &str,
        events: Vec<AgentEvent>,
        received: DateTime<Utc>,
    ) -> Result<Delivered, AgentHubError> {
        let (route, key, trunk_call_id, core, hangup, delivered, campaign) = {
            let mut inner = self.inner.lock().map_err(|_| AgentHubError::Stopped(call_id.into()))?;
            let id = match inner.ids.get(call_id) {
                Some(Some(id)) => id.clone(),
                Some(None) => return Err(AgentHubError::Ambiguous(call_id.into())),
                None => return Err(AgentHubError::UnknownCall(call_id.into())),
            };
            let (campaign, ended) = match inner.calls.get(&id) {
                Some(c) => (c.campaign.clone(), c.ended),
                None => return Err(AgentHubError::UnknownCall(call_id.into())),
            };
            if ended {
                return Err(AgentHubError::Ended(call_id.into()));
            }
            let route = inner
                .campaigns
                .get(&campaign)
                .cloned()
                .ok_or_else(|| AgentHubError::Stopped(call_id.into()))?;
            let call = inner
                .calls
                .get_mut(&id)
                .ok_or_else(|| AgentHubError::UnknownCall(call_id.into()))?;
            let mut core = Vec::new();
            let mut hangup = false;
            let mut d = Delivered {
                accepted: 0,
                duplicates: 0,
            };
            for ev in events {
                if let Some(eid) = &ev.id
                    && !call.seen.insert(eid.clone())
                {
                    d.duplicates += 1;
                    continue;
                }
                d.accepted += 1;
                let at = ev.at.unwrap_or(received);
                match ev.kind {
                    AgentEventKind::AgentSpeech { text } => {
                        if call.detail.first_agent_speech_at.is_none() {
                            call.detail.first_agent_speech_at = Some(at);
                            core.push((at, CallEvent::AgentSpoke(at)));
                        }
                        call.detail.transcript.push(Message {
                            role: Role::Agent,
                            text,
                            at,
                        });
                    }
                    AgentEventKind::MessageReceived { text } => call.detail.transcript.push(Message {
                        role: Role::User,
                        text,
                        at,
                    }),
                    AgentEventKind::TrackConversion { event_type, details } => {
                        let mut arguments = serde_json::json!({ "details": details });
                        if let Some(t) = event_type {
                            arguments["event_type"] = serde_json::Value::String(t);
                        }
                        call.detail.tool_events.push(ToolEvent {
                            name: "track_conversion".into(),
                            arguments,
                            at,
                        });
                    }
                    AgentEventKind::OptOut => core.push((at, CallEvent::OptOut)),
                    AgentEventKind::CallbackRequested { callback_at: None } => {
                        core.push((at, CallEvent::CallbackRequested))
                    }
                    AgentEventKind::CallbackRequested { callback_at: Some(t) } => {
                        core.push((at, CallEvent::CallbackRequestedAt(t)))
                    }
                    AgentEventKind::AnsweredBy(by) => {
                        let kind = match by {
                            AnsweredBy::Human => AnswerKind::Human,
                            AnsweredBy::Machine => AnswerKind::Machine,
                        };
                        core.push((at, CallEvent::AmdVerdict(kind)));
                    }
                    AgentEventKind::EndCall => hangup = true,
                }
            }
            call.detail.transcript.sort_by_key(|m| m.at);
            call.detail.tool_events.sort_by_key(|t| t.at);
            let trunk_call_id = call.trunk_call_id.clone();
            (route, call.key, trunk_call_id, core, hangup, d, campaign)
        };
        for (at, event) in core {
            let ev = TrunkEvent {
                key,
                call_id: trunk_call_id.clone(),
                at,
                event,
                detail: None,
            };
            route
                .events
                .send(ev)
                .await
                .map_err(|_| AgentHubError::Stopped(call_id.into()))?;
        }
        if hangup {
            info!(campaign = %campaign, contact = key.contact, attempt = key.attempt, outcome = "agent_hangup",
                "The voice agent ended the call.");
            if let Err(e) = route.trunk.act(&trunk_call_id, AnswerAction::Hangup).await {
                warn!(campaign = %campaign, contact = key.contact, attempt = key.attempt, error = %e,
                    "Trunk refused the agent's hang-up.");
            }
        }
        Ok(delivered)
    }
}
