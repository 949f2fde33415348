//! One campaign runner: a tokio task that drives the pure [`Dialer`] with wall-clock time, the
//! store and a trunk. It selects over a closed set of inputs (trunk events, control messages,
//! its wake-up timer), persists every transition, and logs one line per call transition.

use crate::campaign::Campaign;
use crate::core::{AnswerAction, CallEvent, ContactId, Decision, Dialer, RefusalReason};
use crate::store::{CallWrite, CampaignState, Store};
use crate::trunk::{Trunk, TrunkEvent};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

/// Control messages from the daemon.
#[derive(Debug)]
pub enum Control {
    /// The campaign file changed and is still valid: apply it, keep progress and calls.
    Reload(Box<Campaign>),
    /// The campaign file was removed or became invalid: stop dialing, delete nothing.
    Pause,
    /// The operator's control changed (`dialerd pause|resume|cancel`, the API), already stored.
    Operator(crate::store::ControlRecord),
    /// Stop dialing, let calls in flight end within the grace period, then exit.
    Shutdown,
}

/// What a runner reports to the daemon after every step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunnerStatus {
    /// Calls in flight.
    pub in_flight: usize,
    /// True when no contact is left to dial, now or later, and no call is in flight.
    pub idle: bool,
    /// True while the campaign is paused (its file is gone or invalid, or an operator paused it).
    pub paused: bool,
    /// True once the task has returned.
    pub exited: bool,
}

/// Longest sleep between checks when nothing else wakes the runner.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Pacing decides at least this often while calls may be placed.
const DECIDE_EVERY: Duration = Duration::from_secs(1);
/// Most further trunk events handled (and written in one transaction) with the one that woke the runner.
const MAX_BURST: usize = 255;

pub(crate) struct Runner {
    campaign: Campaign,
    store: Store,
    trunk: Arc<dyn Trunk>,
    events: mpsc::Receiver<TrunkEvent>,
    control: mpsc::Receiver<Control>,
    status: watch::Sender<RunnerStatus>,
    dialer: Dialer,
    /// The CPS budget: at most `calls_per_second` dials in any rolling second.
    cps: crate::core::CpsWindow,
    /// The runner's monotonic clock origin, for the CPS window.
    started: Instant,
    call_ids: HashMap<ContactId, String>,
    paused: bool,
    /// The operator's control, as last read from the store or sent by the daemon.
    operator: crate::store::CampaignControl,
    stop_by: Option<Instant>,
    grace: Duration,
    announced_sleep: Option<DateTime<Utc>>,
    finished: bool,
    /// Set when the last tick found nothing to dial, now or later.
    no_work: bool,
    /// When the pacing snapshot was last written for `dialerd status`.
    last_snapshot: Option<Instant>,
    /// Abandonment history from earlier runs has been fed to the core.
    history_loaded: bool,
    /// Refusal counts of the core already written to the audit table.
    refusals_flushed: BTreeMap<RefusalReason, u64>,
    /// Numbers of calls in flight, for opt-outs.
    phones: HashMap<ContactId, String>,
    /// Size and modification time of the campaign's DNC file when it was last imported.
    dnc_seen: Option<crate::campaign::watch::Fingerprint>,
    /// The next due contacts, read from the store in batches.
    hopper: super::hopper::Hopper,
    /// Writes of the events handled since the last flush, in their order.
    writes: Vec<CallWrite>,
    /// No dial before this instant: the trunk said "not now" (429, an account limit).
    dial_hold: Option<Instant>,
    /// The trunk account's limits shared through the store, and no claim before the instant
    /// they last said they have room.
    account: Option<(crate::core::AccountLimit, Option<Instant>)>,
    /// The next hold when the trunk gives no `Retry-After` (doubles up to 30 s, reset by a dial).
    backoff: Duration,
    /// Where the voice agent's events for this campaign's calls arrive.
    agents: Option<Arc<super::agent_hub::AgentHub>>,
    /// Beaten at every step of the loop, for the systemd watchdog.
    heartbeat: Option<super::service::Heartbeat>,
    /// The longest the loop waits without a step while a heartbeat is watched.
    beat_every: Duration,
    /// The slot counts last exported as metrics.
    last_slots: Option<crate::core::SlotCounts>,
    /// Where call transitions, state changes and pacing snapshots go live (`GET /v1/events`).
    live: Option<super::live::LiveEvents>,
    /// The pool's health and each call's caller ID.
    caller: caller_id::CallerIds,
    /// The local deadline of the campaign's lease: no claim and no dial after it.
    lease: Option<super::leases::LeaseClock>,
}

mod agent;
mod caller_id;
mod compliance;
mod control;
mod dialing;
mod recovery;
mod writes;

impl Runner {
    pub(crate) fn new(
        campaign: Campaign,
        store: Store,
        trunk: Arc<dyn Trunk>,
        events: mpsc::Receiver<TrunkEvent>,
        control: mpsc::Receiver<Control>,
        status: watch::Sender<RunnerStatus>,
        grace: Duration,
    ) -> Runner {
        Runner {
            dialer: Dialer::new(campaign.rules.clone()),
            caller: caller_id::CallerIds::new(&campaign.caller_ids),
            cps: crate::core::CpsWindow::new(campaign.dialer.calls_per_second),
            started: Instant::now(),
            hopper: super::hopper::Hopper::new(campaign.dialer.calls_per_second),
            writes: Vec::new(),
            dial_hold: None,
            account: trunk.account_limit().map(|l| (l, None)),
            backoff: dialing::FIRST_BACKOFF,
            campaign,
            store,
            trunk,
            events,
            control,
            status,
            call_ids: HashMap::new(),
            paused: false,
            operator: crate::store::CampaignControl::Running,
            stop_by: None,
            grace,
            announced_sleep: None,
            finished: false,
            no_work: false,
            last_snapshot: None,
            history_loaded: false,
            refusals_flushed: BTreeMap::new(),
            phones: HashMap::new(),
            dnc_seen: None,
            agents: None,
            heartbeat: None,
            beat_every: MAX_SLEEP,
            last_slots: None,
            live: None,
            lease: None,
        }
    }

    /// Places no call once `lease`'s local deadline passes without a renewal (`None`: no lease).
    pub(crate) fn with_lease(mut self, lease: Option<super::leases::LeaseClock>) -> Runner {
        self.lease = lease;
        self
    }

    /// Whether this node may still claim and dial for the campaign, by its own clock.
    fn lease_valid(&self) -> bool {
        self.lease.as_ref().is_none_or(|l| l.valid())
    }

    /// Sends call transitions, state changes and pacing snapshots to `live`.
    pub(crate) fn with_live(mut self, live: super::live::LiveEvents) -> Runner {
        self.live = Some(live);
        self
    }

    /// Sends one call transition live.
    fn live_call(
        &self,
        key: crate::core::AttemptKey,
        state: &'static str,
        outcome: Option<String>,
        disposition: Option<String>,
    ) {
        if let Some(l) = &self.live {
            l.send(super::live::LiveEvent::Call {
                campaign: self.campaign.id.clone(),
                contact: key.contact,
                attempt: key.attempt,
                state,
                outcome,
                disposition,
                at: Utc::now(),
            });
        }
    }

    /// Sends one change of the campaign's state live.
    fn live_state(&self, state: &'static str, by: Option<String>) {
        if let Some(l) = &self.live {
            l.send(super::live::LiveEvent::Campaign {
                campaign: self.campaign.id.clone(),
                state,
                by,
                at: Utc::now(),
            });
        }
    }

    /// Beats `heartbeat` at least every `every` while the loop runs (the systemd watchdog).
    pub(crate) fn with_heartbeat(mut self, heartbeat: super::service::Heartbeat, every: Duration) -> Runner {
        self.heartbeat = Some(heartbeat);
        self.beat_every = every.clamp(Duration::from_millis(10), MAX_SLEEP);
        self
    }

    fn beat(&self) {
        if let Some(h) = &self.heartbeat {
            h.beat();
        }
    }

    /// Importing a list cannot beat; the watchdog ignores the runner until its next beat.
    fn exempt(&self) {
        if let Some(h) = &self.heartbeat {
            h.exempt();
        }
    }

    /// Takes the voice agent's events for this campaign's calls from `hub`.
    pub(crate) fn with_agents(mut self, hub: Arc<super::agent_hub::AgentHub>) -> Runner {
        self.agents = Some(hub);
        self
    }

    fn id(&self) -> &str {
        &self.campaign.id
    }

    /// Imports contacts, reconciles attempts left open, then runs until shut down.
    pub(crate) async fn run(mut self) {
        self.exempt();
        if let Err(e) = self.prepare().await {
            error!(campaign = %self.id(), error = %e, "Campaign could not start; it is paused.");
            self.paused = true;
        }
        let mut wake = Instant::now();
        let mut beat = tokio::time::interval(self.beat_every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.beat();
            self.publish();
            let mut timer_fired = false;
            tokio::select! {
                Some(ev) = self.events.recv() => {
                    self.on_trunk_event(ev).await;
                    // A burst of events is handled, and written, as one.
                    for _ in 0..MAX_BURST {
                        match self.events.try_recv() {
                            Ok(ev) => self.on_trunk_event(ev).await,
                            Err(_) => break,
                        }
                    }
                }
                msg = self.control.recv() => match msg {
                    Some(Control::Reload(c)) => self.reload(*c).await,
                    Some(Control::Pause) => self.pause().await,
                    Some(Control::Operator(rec)) => self.on_operator(rec),
                    Some(Control::Shutdown) | None => self.begin_shutdown(),
                },
                _ = tokio::time::sleep_until(wake) => timer_fired = true,
                _ = beat.tick(), if self.heartbeat.is_some() => continue,
            }
            self.flush_writes().await;
            if let Some(stop_by) = self.stop_by {
                if self.dialer.in_flight() == 0 || Instant::now() >= stop_by {
                    break;
                }
                wake = stop_by;
                continue;
            }
            // An event that freed no capacity changes nothing pacing could act on before the timer.
            // Asking the pacer has side effects (VICIdial's placement clock), so this check uses counts only.
            let c = self.dialer.counts();
            if !timer_fired && c.free() <= c.dialing && Instant::now() < wake {
                continue;
            }
            wake = match self.tick().await {
                Ok(w) => w,
                Err(e) => {
                    error!(campaign = %self.id(), error = %e, "Store error; retrying shortly.");
                    Instant::now() + Duration::from_secs(1)
                }
            };
            self.flush_writes().await;
        }
        if let Err(e) = self.flush_refusals(Utc::now()).await {
            warn!(campaign = %self.id(), error = %e, "Could not write the last refusal counts.");
        }
        // The last caller-ID figures, so `dialerd status` after a stop shows where they ended.
        self.review_caller_ids(Utc::now()).await;
        if self.dialer.in_flight() > 0 {
            warn!(campaign = %self.id(), in_flight = self.dialer.in_flight(),
                "Calls still in flight at the end of the grace period; their attempts are reconciled at next start.");
        }
        info!(campaign = %self.id(), "Campaign runner stopped.");
        self.live_state("stopped", None);
        self.exempt();
        self.status.send_modify(|s| {
            s.exited = true;
            s.in_flight = self.dialer.in_flight();
        });
    }

    fn publish(&mut self) {
        let in_flight = self.dialer.in_flight();
        let idle = in_flight == 0 && (self.no_work || self.dialing_stopped());
        self.status.send_if_modified(|s| {
            let new = RunnerStatus {
                in_flight,
                idle,
                paused: self.dialing_stopped(),
                exited: false,
            };
            let changed = *s != new;
            *s = new;
            changed
        });
        let c = self.dialer.counts();
        if self.last_slots != Some(c) {
            self.last_slots = Some(c);
            crate::telemetry::slots(&self.campaign.id, in_flight, c.talking, c.slots, c.dial_ratio());
        }
    }

    async fn prepare(&mut self) -> Result<(), super::EngineError> {
        let now = Utc::now();
        let c = &self.campaign;
        self.store
            .activate_campaign(&c.id, &c.name, &c.path.display().to_string(), now)
            .await?;
        let account = self.account.as_ref().map(|(l, _)| l.account.as_str());
        self.store.set_campaign_account(&c.id, account).await?;
        self.read_operator().await?;
        self.import().await?;
        self.refresh_dnc_list().await?;
        if !self.history_loaded {
            self.load_history(now).await?;
        }
        self.prepare_caller_ids(now).await?;
        for open in self.store.open_attempts(&self.campaign.id).await? {
            self.recover(open, now).await?;
        }
        self.flush_writes().await;
        let max = self.campaign.rules.policy.retry.max_attempts;
        let n = self.store.exhaust_over_limit(&self.campaign.id, max, now).await?;
        if n > 0 {
            info!(campaign = %self.id(), contacts = n, max_attempts = max, "Contacts at the attempt limit marked exhausted.");
        }
        info!(campaign = %self.id(), name = %self.campaign.name, slots = self.campaign.rules.slots,
            cps = self.campaign.dialer.calls_per_second, "Campaign started.");
        self.live_state("started", None);
        let c = &self.campaign;
        if let Some(job) = crate::analysis::events::campaign_event(&c.analysis, &c.id, &c.name, "campaign.started", now)
        {
            self.store.enqueue_jobs(&[job], now).await?;
        }
        Ok(())
    }

    async fn import(&mut self) -> Result<(), super::EngineError> {
        let outcome = self
            .store
            .import_contacts(&self.campaign.id, &self.campaign.contacts, Utc::now())
            .await?;
        super::log_import(&self.campaign, &outcome);
        Ok(())
    }

    async fn reload(&mut self, campaign: Campaign) {
        info!(campaign = %self.id(), "Campaign file changed; reloading without losing progress.");
        if campaign.dialer.calls_per_second != self.campaign.dialer.calls_per_second {
            self.cps = crate::core::CpsWindow::new(campaign.dialer.calls_per_second);
            self.hopper.resize(campaign.dialer.calls_per_second);
        }
        self.hopper.clear();
        self.dialer.set_rules(campaign.rules.clone());
        self.campaign = campaign;
        self.dnc_seen = None;
        self.paused = false;
        self.finished = false;
        self.announced_sleep = None;
        self.exempt();
        if let Err(e) = self.prepare().await {
            error!(campaign = %self.id(), error = %e, "Reload failed; the campaign is paused.");
            self.paused = true;
        }
        self.beat();
    }

    async fn pause(&mut self) {
        if !self.paused {
            info!(campaign = %self.id(), in_flight = self.dialer.in_flight(), "Campaign paused: its file is gone or invalid. Nothing is deleted.");
        }
        self.paused = true;
        if let Err(e) = self
            .store
            .set_campaign_state(&self.campaign.id, CampaignState::Paused, Utc::now())
            .await
        {
            error!(campaign = %self.id(), error = %e, "Could not record the pause.");
        }
    }

    fn begin_shutdown(&mut self) {
        if self.stop_by.is_none() {
            info!(campaign = %self.id(), in_flight = self.dialer.in_flight(), grace_s = self.grace.as_secs(),
                "Stopping: no new dials; waiting for calls in flight.");
            self.stop_by = Some(Instant::now() + self.grace);
        }
    }

    async fn on_trunk_event(&mut self, mut ev: TrunkEvent) {
        let key = ev.key;
        let now = Utc::now();
        self.agent_edges(&mut ev, now);
        let id = self.campaign.id.clone();
        // From the trunk's instant (a callback's arrival at the listener, unless it carried its
        // own timestamp) to its handling here: the figure `benches/twilio.rs` reports.
        debug!(campaign = %id, contact = key.contact, attempt = key.attempt,
            latency_us = (now - ev.at).num_microseconds().unwrap_or(i64::MAX), "Trunk event.");
        match ev.event {
            CallEvent::Ringing => {
                debug!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = "ringing", "Ringing.");
                let cfg = &self.campaign.analysis;
                if let Some(job) =
                    crate::analysis::events::call_started(cfg, &id, key, &ev.call_id, &self.campaign.agent_id, now)
                {
                    self.writes.push(CallWrite::Jobs(vec![job], now));
                }
            }
            CallEvent::CallbackRequested => {
                info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = "callback_requested", "Contact asked for a callback.")
            }
            CallEvent::CallbackRequestedAt(at) => {
                info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = "callback_requested",
                    callback_at = %at.to_rfc3339(), "Contact asked for a callback at a time.")
            }
            CallEvent::AgentSpoke(at) => {
                debug!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = "agent_spoke", at = %at.to_rfc3339(), "Agent spoke.")
            }
            CallEvent::OptOut => self.opt_out(key, &ev.call_id, ev.at).await,
            // Answered: the trunk is told what to do (connect, safe-harbor message, voicemail) before
            // anything is written, so a slow disk cannot delay the safe-harbor message past 2 s.
            CallEvent::Answered(_) | CallEvent::Ended(_) => {}
            // The verdict may move a connected call to the voicemail message or a hang-up: the
            // core decides, and the action goes to the trunk below like an answer's.
            CallEvent::AmdVerdict(kind) => {
                debug!(campaign = %id, contact = key.contact, attempt = key.attempt, answered_by = ?kind, "AMD verdict.")
            }
        }
        let mut detail = ev.detail;
        for decision in self.dialer.on_event(now, key, ev.event) {
            match decision {
                // The conversation travels with the call's end into its call record.
                Decision::Finish { key, outcome, step } => {
                    self.call_ids.remove(&key.contact);
                    self.phones.remove(&key.contact);
                    self.finish_with(key, outcome, step, now, detail.take().map(|d| *d))
                        .await;
                }
                d => self.execute(d, &ev.call_id, now).await,
            }
        }
        if let CallEvent::Answered(kind) = ev.event {
            crate::telemetry::answer(
                &self.campaign.id,
                match kind {
                    crate::core::AnswerKind::Human => "human",
                    crate::core::AnswerKind::Machine => "machine",
                    crate::core::AnswerKind::Unknown => "unknown",
                },
            );
            self.writes.push(CallWrite::Answered(key, ev.at));
            self.caller.answered(key.contact, now);
        }
    }

    async fn execute(&mut self, decision: Decision, call_id: &str, now: DateTime<Utc>) {
        let id = self.campaign.id.clone();
        match decision {
            Decision::Answer { key, action } => {
                let outcome = match action {
                    AnswerAction::ConnectAgent => "connected",
                    AnswerAction::PlaySafeHarbor => "abandoned",
                    AnswerAction::LeaveVoicemail => "leaving_voicemail",
                    AnswerAction::Hangup => "machine_hangup",
                };
                info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome, call_id, "Answered.");
                self.live_call(key, "answered", Some(outcome.to_string()), None);
                // Written before the request (the message is not time-bound), so recovery after
                // a crash knows whether the machine got it.
                if action == AnswerAction::LeaveVoicemail
                    && let Err(e) = self.store.record_voicemail_sent(key, now).await
                {
                    warn!(campaign = %id, contact = key.contact, attempt = key.attempt, error = %e, "Could not record the voicemail message.");
                }
                if let Err(e) = self.trunk.act(call_id, action).await {
                    warn!(campaign = %id, contact = key.contact, attempt = key.attempt, error = %e, "Trunk refused the answer action.");
                }
            }
            Decision::Finish { key, outcome, step } => {
                self.call_ids.remove(&key.contact);
                self.phones.remove(&key.contact);
                self.finish(key, outcome, step, now).await;
            }
        }
    }
}
