//! The `Trunk` of a campaign with `[trunk] kind = "twilio"`: places each call with its TwiML
//! and callback URLs, carries out the core's answer actions as call updates (the core decides
//! on AMD verdicts, which reach it as `AmdVerdict` events; the trunk only guarantees that the
//! voicemail message is played after a `machine_end_*` verdict, and hangs up otherwise), and
//! looks calls up at Twilio after a restart, and tells which caller IDs the account may not
//! present. Events come back through the [`TwilioHub`] from the listener's verified callbacks.

use super::callbacks::CallbackTarget;
use super::client::{CallUpdate, CreateCall, Instructions, MachineDetection, TwilioClient};
use super::hub::TwilioHub;
use super::limits::AccountLimits;
use super::twiml::{self, AgentConnect, Announcement, CallParameters};
use crate::api::twilio::{AMD_PATH, RECORDING_PATH, STATUS_PATH};
use crate::core::{AnswerAction, VoicemailAction};
use crate::trunk::{DialRequest, OpenCall, Recovered, Trunk, TrunkError, TrunkEvent};
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::warn;

/// What the trunk remembers of a call it placed: the messages it may play, and whether an
/// action that ends the call was already taken (so a second one sends nothing).
#[derive(Debug)]
struct Placed {
    voicemail: Option<String>,
    safe_harbor: Option<String>,
    ending: bool,
}

/// How long the trunk remembers a call it placed: Twilio ends every call after `TimeLimit`,
/// 4 hours by default, so an older entry can only be a call whose end the trunk never needed.
pub const CALL_MEMORY: std::time::Duration = std::time::Duration::from_secs(5 * 3600);

/// The calls placed, and the order they expire in.
#[derive(Default)]
struct Calls {
    by_sid: HashMap<String, Placed>,
    placed: VecDeque<(Instant, String)>,
}

impl Calls {
    fn insert(&mut self, sid: String, placed: Placed, now: Instant) {
        while let Some((at, _)) = self.placed.front()
            && now.duration_since(*at) > CALL_MEMORY
        {
            if let Some((_, old)) = self.placed.pop_front() {
                self.by_sid.remove(&old);
            }
        }
        self.placed.push_back((now, sid.clone()));
        self.by_sid.insert(sid, placed);
    }
}

struct Inner {
    client: TwilioClient,
    campaign: String,
    calls: Mutex<Calls>,
    hub: Arc<TwilioHub>,
}

/// A campaign's Twilio trunk.
pub struct TwilioTrunk {
    inner: Arc<Inner>,
    hub: Arc<TwilioHub>,
    generation: u64,
    public_url: String,
    connect: AgentConnect,
    voicemail: VoicemailAction,
    limits: Option<Arc<AccountLimits>>,
    shared: Option<crate::core::AccountLimit>,
    record: bool,
}

impl TwilioTrunk {
    /// A trunk for `campaign` dialing through `client`, with callbacks at `public_url` routed by
    /// `hub` onto `events` (AMD verdicts included, as `AmdVerdict` events); answered calls reach
    /// the agent by `connect`; `voicemail` picks the AMD mode.
    pub fn new(
        campaign: &str,
        client: TwilioClient,
        hub: Arc<TwilioHub>,
        public_url: &str,
        connect: AgentConnect,
        voicemail: VoicemailAction,
        events: mpsc::Sender<TrunkEvent>,
    ) -> TwilioTrunk {
        let generation = hub.register(campaign, events);
        let inner = Arc::new(Inner {
            client,
            campaign: campaign.to_string(),
            calls: Mutex::new(Calls::default()),
            hub: Arc::clone(&hub),
        });
        TwilioTrunk {
            inner,
            hub,
            generation,
            public_url: public_url.trim_end_matches('/').to_string(),
            connect,
            voicemail,
            limits: None,
            shared: None,
            record: false,
        }
    }

    /// Records every call (`[trunk] record = true`), with its recording callback.
    pub fn with_record(mut self, record: bool) -> TwilioTrunk {
        self.record = record;
        self
    }

    /// This trunk under the account's shared `limits` (by default it has none).
    pub fn with_limits(mut self, limits: Arc<AccountLimits>) -> TwilioTrunk {
        self.limits = Some(limits);
        self
    }

    /// This trunk under the account's limits shared with other nodes through the store.
    pub fn with_shared_limit(mut self, shared: crate::core::AccountLimit) -> TwilioTrunk {
        self.shared = Some(shared);
        self
    }

    /// Remembers `sid`'s messages, for the answer actions.
    fn remember(&self, sid: &str, voicemail: Option<String>, safe_harbor: Option<String>) -> Result<(), TrunkError> {
        let placed = Placed {
            voicemail,
            safe_harbor,
            ending: false,
        };
        self.inner
            .calls
            .lock()
            .map_err(|_| TrunkError::Unavailable("Twilio call table poisoned".into()))?
            .insert(sid.to_string(), placed, Instant::now());
        Ok(())
    }

    fn callback(&self, path: &str, target: &CallbackTarget) -> String {
        let query = serde_urlencoded::to_string([
            ("campaign", target.campaign.clone()),
            ("contact", target.contact.to_string()),
            ("attempt", target.attempt.to_string()),
        ])
        .unwrap_or_default();
        format!("{}{path}?{query}", self.public_url)
    }

    /// The `Calls.json` request for `req`.
    pub fn create_request(&self, req: &DialRequest) -> CreateCall {
        let target = CallbackTarget {
            campaign: req.campaign.clone(),
            contact: req.key.contact,
            attempt: req.key.attempt,
        };
        let params = CallParameters {
            campaign: req.campaign.clone(),
            contact: req.key.contact,
            attempt: req.key.attempt,
            agent_id: req.agent_id.clone(),
        };
        let instructions = match (&self.connect, twiml::connect(&self.connect, &params)) {
            (_, Some(t)) => Instructions::Twiml(t),
            (AgentConnect::Url { url }, None) => Instructions::Url(url.clone()),
            (_, None) => Instructions::Twiml(twiml::hangup()),
        };
        CreateCall {
            to: req.to.clone(),
            from: req.from.clone(),
            ring_timeout: req.ring_timeout,
            status_callback: self.callback(STATUS_PATH, &target),
            machine_detection: match self.voicemail {
                VoicemailAction::LeaveMessage => MachineDetection::DetectMessageEnd,
                VoicemailAction::Hangup => MachineDetection::Enable,
            },
            amd_callback: self.callback(AMD_PATH, &target),
            recording_callback: self.record.then(|| self.callback(RECORDING_PATH, &target)),
            instructions,
        }
    }
}

impl Drop for TwilioTrunk {
    fn drop(&mut self) {
        self.hub.unregister_generation(&self.inner.campaign, self.generation);
    }
}

impl Inner {
    /// Carries out `action` on `sid`. The voicemail message is played only once the call's
    /// verdict is `machine_end_*` (the greeting is over); on any other verdict (`fax`), or none,
    /// a `LeaveVoicemail` hangs up instead and the call ends `machine`. A second ending action
    /// sends nothing.
    async fn act(&self, sid: &str, action: AnswerAction) -> Result<(), TrunkError> {
        let action = match action {
            AnswerAction::LeaveVoicemail => match self.hub.amd_verdict(&self.campaign, sid).await {
                Some(v) if v.greeting_over() => AnswerAction::LeaveVoicemail,
                _ => {
                    // The call's end then reads as a voicemail cut short: `machine`.
                    self.hub.message_refused(&self.campaign, sid).await;
                    AnswerAction::Hangup
                }
            },
            a => a,
        };
        let update = {
            let mut calls = self
                .calls
                .lock()
                .map_err(|_| TrunkError::Unavailable("Twilio call table poisoned".into()))?;
            let Some(placed) = calls.by_sid.get_mut(sid) else {
                return Err(TrunkError::Rejected(format!("no call {sid}")));
            };
            if placed.ending {
                return Ok(());
            }
            let say = |m: &Option<String>| {
                m.as_ref()
                    .map(|m| CallUpdate::Twiml(twiml::announce_then_hangup(&Announcement::Say(m.clone()))))
                    .unwrap_or(CallUpdate::Complete)
            };
            let update = match action {
                AnswerAction::ConnectAgent => None,
                AnswerAction::PlaySafeHarbor => Some(say(&placed.safe_harbor)),
                AnswerAction::LeaveVoicemail => Some(say(&placed.voicemail)),
                AnswerAction::Hangup => Some(CallUpdate::Complete),
            };
            if update.is_some() {
                placed.ending = true;
            }
            update
        };
        match update {
            Some(u) => self
                .client
                .update_call(sid, &u)
                .await
                .map(|_| ())
                .map_err(TrunkError::from),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Trunk for TwilioTrunk {
    async fn dial(&self, req: DialRequest) -> Result<String, TrunkError> {
        if let Some(limits) = &self.limits {
            limits.admit(&self.hub)?;
        }
        let create = self.create_request(&req);
        let call = self.inner.client.create_call(&create).await.map_err(|e| {
            warn!(campaign = %req.campaign, contact = req.key.contact, attempt = req.key.attempt,
                code = e.code(), retryable = e.is_retryable(), never_created = e.never_created(),
                "Twilio refused the call.");
            TrunkError::from(e)
        })?;
        self.hub.placed(&call.sid);
        self.remember(&call.sid, req.voicemail_message, req.safe_harbor_message)?;
        Ok(call.sid)
    }

    async fn act(&self, call_id: &str, action: AnswerAction) -> Result<(), TrunkError> {
        self.inner.act(call_id, action).await
    }

    /// Each distinct number asked of Twilio once, one after the other ([`TwilioClient::may_present`]:
    /// an IncomingPhoneNumber of the account, else a verified OutgoingCallerId); the numbers it
    /// may not present, each once, in the order given. The first failed request ends the check.
    async fn unowned_caller_ids(&self, numbers: &[String]) -> Result<Option<Vec<String>>, TrunkError> {
        let mut asked = std::collections::HashSet::new();
        let mut unowned = Vec::new();
        for number in numbers {
            if !asked.insert(number.as_str()) {
                continue;
            }
            let owned = self.inner.client.may_present(number).await.map_err(|e| {
                warn!(campaign = %self.inner.campaign, caller_id = %number, code = e.code(), error = %e,
                    "Could not ask Twilio whether the account may present a caller ID.");
                TrunkError::from(e)
            })?;
            if !owned {
                unowned.push(number.clone());
            }
        }
        Ok(Some(unowned))
    }

    fn account_limit(&self) -> Option<crate::core::AccountLimit> {
        self.shared.clone()
    }

    async fn recover(&self, call: &OpenCall) -> Recovered {
        let client = &self.inner.client;
        let found = match &call.call_id {
            Some(sid) => client.fetch_call(sid).await.map(Some),
            // The oldest call to the number since the claim: the one this attempt created.
            None => client
                .list_calls(&call.to, call.claimed_at - super::recover::CLOCK_SLACK)
                .await
                .map(|calls| calls.into_iter().last()),
        };
        let resource = match found {
            Ok(Some(r)) => r,
            Ok(None) => return Recovered::NeverPlaced,
            Err(e) => {
                warn!(campaign = %call.campaign, contact = call.key.contact, attempt = call.key.attempt,
                    error = %e, "Could not look the call up at Twilio.");
                return Recovered::Unknown;
            }
        };
        let recovered = super::recover::classify(&resource);
        if let Recovered::Live { call_id, answered, .. } = &recovered {
            let verdict = super::recover::verdict(&resource);
            let followed = self
                .hub
                .follow(&call.campaign, call_id, call.key, *answered, verdict)
                .await;
            let remembered = self.remember(
                call_id,
                call.voicemail_message.clone(),
                call.safe_harbor_message.clone(),
            );
            if let Err(e) = followed {
                warn!(campaign = %call.campaign, call_id = %call_id, error = %e, "Could not follow the call.");
                return Recovered::Unknown;
            }
            if let Err(e) = remembered {
                warn!(campaign = %call.campaign, call_id = %call_id, error = %e, "Could not follow the call.");
            }
        }
        recovered
    }
}

/// What every Twilio campaign of the daemon shares: the account's client, the hub the listener
/// delivers callbacks to, the public URL callbacks are sent to, and the account's limits.
#[derive(Clone)]
pub struct TwilioAccount {
    /// The REST client.
    pub client: TwilioClient,
    /// The listener's callback hub.
    pub hub: Arc<TwilioHub>,
    /// The listener's public base URL.
    pub public_url: String,
    /// The account's CPS and concurrency limits, shared by its campaigns.
    pub limits: Arc<AccountLimits>,
    /// The same limits as every node on the database shares them (`twilio:<account SID>`).
    pub shared: crate::core::AccountLimit,
}

impl TwilioAccount {
    /// The account of `settings` (`calls_per_second`, `max_concurrent`) on `client`, with
    /// callbacks through `hub` at `public_url`.
    pub fn new(
        client: TwilioClient,
        hub: Arc<TwilioHub>,
        public_url: String,
        settings: &crate::settings::TwilioSettings,
    ) -> TwilioAccount {
        TwilioAccount {
            client,
            hub,
            public_url,
            limits: Arc::new(AccountLimits::new(settings.calls_per_second, settings.max_concurrent)),
            shared: crate::core::AccountLimit {
                account: format!("twilio:{}", settings.account_sid.as_deref().unwrap_or_default()),
                calls_per_second: settings.calls_per_second,
                max_concurrent: settings.max_concurrent,
            },
        }
    }

    /// The trunk of `campaign` on this account.
    pub fn trunk(
        &self,
        campaign: &str,
        connect: AgentConnect,
        voicemail: VoicemailAction,
        events: mpsc::Sender<TrunkEvent>,
    ) -> TwilioTrunk {
        TwilioTrunk::new(
            campaign,
            self.client.clone(),
            Arc::clone(&self.hub),
            &self.public_url,
            connect,
            voicemail,
            events,
        )
        .with_limits(Arc::clone(&self.limits))
        .with_shared_limit(self.shared.clone())
    }
}

/// The agent connection of a campaign's `[trunk.twilio]` (validated: its URL is present).
pub fn agent_connect(f: &crate::campaign::twilio_file::TwilioFile) -> Option<AgentConnect> {
    use crate::campaign::twilio_file::TwilioConnectFile as C;
    match f.connect {
        C::Stream => f.stream_url.clone().map(|url| AgentConnect::Stream { url }),
        C::Sip => f.sip_uri.clone().map(|uri| AgentConnect::Sip { uri }),
        C::Url => f.twiml_url.clone().map(|url| AgentConnect::Url { url }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed() -> Placed {
        Placed {
            voicemail: None,
            safe_harbor: None,
            ending: false,
        }
    }

    #[test]
    fn calls_older_than_the_memory_are_forgotten_as_new_ones_come() {
        let mut c = Calls::default();
        let t0 = Instant::now();
        c.insert("CA1".into(), placed(), t0);
        c.insert("CA2".into(), placed(), t0 + std::time::Duration::from_secs(60));
        c.insert(
            "CA3".into(),
            placed(),
            t0 + CALL_MEMORY + std::time::Duration::from_secs(1),
        );
        assert!(!c.by_sid.contains_key("CA1"));
        assert!(c.by_sid.contains_key("CA2") && c.by_sid.contains_key("CA3"));
        assert_eq!(c.placed.len(), 2);
    }
}
