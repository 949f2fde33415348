//! One campaign runner: a tokio task that drives the pure [`Dialer`] with wall-clock time, the
//! store and a trunk. It selects over a closed set of inputs (trunk events, control messages,
//! its wake-up timer), persists every transition, and logs one line per call transition.

use crate::campaign::Campaign;
use crate::core::{
    AnswerAction, AttemptKey, CallEvent, Candidate, ContactId, Decision, Dialer, Outcome, RefusalReason,
};
use crate::store::{CampaignState, DueContact, Store, StoreError};
use crate::trunk::{DialRequest, Trunk, TrunkEvent};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use governor::{DefaultDirectRateLimiter, RateLimiter};
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
    /// True once the task has returned.
    pub exited: bool,
}

/// Longest sleep between checks when nothing else wakes the runner.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Pacing decides at least this often while calls may be placed.
const DECIDE_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Runner {
    campaign: Campaign,
    store: Store,
    trunk: Arc<dyn Trunk>,
    events: mpsc::Receiver<TrunkEvent>,
    control: mpsc::Receiver<Control>,
    status: watch::Sender<RunnerStatus>,
    dialer: Dialer,
    limiter: DefaultDirectRateLimiter,
    call_ids: HashMap<ContactId, String>,
    paused: bool,
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
}

fn limiter(cps: u32) -> DefaultDirectRateLimiter {
    RateLimiter::direct(crate::trunk::cps_quota(cps))
}

mod compliance;

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
            limiter: limiter(campaign.dialer.calls_per_second),
            campaign,
            store,
            trunk,
            events,
            control,
            status,
            call_ids: HashMap::new(),
            paused: false,
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
        }
    }

    fn id(&self) -> &str {
        &self.campaign.id
    }

    /// Imports contacts, reconciles attempts left open, then runs until shut down.
    pub(crate) async fn run(mut self) {
        if let Err(e) = self.prepare().await {
            error!(campaign = %self.id(), error = %e, "Campaign could not start; it is paused.");
            self.paused = true;
        }
        let mut wake = Instant::now();
        loop {
            self.publish();
            let mut timer_fired = false;
            tokio::select! {
                Some(ev) = self.events.recv() => self.on_trunk_event(ev).await,
                msg = self.control.recv() => match msg {
                    Some(Control::Reload(c)) => self.reload(*c).await,
                    Some(Control::Pause) => self.pause().await,
                    Some(Control::Shutdown) | None => self.begin_shutdown(),
                },
                _ = tokio::time::sleep_until(wake) => timer_fired = true,
            }
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
        }
        if let Err(e) = self.flush_refusals(Utc::now()).await {
            warn!(campaign = %self.id(), error = %e, "Could not write the last refusal counts.");
        }
        if self.dialer.in_flight() > 0 {
            warn!(campaign = %self.id(), in_flight = self.dialer.in_flight(),
                "Calls still in flight at the end of the grace period; their attempts are reconciled at next start.");
        }
        info!(campaign = %self.id(), "Campaign runner stopped.");
        self.status.send_modify(|s| {
            s.exited = true;
            s.in_flight = self.dialer.in_flight();
        });
    }

    fn publish(&self) {
        let in_flight = self.dialer.in_flight();
        let idle = in_flight == 0 && (self.no_work || self.paused);
        self.status.send_if_modified(|s| {
            let new = RunnerStatus {
                in_flight,
                idle,
                exited: false,
            };
            let changed = *s != new;
            *s = new;
            changed
        });
    }

    async fn prepare(&mut self) -> Result<(), super::EngineError> {
        let now = Utc::now();
        let c = &self.campaign;
        self.store
            .activate_campaign(&c.id, &c.name, &c.path.display().to_string(), now)
            .await?;
        self.import().await?;
        self.refresh_dnc_list().await?;
        if !self.history_loaded {
            self.load_history(now).await?;
        }
        for open in self.store.open_attempts(&self.campaign.id).await? {
            if let Some(call_id) = open.call_id.as_deref()
                && self.trunk.is_live(call_id).await
            {
                info!(campaign = %self.id(), contact = open.key.contact, attempt = open.key.attempt, call_id,
                    "Call still live after restart; its events will close it.");
                self.call_ids.insert(open.key.contact, call_id.to_string());
                self.dialer
                    .adopt(open.key, crate::core::Call::new(open.key.attempt, open.started_at));
                continue;
            }
            let step = self
                .campaign
                .rules
                .policy
                .after_attempt(Outcome::Unknown, open.key.attempt, now);
            self.store.close_attempt(open.key, Outcome::Unknown, step, now).await?;
            warn!(campaign = %self.id(), contact = open.key.contact, attempt = open.key.attempt, outcome = "unknown",
                disposition = %step.disposition, "Attempt left open by an earlier run closed as unknown.");
        }
        let max = self.campaign.rules.policy.retry.max_attempts;
        let n = self.store.exhaust_over_limit(&self.campaign.id, max, now).await?;
        if n > 0 {
            info!(campaign = %self.id(), contacts = n, max_attempts = max, "Contacts at the attempt limit marked exhausted.");
        }
        info!(campaign = %self.id(), name = %self.campaign.name, slots = self.campaign.rules.slots,
            cps = self.campaign.dialer.calls_per_second, "Campaign started.");
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
            self.limiter = limiter(campaign.dialer.calls_per_second);
        }
        self.dialer.set_rules(campaign.rules.clone());
        self.campaign = campaign;
        self.dnc_seen = None;
        self.paused = false;
        self.finished = false;
        self.announced_sleep = None;
        if let Err(e) = self.prepare().await {
            error!(campaign = %self.id(), error = %e, "Reload failed; the campaign is paused.");
            self.paused = true;
        }
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

    async fn on_trunk_event(&mut self, ev: TrunkEvent) {
        let key = ev.key;
        let now = Utc::now();
        let id = self.campaign.id.clone();
        match ev.event {
            CallEvent::Ringing => {
                debug!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = "ringing", "Ringing.");
                let cfg = &self.campaign.analysis;
                if let Some(job) =
                    crate::analysis::events::call_started(cfg, &id, key, &ev.call_id, &self.campaign.agent_id, now)
                    && let Err(e) = self.store.enqueue_jobs(&[job], now).await
                {
                    warn!(campaign = %id, contact = key.contact, attempt = key.attempt, error = %e, "Could not queue call_started.");
                }
            }
            CallEvent::CallbackRequested => {
                info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = "callback_requested", "Contact asked for a callback.")
            }
            CallEvent::OptOut => self.opt_out(key, &ev.call_id, ev.at).await,
            // Answered: the trunk is told what to do (connect, safe-harbor message, voicemail) before
            // anything is written, so a slow disk cannot delay the safe-harbor message past 2 s.
            CallEvent::Answered(_) => {}
            CallEvent::Ended(_) => {}
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
        if let CallEvent::Answered(_) = ev.event
            && let Err(e) = self.store.record_answered(key, ev.at).await
        {
            error!(campaign = %id, contact = key.contact, attempt = key.attempt, error = %e, "Could not record the answer.");
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

    async fn finish(&mut self, key: AttemptKey, outcome: Outcome, step: crate::core::NextStep, now: DateTime<Utc>) {
        self.finish_with(key, outcome, step, now, None).await;
    }

    /// Closes the attempt and, in the same transaction, writes the call record and its first
    /// outbox jobs (message events, the analyze job, `contact.exhausted`).
    async fn finish_with(
        &mut self,
        key: AttemptKey,
        outcome: Outcome,
        step: crate::core::NextStep,
        now: DateTime<Utc>,
        detail: Option<crate::analysis::record::CallDetail>,
    ) {
        use crate::analysis::events;
        let id = &self.campaign.id;
        let cfg = &self.campaign.analysis;
        let post = crate::store::PostCall {
            agent_id: self.campaign.agent_id.clone(),
            caller_number: self.campaign.caller_id.clone(),
            call_jobs: events::at_call_end(cfg, id, &self.campaign.caller_id, key, detail.as_ref(), now),
            detail,
            jobs: (step.disposition == crate::core::Disposition::Exhausted)
                .then(|| events::contact_exhausted(cfg, id, key, now))
                .flatten()
                .into_iter()
                .collect(),
        };
        let mut result = self
            .store
            .close_attempt_with(key, outcome, step, now, Some(&post))
            .await;
        if result.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            result = self
                .store
                .close_attempt_with(key, outcome, step, now, Some(&post))
                .await;
        }
        if result.is_ok()
            && cfg.webhooks.wants("campaign.completed")
            && let Ok(0) = self
                .store
                .remaining_contacts(id, self.campaign.rules.policy.retry.max_attempts)
                .await
            && let Some(job) = events::campaign_event(cfg, id, &self.campaign.name, "campaign.completed", now)
            && let Err(e) = self.store.enqueue_jobs(&[job], now).await
        {
            warn!(campaign = %id, error = %e, "Could not queue campaign.completed.");
        }
        match result {
            Ok(_) => info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = %outcome,
                disposition = %step.disposition, next_attempt_at = %step.next_attempt_at.map_or_else(|| "-".to_string(), |t| t.to_rfc3339()), "Call ended."),
            Err(e) => {
                error!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = %outcome, error = %e,
                "Could not record the end of the call; it is reconciled at next start.")
            }
        }
    }

    async fn tick(&mut self) -> Result<Instant, StoreError> {
        let now = Utc::now();
        let soon = Instant::now() + MAX_SLEEP;
        self.no_work = false;
        self.publish_pacing(now).await?;
        if self.paused {
            return Ok(soon);
        }
        // Pacing decides first, and again at least every second; no store query when it wants nothing.
        let wanted = self.dialer.wanted(now);
        if wanted == 0 {
            return Ok(Instant::now() + DECIDE_EVERY);
        }
        let max = self.campaign.rules.policy.retry.max_attempts;
        let zones = self.store.due_times_by_zone(&self.campaign.id, max).await?;
        let window = &self.campaign.rules.window;
        let parsed: Vec<(String, Vec<Tz>, DateTime<Utc>)> = zones
            .into_iter()
            .map(|(z, due)| (self.zones_of(&z), z, due))
            .map(|(tz, z, due)| (z, tz, due))
            .collect();
        let open: Vec<String> = parsed
            .iter()
            .filter(|(_, tz, due)| *due <= now && window.is_open_all(now, tz))
            .map(|(z, _, _)| z.clone())
            .collect();
        if !open.is_empty() {
            let due = self
                .store
                .due_contacts(&self.campaign.id, now, &open, max, wanted.saturating_mul(2))
                .await?;
            if self.dial_from(&due, wanted, now).await? > 0 {
                self.announced_sleep = None;
                // The CPS limiter releases one dial per 1/cps seconds.
                let period = Duration::from_secs(1) / self.campaign.dialer.calls_per_second.max(1);
                return Ok(Instant::now() + period.min(DECIDE_EVERY));
            }
        }
        // Nothing to dial now: sleep until the earliest zone is both due and inside its window.
        let window = &self.campaign.rules.window;
        let next = parsed
            .iter()
            .filter_map(|(_, tz, due)| window.next_open_all((*due).max(now), tz))
            .min();
        match next {
            Some(t) => {
                let opens_later = parsed
                    .iter()
                    .any(|(_, tz, due)| *due <= now && !window.is_open_all(now, tz));
                if opens_later && self.announced_sleep != Some(t) && t > now + TimeDelta::seconds(1) {
                    info!(campaign = %self.id(), until = %t.to_rfc3339(), "Outside every calling window; sleeping until it opens.");
                    self.announced_sleep = Some(t);
                }
                let wait = (t - now).to_std().unwrap_or_default().min(MAX_SLEEP);
                Ok(Instant::now() + wait.max(Duration::from_millis(50)))
            }
            None => {
                let idle = self.dialer.in_flight() == 0;
                if idle && !self.finished {
                    self.finished = true;
                    let remaining = self.store.remaining_contacts(&self.campaign.id, max).await?;
                    if remaining == 0 {
                        self.store
                            .set_campaign_state(&self.campaign.id, CampaignState::Finished, now)
                            .await?;
                        info!(campaign = %self.id(), "Campaign finished: every contact is accounted for.");
                    } else {
                        info!(campaign = %self.id(), remaining, "No calling window opens again for the remaining contacts.");
                    }
                }
                self.no_work = true;
                Ok(soon)
            }
        }
    }

    /// Plans, claims and dials from `due`; returns how many dials were placed.
    async fn dial_from(&mut self, due: &[DueContact], wanted: u32, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let candidates: Vec<Candidate> = due
            .iter()
            .map(|d| Candidate {
                dnc: d.dnc,
                recent_attempts: d.recent_attempts.clone(),
                last_attempt_at: d.last_attempt_at,
                last_abandoned_at: d.last_abandoned_at,
                ..Candidate::new(
                    d.id,
                    d.attempts,
                    d.status,
                    d.next_attempt_at,
                    self.zones_of(&d.timezone),
                )
            })
            .collect();
        // The CPS budget is taken before planning, as in the simulator, so the core only ever
        // hears of dials that are placed.
        let most = wanted.min(u32::try_from(candidates.len()).unwrap_or(u32::MAX));
        let budget = (0..most).take_while(|_| self.limiter.check().is_ok()).count() as u32;
        let keys = self.dialer.plan(now, &candidates, budget);
        let refused = self.dialer.take_refused();
        self.apply_refusals(refused, now).await?;
        let by_id: HashMap<ContactId, &DueContact> = due.iter().map(|d| (d.id, d)).collect();
        let claims: Vec<(AttemptKey, String)> = keys
            .iter()
            .filter_map(|k| by_id.get(&k.contact).map(|d| (*k, d.phone_e164.clone())))
            .collect();
        let max = self.campaign.rules.policy.retry.max_attempts;
        let claimed = self.store.claim_attempts(&self.campaign.id, &claims, max, now).await?;
        for key in keys.iter().filter(|k| !claimed.contains(k)) {
            self.dialer.cancel(*key);
        }
        // The last DNC check, immediately before the dial: a number listed since the claim
        // (an opt-out on another campaign, `dialerd dnc add`, a dropped file) is not called.
        let phones: Vec<String> = claimed
            .iter()
            .filter_map(|k| by_id.get(&k.contact).map(|d| d.phone_e164.clone()))
            .collect();
        let blocked = self.store.dnc_blocked(&self.campaign.id, &phones).await?;
        let mut placed = 0;
        for key in &claimed {
            let Some(contact) = by_id.get(&key.contact) else {
                continue;
            };
            if blocked.contains(&contact.phone_e164) {
                self.dialer.cancel(*key);
                self.dialer.count_refusal(RefusalReason::Dnc, 1);
                self.store.release_claim_dnc(*key, now).await?;
                info!(campaign = %self.id(), contact = key.contact, attempt = key.attempt, outcome = "dnc",
                    "Number went on a do-not-call list just before the dial; not dialled.");
                continue;
            }
            self.dial(*key, contact, now).await;
            placed += 1;
        }
        Ok(placed)
    }

    /// The zones stored for a contact (`&`-joined IANA names); the campaign's default zone when
    /// the stored value does not parse.
    fn zones_of(&self, stored: &str) -> Vec<Tz> {
        crate::core::zones::parse_zone_list(stored).unwrap_or_else(|_| vec![self.campaign.contacts.default_timezone])
    }

    async fn dial(&mut self, key: AttemptKey, contact: &DueContact, now: DateTime<Utc>) {
        let id = self.campaign.id.clone();
        let voicemail_message = self.campaign.voicemail_message.as_deref().and_then(|t| {
            super::render(t, &contact.fields)
                .map_err(|e| warn!(campaign = %id, contact = key.contact, error = %e, "Voicemail message could not be rendered; a machine will be hung up on."))
                .ok()
        });
        let safe_harbor_message = self.campaign.safe_harbor_message.as_deref().and_then(|t| {
            super::render(t, &contact.fields)
                .map_err(|e| warn!(campaign = %id, contact = key.contact, error = %e, "Safe-harbor message could not be rendered; the unrendered text is sent."))
                .ok()
                .or_else(|| Some(t.to_string()))
        });
        self.phones.insert(key.contact, contact.phone_e164.clone());
        let req = DialRequest {
            campaign: id.clone(),
            key,
            to: contact.phone_e164.clone(),
            from: self.campaign.caller_id.clone(),
            agent_id: self.campaign.agent_id.clone(),
            ring_timeout: self.campaign.dialer.ring_timeout,
            voicemail_message,
            safe_harbor_message,
        };
        match self.trunk.dial(req).await {
            Ok(call_id) => {
                info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = %"dialing", call_id = %call_id, "Dialing.");
                if let Err(e) = self.store.record_dialed(key, &call_id).await {
                    warn!(campaign = %id, contact = key.contact, attempt = key.attempt, error = %e, "Could not record the call id.");
                }
                self.call_ids.insert(key.contact, call_id);
            }
            Err(e) => {
                warn!(campaign = %id, contact = key.contact, attempt = key.attempt, error = %e, "Dial failed.");
                for d in self
                    .dialer
                    .on_event(now, key, CallEvent::Ended(crate::core::EndReason::Failed))
                {
                    self.execute(d, "", now).await;
                }
            }
        }
    }
}
