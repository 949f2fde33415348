//! The `Trunk` of a campaign with `[trunk] kind = "livekit"` (LiveKit SIP API, on `livekit-api`):
//! each attempt gets its own room, the campaign's agent is dispatched into it
//! (`AgentDispatchService.CreateDispatch`, with the call's [`DispatchMetadata`]), then the callee
//! is dialled into it (`SIP.CreateSIPParticipant` with `wait_until_answered`) by a task of its own,
//! whose answer or SIP failure goes to the [`LivekitHub`]. Answer actions: connecting the agent
//! is nothing (it is in the room already); a safe-harbor or voicemail message is asked of the agent
//! through room metadata ([`RoomAction`]) and the room is deleted after `message_timeout`; a
//! hang-up deletes the room. The caller IDs the campaign may present are its outbound trunk's
//! `numbers` (`SIP.ListSIPOutboundTrunk`). Credentials stay inside the clients: no log line or
//! error carries them.

use super::calls::{self, CALLEE_IDENTITY, DispatchMetadata, RoomAction};
use super::hub::{DialResult, LivekitHub};
use crate::campaign::livekit_file::LivekitFile;
use crate::core::{AnswerAction, AttemptKey, EndReason};
use crate::settings::LivekitSettings;
use crate::trunk::{DialRequest, OpenCall, Recovered, Trunk, TrunkError, TrunkEvent};
use async_trait::async_trait;
use chrono::Utc;
use livekit_api::services::agent_dispatch::AgentDispatchClient;
use livekit_api::services::room::RoomClient;
use livekit_api::services::sip::{CreateSIPParticipantOptions, ListSIPOutboundTrunkFilter, SIPClient};
use livekit_api::services::{ServerError, ServiceError, SipCallError};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Why the LiveKit account could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LivekitError {
    /// A setting is missing (`[livekit] url`, `api_key` or `api_secret`).
    #[error("[livekit] {0} is not set (or DIALERD__LIVEKIT__{upper})", upper = .0.to_uppercase())]
    Missing(&'static str),
}

/// The API clients of one LiveKit project, shared by its campaigns.
struct Clients {
    sip: SIPClient,
    dispatch: AgentDispatchClient,
    rooms: RoomClient,
}

/// What every LiveKit campaign of the daemon shares: the project's API clients and the hub the
/// listener delivers verified webhooks to.
#[derive(Clone)]
pub struct LivekitAccount {
    clients: Arc<Clients>,
    /// The listener's webhook hub.
    pub hub: Arc<LivekitHub>,
}

impl LivekitAccount {
    /// The account of `settings`, its webhooks routed by `hub`.
    ///
    /// Errors: [`LivekitError::Missing`] when the URL, key or secret is unset or empty.
    pub fn new(settings: &LivekitSettings, hub: Arc<LivekitHub>) -> Result<LivekitAccount, LivekitError> {
        let url = settings
            .url
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or(LivekitError::Missing("url"))?;
        let key = settings
            .api_key
            .as_ref()
            .filter(|k| !k.expose().is_empty())
            .ok_or(LivekitError::Missing("api_key"))?;
        let secret = settings
            .api_secret
            .as_ref()
            .filter(|s| !s.expose().is_empty())
            .ok_or(LivekitError::Missing("api_secret"))?;
        let (k, s) = (key.expose(), secret.expose());
        let clients = Clients {
            sip: SIPClient::with_api_key(url, k, s).with_request_timeout(settings.timeout),
            dispatch: AgentDispatchClient::with_api_key(url, k, s),
            rooms: RoomClient::with_api_key(url, k, s),
        };
        Ok(LivekitAccount {
            clients: Arc::new(clients),
            hub,
        })
    }

    /// The trunk of `campaign` on this project, placing calls as `file` says.
    pub fn trunk(&self, campaign: &str, file: &LivekitFile, events: mpsc::Sender<TrunkEvent>) -> LivekitTrunk {
        let generation = self.hub.register(campaign, file.room_prefix(), events);
        LivekitTrunk {
            clients: Arc::clone(&self.clients),
            hub: Arc::clone(&self.hub),
            generation,
            campaign: campaign.to_string(),
            file: file.clone(),
            calls: Arc::new(Mutex::new(Calls::default())),
        }
    }
}

/// What the trunk remembers of a call it placed.
#[derive(Debug)]
struct Placed {
    voicemail: Option<String>,
    safe_harbor: Option<String>,
    ending: bool,
}

/// How long the trunk remembers a call it placed, so that answer actions find it: longer than
/// any call lasts (LiveKit ends a call after `max_call_duration`).
pub const CALL_MEMORY: Duration = Duration::from_secs(25 * 3600);

/// The calls placed, and the order they expire in.
#[derive(Default)]
struct Calls {
    by_room: HashMap<String, Placed>,
    placed: VecDeque<(Instant, String)>,
}

impl Calls {
    fn insert(&mut self, room: String, placed: Placed, now: Instant) {
        while let Some((at, _)) = self.placed.front()
            && now.duration_since(*at) > CALL_MEMORY
        {
            if let Some((_, old)) = self.placed.pop_front() {
                self.by_room.remove(&old);
            }
        }
        self.placed.push_back((now, room.clone()));
        self.by_room.insert(room, placed);
    }

    fn remove(&mut self, room: &str) {
        self.by_room.remove(room);
    }

    fn get_mut(&mut self, room: &str) -> Option<&mut Placed> {
        self.by_room.get_mut(room)
    }
}

/// A campaign's LiveKit trunk.
pub struct LivekitTrunk {
    clients: Arc<Clients>,
    hub: Arc<LivekitHub>,
    generation: u64,
    campaign: String,
    file: LivekitFile,
    calls: Arc<Mutex<Calls>>,
}

impl Drop for LivekitTrunk {
    fn drop(&mut self) {
        self.hub.unregister_generation(&self.campaign, self.generation);
    }
}

/// The end reason of a failed `CreateSIPParticipant`: the SIP status LiveKit attached, else the
/// Twirp code, else a client-side timeout (no answer within the ringing timeout) or a failure.
pub fn dial_error_reason(e: &ServiceError) -> EndReason {
    if let Some(sip) = SipCallError::from_error(e) {
        return calls::end_reason(sip.sip_status_code(), sip.code());
    }
    match e {
        ServiceError::Twirp(ServerError::Twirp(code)) => calls::end_reason(None, &code.code),
        ServiceError::Twirp(ServerError::Request(r)) if r.is_timeout() => EndReason::NoAnswer,
        _ => EndReason::Failed,
    }
}

/// A refused request as a [`TrunkError`]: a Twirp 4xx-class code will fail again
/// (`Rejected`), a transport error or a 5xx-class code may not (`Unavailable`).
fn trunk_error(what: &str, e: &ServiceError) -> TrunkError {
    let msg = format!("LiveKit {what}: {e}");
    match e {
        ServiceError::Twirp(ServerError::Twirp(c))
            if !matches!(
                c.code.as_str(),
                "unavailable" | "internal" | "resource_exhausted" | "unknown"
            ) =>
        {
            TrunkError::Rejected(msg)
        }
        _ => TrunkError::Unavailable(msg),
    }
}

/// The `numbers` not among `trunk_numbers` (an outbound trunk's `numbers`, which an empty list
/// leaves open to any number), each once, in the order given.
fn unowned_on_trunk(trunk_numbers: &[String], numbers: &[String]) -> Vec<String> {
    if trunk_numbers.is_empty() {
        return Vec::new();
    }
    let mut seen = std::collections::HashSet::new();
    numbers
        .iter()
        .filter(|n| seen.insert(n.as_str()) && !trunk_numbers.contains(n))
        .cloned()
        .collect()
}

impl LivekitTrunk {
    fn with_calls<T>(&self, f: impl FnOnce(&mut Calls) -> T) -> Result<T, TrunkError> {
        let mut calls = self
            .calls
            .lock()
            .map_err(|_| TrunkError::Unavailable("LiveKit call table poisoned".into()))?;
        Ok(f(&mut calls))
    }

    /// The dial options for `req` (LiveKit SIP API `CreateSIPParticipant`).
    pub fn sip_options(&self, req: &DialRequest, metadata: &str) -> CreateSIPParticipantOptions {
        CreateSIPParticipantOptions {
            participant_identity: CALLEE_IDENTITY.to_string(),
            participant_name: Some(format!("contact {}", req.key.contact)),
            participant_metadata: Some(metadata.to_string()),
            sip_number: Some(req.from.clone()),
            wait_until_answered: Some(true),
            ringing_timeout: Some(req.ring_timeout),
            max_call_duration: self.file.max_call_duration,
            ..Default::default()
        }
    }

    /// Dials `to` into `room` and reports the answer or the failure to the hub; a failed dial's
    /// room is deleted so the dispatched agent leaves.
    async fn place(
        clients: Arc<Clients>,
        hub: Arc<LivekitHub>,
        calls: Arc<Mutex<Calls>>,
        (campaign, trunk_id, room, key): (String, String, String, AttemptKey),
        to: String,
        options: CreateSIPParticipantOptions,
    ) {
        let result = clients
            .sip
            .create_sip_participant(trunk_id, to, room.clone(), options, None)
            .await;
        let result = match result {
            Ok(_) => DialResult::Answered,
            Err(e) => {
                let reason = dial_error_reason(&e);
                let sip = SipCallError::from_error(&e).and_then(|s| s.sip_status_code());
                debug!(campaign = %campaign, contact = key.contact, attempt = key.attempt, call_id = %room,
                    sip_status_code = ?sip, reason = ?reason, error = %e, "LiveKit dial ended without an answer.");
                if let Err(e) = clients.rooms.delete_room(&room).await {
                    debug!(campaign = %campaign, call_id = %room, error = %e, "Could not delete the room of a failed dial.");
                }
                if let Ok(mut c) = calls.lock() {
                    c.remove(&room);
                }
                DialResult::Ended(reason)
            }
        };
        if let Err(e) = hub.dial_result(&campaign, &room, key, result, Utc::now()).await {
            debug!(campaign = %campaign, call_id = %room, error = %e, "Dial result not delivered.");
        }
    }

    /// Deletes `room` after `after` (the message's time), in the background.
    fn delete_later(&self, room: &str, after: Duration) {
        let clients = Arc::clone(&self.clients);
        let calls = Arc::clone(&self.calls);
        let (room, campaign) = (room.to_string(), self.campaign.clone());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Err(e) = clients.rooms.delete_room(&room).await {
                warn!(campaign = %campaign, call_id = %room, error = %e, "Could not delete the room after its message.");
            }
            if let Ok(mut c) = calls.lock() {
                c.remove(&room);
            }
        });
    }
}

#[async_trait]
impl Trunk for LivekitTrunk {
    async fn dial(&self, req: DialRequest) -> Result<String, TrunkError> {
        let room = calls::room_name(self.file.room_prefix(), &req.campaign, req.key);
        let metadata = DispatchMetadata {
            campaign: req.campaign.clone(),
            contact: req.key.contact,
            attempt: req.key.attempt,
            call_id: room.clone(),
            agent_id: req.agent_id.clone(),
            phone: req.to.clone(),
            safe_harbor_message: req.safe_harbor_message.clone(),
            voicemail_message: req.voicemail_message.clone(),
        };
        let metadata = serde_json::to_string(&metadata).map_err(|e| TrunkError::Rejected(e.to_string()))?;
        self.hub
            .dialing(&self.campaign, &room)
            .await
            .map_err(|e| TrunkError::Unavailable(e.to_string()))?;
        let dispatch = livekit_protocol::CreateAgentDispatchRequest {
            agent_name: self.file.agent_name.clone(),
            room: room.clone(),
            metadata: metadata.clone(),
            ..Default::default()
        };
        if let Err(e) = self.clients.dispatch.create_dispatch(dispatch).await {
            self.hub.forget(&self.campaign, &room).await;
            warn!(campaign = %self.campaign, contact = req.key.contact, attempt = req.key.attempt, error = %e,
                "LiveKit refused the agent dispatch; the call is not placed.");
            return Err(match trunk_error("agent dispatch", &e) {
                // No SIP call exists before the dispatch: a transient refusal is retried later
                // without counting an attempt.
                TrunkError::Unavailable(reason) => TrunkError::NotPlaced {
                    reason,
                    retry_after: None,
                },
                other => other,
            });
        }
        self.with_calls(|c| {
            c.insert(
                room.clone(),
                Placed {
                    voicemail: req.voicemail_message.clone(),
                    safe_harbor: req.safe_harbor_message.clone(),
                    ending: false,
                },
                Instant::now(),
            )
        })?;
        let options = self.sip_options(&req, &metadata);
        tokio::spawn(Self::place(
            Arc::clone(&self.clients),
            Arc::clone(&self.hub),
            Arc::clone(&self.calls),
            (
                self.campaign.clone(),
                self.file.sip_trunk_id.clone(),
                room.clone(),
                req.key,
            ),
            req.to,
            options,
        ));
        Ok(room)
    }

    async fn act(&self, call_id: &str, action: AnswerAction) -> Result<(), TrunkError> {
        let message = self.with_calls(|c| {
            let placed = c.get_mut(call_id)?;
            if placed.ending || action == AnswerAction::ConnectAgent {
                return Some(None);
            }
            placed.ending = true;
            Some(Some(match action {
                AnswerAction::PlaySafeHarbor => placed.safe_harbor.clone().map(|m| ("safe_harbor", m)),
                AnswerAction::LeaveVoicemail => placed.voicemail.clone().map(|m| ("voicemail", m)),
                AnswerAction::Hangup | AnswerAction::ConnectAgent => None,
            }))
        })?;
        let Some(message) = message.ok_or_else(|| TrunkError::Rejected(format!("no call {call_id}")))? else {
            return Ok(());
        };
        match message {
            Some((action, message)) => {
                let json = serde_json::to_string(&RoomAction {
                    action: action.into(),
                    message,
                })
                .map_err(|e| TrunkError::Rejected(e.to_string()))?;
                self.clients
                    .rooms
                    .update_room_metadata(call_id, &json)
                    .await
                    .map_err(|e| trunk_error("room metadata", &e))?;
                info!(campaign = %self.campaign, call_id, action, "Asked the agent to play its message; the room is deleted after message_timeout.");
                self.delete_later(call_id, self.file.message_timeout());
            }
            None => {
                self.clients
                    .rooms
                    .delete_room(call_id)
                    .await
                    .map_err(|e| trunk_error("delete room", &e))?;
                self.with_calls(|c| c.remove(call_id))?;
            }
        }
        Ok(())
    }

    /// The numbers not on the `numbers` of the campaign's outbound trunk (`sip_trunk_id`), read
    /// with `SIP.ListSIPOutboundTrunk` (every outbound trunk of the project: `livekit-api` sends
    /// no filter); a trunk with no `numbers` presents any number (`Some` of none).
    ///
    /// Errors: as any LiveKit request ([`TrunkError::Rejected`] for a refusal that will happen
    /// again, [`TrunkError::Unavailable`] otherwise); [`TrunkError::Rejected`] when the project has
    /// no outbound trunk `sip_trunk_id`.
    async fn unowned_caller_ids(&self, numbers: &[String]) -> Result<Option<Vec<String>>, TrunkError> {
        let trunks = self
            .clients
            .sip
            .list_sip_outbound_trunk(ListSIPOutboundTrunkFilter::All)
            .await
            .map_err(|e| {
                warn!(campaign = %self.campaign, error = %e, "Could not list LiveKit's outbound SIP trunks.");
                trunk_error("list outbound SIP trunks", &e)
            })?;
        let id = &self.file.sip_trunk_id;
        let Some(trunk) = trunks.iter().find(|t| t.sip_trunk_id == *id) else {
            return Err(TrunkError::Rejected(format!("LiveKit has no outbound SIP trunk {id}")));
        };
        Ok(Some(unowned_on_trunk(&trunk.numbers, numbers)))
    }

    async fn recover(&self, call: &OpenCall) -> Recovered {
        // The room is named after the attempt, so it is found even when the dial's answer was
        // never stored.
        let room = call
            .call_id
            .clone()
            .unwrap_or_else(|| calls::room_name(self.file.room_prefix(), &call.campaign, call.key));
        let participants = match self.clients.rooms.list_participants(&room).await {
            Ok(ps) => ps,
            Err(e) => {
                warn!(campaign = %self.campaign, call_id = %room, error = %e, "Could not look the room up at LiveKit.");
                return Recovered::Unknown;
            }
        };
        let Some(callee) = participants.iter().find(|p| p.identity == CALLEE_IDENTITY) else {
            // No callee in the room: the call is over (or never rang), and LiveKit keeps no
            // record of how it ended.
            return Recovered::Unknown;
        };
        let answered = callee
            .attributes
            .get(calls::SIP_CALL_STATUS)
            .is_some_and(|s| s == "active");
        if !answered {
            // Still ringing, and the dial task that would report its answer died with the
            // earlier run: end it rather than leave a call nobody follows.
            if let Err(e) = self.clients.rooms.delete_room(&room).await {
                warn!(campaign = %self.campaign, call_id = %room, error = %e, "Could not end a recovered LiveKit call that was still ringing.");
            }
            return Recovered::Unknown;
        }
        let placed = Placed {
            voicemail: call.voicemail_message.clone(),
            safe_harbor: call.safe_harbor_message.clone(),
            ending: false,
        };
        // A room this process placed keeps its own messages; one from an earlier run is tracked
        // with the stored attempt's.
        let tracked = self.with_calls(|c| {
            if !c.by_room.contains_key(&room) {
                c.insert(room.clone(), placed, Instant::now());
            }
        });
        if tracked.is_err() {
            return Recovered::Unknown;
        }
        // The hub takes a room it does not track as answered, so the callee leaving ends it.
        Recovered::Live {
            call_id: room,
            answered: true,
            amd: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unowned_on_trunk;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn numbers_off_the_trunk_s_list_are_unowned_once_each_in_order() {
        let trunk = v(&["+14155550100", "+14155550101"]);
        let asked = v(&["+14155550199", "+14155550100", "+14155550198", "+14155550199"]);
        assert_eq!(unowned_on_trunk(&trunk, &asked), v(&["+14155550199", "+14155550198"]));
        assert!(unowned_on_trunk(&trunk, &v(&["+14155550101"])).is_empty());
        // A trunk without numbers presents any.
        assert!(unowned_on_trunk(&[], &asked).is_empty());
    }
}
