//! The daemon driver: watches the campaign folder, starts one runner per valid campaign,
//! reloads or pauses runners as files change, and shuts down on request or when idle.

pub mod agent_hub;
mod hopper;
pub mod leases;
pub mod live;
mod runner;
pub mod service;

pub use runner::{Control, RunnerStatus};

use crate::campaign::file::TrunkKindFile;
use crate::campaign::watch::{self, Fingerprint};
use crate::campaign::{Campaign, load_campaign};
use crate::sim::CallModel;
use crate::store::ImportOutcome;
use crate::store::Store;
use crate::trunk::Trunk;
use crate::trunk::sim::SimTrunk;
use runner::Runner;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// Errors that stop a campaign or the daemon.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The contact import failed as a whole (file missing, header wrong).
    #[error(transparent)]
    Import(#[from] crate::store::ImportError),
    /// The campaign folder could not be read or watched.
    #[error("campaign folder {dir}: {reason}")]
    Folder {
        /// The folder.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The trunk could not be built.
    #[error("trunk: {0}")]
    Trunk(String),
    /// The campaign's do-not-call list could not be imported.
    #[error("do-not-call list: {0}")]
    Dnc(String),
    /// The caller-ID pool holds numbers the trunk account may not present.
    #[error("caller ID: {0}")]
    CallerId(String),
}

/// What the daemon is asked to do while it runs, besides shutting down.
#[derive(Debug)]
pub enum Request {
    /// SIGHUP / `ExecReload=`: apply these options (re-read from the settings file) and rescan the
    /// campaign folder, keeping calls in flight.
    Reload(Box<RunOptions>),
    /// The operator's control of `campaign` changed and is already stored (the API): tell its
    /// runner now rather than at the next rescan.
    Control {
        /// The campaign id.
        campaign: String,
        /// What is stored now.
        record: crate::store::ControlRecord,
    },
}

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Folder of `*.toml` campaign files.
    pub campaigns_dir: PathBuf,
    /// Exit once no campaign has a contact left to dial, now or later.
    pub until_idle: bool,
    /// How long calls in flight may take to end after a shutdown request.
    pub shutdown_grace: Duration,
    /// Folder rescan interval (the fallback when notifications are missed).
    pub poll_interval: Duration,
    /// This node among the nodes sharing the database, and its leases' time-to-live.
    pub node: leases::NodeOptions,
    /// The sim trunk's account limits shared with every node (`[sim]`); none when unset.
    pub sim_account: Option<crate::core::AccountLimit>,
}

struct Running {
    control: mpsc::Sender<Control>,
    status: tokio_watch::Receiver<RunnerStatus>,
    join: JoinHandle<()>,
    fingerprint: Fingerprint,
    contacts: (PathBuf, Fingerprint),
    /// The operator's control last sent to the runner (it reads the stored one at start).
    operator: Option<crate::store::CampaignControl>,
}

pub(crate) fn log_import(c: &Campaign, outcome: &ImportOutcome) {
    match outcome {
        ImportOutcome::Unchanged => {
            info!(campaign = %c.id, file = %c.contacts.path.display(), "Contact list unchanged since the last import.")
        }
        ImportOutcome::Imported(s) => {
            info!(campaign = %c.id, file = %c.contacts.path.display(), rows = s.rows, accepted = s.accepted,
            rejected = s.rejected, duplicates = s.duplicates, alternate_phones_dropped = s.alternate_phones_dropped,
            "Contacts imported; rejected rows are listed by `dialerd status`.")
        }
    }
}

/// The next request, or never when there is no request channel (or it closed).
async fn recv(requests: &mut Option<mpsc::Receiver<Request>>) -> Option<Request> {
    match requests {
        Some(rx) => match rx.recv().await {
            Some(r) => Some(r),
            None => {
                *requests = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

fn build_trunk(
    c: &Campaign,
    twilio: Option<&crate::trunk::twilio::TwilioAccount>,
    livekit: Option<&crate::trunk::livekit::LivekitAccount>,
    sim_account: Option<&crate::core::AccountLimit>,
    events: mpsc::Sender<crate::trunk::TrunkEvent>,
) -> Result<Arc<dyn Trunk>, EngineError> {
    match c.trunk {
        TrunkKindFile::Livekit => {
            let account = livekit.ok_or_else(|| {
                EngineError::Trunk(
                    "kind = \"livekit\" needs [livekit] url, api_key and api_secret in the settings and a running HTTP listener"
                        .into(),
                )
            })?;
            let file = c
                .livekit
                .as_ref()
                .ok_or_else(|| EngineError::Trunk("[trunk.livekit] is missing".into()))?;
            Ok(Arc::new(account.trunk(&c.id, file, events)))
        }
        TrunkKindFile::Twilio => {
            let account = twilio.ok_or_else(|| {
                EngineError::Trunk(
                    "kind = \"twilio\" needs [twilio] account_sid and auth_token in the settings and a running HTTP listener"
                        .into(),
                )
            })?;
            let connect = c
                .twilio
                .as_ref()
                .and_then(crate::trunk::twilio::trunk::agent_connect)
                .ok_or_else(|| EngineError::Trunk("[trunk.twilio] has no agent URL".into()))?;
            let voicemail = c.rules.policy.voicemail;
            Ok(Arc::new(
                account.trunk(&c.id, connect, voicemail, events).with_record(c.record),
            ))
        }
        TrunkKindFile::Sim => {
            let model = CallModel::new(&c.sim).map_err(|e| EngineError::Trunk(e.to_string()))?;
            Ok(Arc::new(
                SimTrunk::new(model, c.sim.seed, c.sim.time_scale, events)
                    .with_transcripts(crate::trunk::sim::transcript_rates(&c.sim))
                    .with_external_agent(c.sim.agent == crate::campaign::file::SimAgent::External)
                    .with_dial_latency(c.sim.dial_latency)
                    .with_answer_factors(c.sim.answer_factor.clone())
                    .with_account_limit(sim_account.cloned()),
            ))
        }
    }
}

/// The daemon: owns the runners and the folder watcher.
pub struct Daemon {
    store: Store,
    opts: RunOptions,
    running: HashMap<String, Running>,
    refused: HashMap<String, Fingerprint>,
    pipeline: Option<Arc<crate::analysis::Pipeline>>,
    twilio: Option<crate::trunk::twilio::TwilioAccount>,
    livekit: Option<crate::trunk::livekit::LivekitAccount>,
    agents: Arc<agent_hub::AgentHub>,
    notifier: service::Notifier,
    beats: service::Heartbeats,
    requests: Option<mpsc::Receiver<Request>>,
    live: live::LiveEvents,
    leases: leases::Leases,
}

impl Daemon {
    /// A daemon over `store` with `opts`; nothing runs until [`Daemon::run`].
    pub fn new(store: Store, opts: RunOptions) -> Daemon {
        Daemon {
            store,
            opts,
            running: HashMap::new(),
            refused: HashMap::new(),
            pipeline: None,
            twilio: None,
            livekit: None,
            agents: Arc::new(agent_hub::AgentHub::new()),
            notifier: service::Notifier::from_env(),
            beats: service::Heartbeats::new(),
            requests: None,
            live: live::LiveEvents::new(),
            leases: leases::Leases::default(),
        }
    }

    /// Sends every runner's call transitions, state changes and pacing snapshots to `live`
    /// (the one `GET /v1/events` subscribes to).
    pub fn with_live(mut self, live: live::LiveEvents) -> Daemon {
        self.live = live;
        self
    }

    /// Shares `beats` (the watchdog's heartbeats and the loaded flag) with `GET /readyz`.
    pub fn with_heartbeats(mut self, beats: service::Heartbeats) -> Daemon {
        self.beats = beats;
        self
    }

    /// Takes [`Request`]s (reloads) from `requests` while running.
    pub fn with_requests(mut self, requests: mpsc::Receiver<Request>) -> Daemon {
        self.requests = Some(requests);
        self
    }

    /// Routes the voice agent's events (`POST /v1/calls/{call_id}/events`) through `hub`, the
    /// one the HTTP listener delivers to.
    pub fn with_agent_hub(mut self, hub: Arc<agent_hub::AgentHub>) -> Daemon {
        self.agents = hub;
        self
    }

    /// Runs the outbox workers of `pipeline` (post-call analysis and deliveries) alongside the
    /// campaigns; without it jobs stay queued for a later run.
    pub fn with_pipeline(mut self, pipeline: Arc<crate::analysis::Pipeline>) -> Daemon {
        self.pipeline = Some(pipeline);
        self
    }

    /// Dials `kind = "twilio"` campaigns through `account`; without it they are refused.
    pub fn with_twilio(mut self, account: crate::trunk::twilio::TwilioAccount) -> Daemon {
        self.twilio = Some(account);
        self
    }

    /// Dials `kind = "livekit"` campaigns through `account`; without it they are refused.
    pub fn with_livekit(mut self, account: crate::trunk::livekit::LivekitAccount) -> Daemon {
        self.livekit = Some(account);
        self
    }

    /// Runs until `shutdown` resolves (SIGTERM/SIGINT in `main`) or, with `until_idle`, until every
    /// campaign is idle. Stops dialing first, then lets calls in flight end within the grace period.
    ///
    /// Errors: the campaign folder cannot be read or watched.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), EngineError> {
        let dir = self.opts.campaigns_dir.clone();
        let folder_err = |reason: String| EngineError::Folder {
            dir: dir.clone(),
            reason,
        };
        let (wake_tx, mut wake_rx) = mpsc::channel(1);
        let mut watcher =
            watch::watch(&dir, self.opts.poll_interval, wake_tx.clone()).map_err(|e| folder_err(e.to_string()))?;
        let daemon_beat = self.beats.register("daemon");
        let watchdog = self
            .notifier
            .watchdog()
            .map(|w| service::spawn_watchdog(self.beats.clone(), w));
        let beat_every = self.beat_every();
        self.rescan().await.map_err(|e| folder_err(e.to_string()))?;
        self.lease_tick().await;
        self.publish_status().await;
        self.beats.set_loaded();
        self.notifier.ready();
        info!(
            campaigns = self.running.len(),
            "Ready: database migrated, listener bound, campaigns loaded."
        );
        tokio::pin!(shutdown);
        let pool = self.pipeline.clone().map(crate::analysis::OutboxPool::spawn);
        let mut requests = self.requests.take();
        let mut interrupted = false;
        let mut poll = tokio::time::interval(self.opts.poll_interval);
        let mut check_idle = tokio::time::interval(Duration::from_millis(200));
        let mut status = tokio::time::interval(beat_every.min(Duration::from_secs(2)));
        let mut lease_timer = tokio::time::interval(self.opts.node.tick());
        lease_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            daemon_beat.beat();
            tokio::select! {
                _ = &mut shutdown => {
                    info!("Shutdown requested.");
                    interrupted = true;
                    break;
                }
                Some(()) = wake_rx.recv() => {
                    // Let an editor finish writing before reading the file.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    self.rescan_logged().await;
                }
                Some(req) = recv(&mut requests) => match req {
                    Request::Reload(opts) => {
                        self.notifier.reloading();
                        if opts.campaigns_dir != self.opts.campaigns_dir || opts.poll_interval != self.opts.poll_interval {
                            match watch::watch(&opts.campaigns_dir, opts.poll_interval, wake_tx.clone()) {
                                Ok(w) => watcher = w,
                                Err(e) => error!(dir = %opts.campaigns_dir.display(), error = %e, "Cannot watch the campaign folder; keeping the old one."),
                            }
                            poll = tokio::time::interval(opts.poll_interval);
                        }
                        if opts.campaigns_dir == self.opts.campaigns_dir || watch::scan(&opts.campaigns_dir).is_ok() {
                            self.opts = *opts;
                        }
                        self.rescan_logged().await;
                        self.publish_status().await;
                        info!(campaigns = self.running.len(), "Reloaded: settings re-read and campaign folder rescanned; calls in flight kept.");
                        self.notifier.ready();
                    }
                    Request::Control { campaign, record } => self.send_control(&campaign, record).await,
                },
                _ = poll.tick() => self.rescan_logged().await,
                _ = lease_timer.tick() => self.lease_tick().await,
                _ = status.tick() => self.publish_status().await,
                _ = check_idle.tick(), if self.opts.until_idle => {
                    if self.is_idle() {
                        info!(campaigns = self.running.len(), "Every campaign is idle: no contact left to dial, now or later.");
                        break;
                    }
                }
            }
        }
        drop(watcher);
        self.notifier.stopping();
        // The runners keep beating while their calls end; the daemon loop is done.
        daemon_beat.exempt();
        self.stop_all().await;
        self.release_all_leases().await;
        if let Some(pool) = pool {
            if !interrupted {
                let bound = self
                    .pipeline
                    .as_ref()
                    .map_or(Duration::from_secs(30), |p| p.outbox.drain_timeout);
                info!(
                    drain_timeout_s = bound.as_secs_f64(),
                    "Delivering what is left in the outbox before exiting."
                );
                if !pool.drain_within(bound, &mut shutdown).await {
                    warn!(
                        drain_timeout_s = bound.as_secs_f64(),
                        "The outbox did not drain in time (is a receiver down?); exiting anyway."
                    );
                }
            }
            pool.stop().await;
            self.log_outbox_left().await;
        }
        if let Some(w) = watchdog {
            w.abort();
        }
        self.live.close();
        Ok(())
    }

    /// How often runners and the daemon loop beat: a quarter of `WatchdogSec=`, at most 30 s.
    fn beat_every(&self) -> Duration {
        self.notifier
            .watchdog()
            .map_or(Duration::from_secs(30), |w| (w / 4).max(Duration::from_millis(10)))
    }

    /// Sends the `STATUS=` line: campaigns running and paused, calls in flight, outbox depth.
    async fn publish_status(&mut self) {
        let (mut running, mut paused, mut in_flight) = (0, 0, 0);
        for r in self.running.values() {
            let s = *r.status.borrow();
            if s.exited {
                continue;
            }
            in_flight += s.in_flight;
            if s.paused { paused += 1 } else { running += 1 }
        }
        let outbox = match self.store.job_counts().await {
            Ok(c) => Some(c.get("pending").copied().unwrap_or(0) + c.get("running").copied().unwrap_or(0)),
            Err(_) => None,
        };
        self.notifier
            .status(service::status_line(running, paused, in_flight, outbox));
    }

    /// Says how many outbox jobs are left at exit: undelivered ones stay in the database and run
    /// at the next start; dead ones wait for `dialerd outbox retry`.
    async fn log_outbox_left(&self) {
        let counts = match self.store.job_counts().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "Cannot count outbox jobs.");
                return;
            }
        };
        let n = |state: &str| counts.get(state).copied().unwrap_or(0);
        let (pending, running, dead) = (n("pending"), n("running"), n("dead"));
        if pending + running > 0 {
            warn!(
                pending,
                running,
                dead,
                "Outbox jobs not yet delivered are kept in the database and delivered at the next start; `dialerd outbox list` shows them."
            );
        }
        if dead > 0 {
            info!(
                dead,
                "Dead-lettered outbox jobs are kept; `dialerd outbox list --state dead` shows them and `dialerd outbox retry` replays them."
            );
        }
    }

    fn is_idle(&self) -> bool {
        self.leases.waiting.is_empty()
            && self.running.values().all(|r| {
                let s = *r.status.borrow();
                s.idle || s.exited
            })
    }

    async fn stop_all(&mut self) {
        for r in self.running.values() {
            let _ = r.control.send(Control::Shutdown).await;
        }
        for (id, r) in self.running.drain() {
            if let Err(e) = r.join.await {
                error!(campaign = %id, error = %e, "Campaign runner panicked.");
            }
            self.beats.remove(&format!("campaign {id}"));
        }
    }

    async fn rescan_logged(&mut self) {
        if let Err(e) = self.rescan().await {
            error!(dir = %self.opts.campaigns_dir.display(), error = %e, "Cannot read the campaign folder.");
        }
        if !self.leases.waiting.is_empty() {
            self.lease_tick().await;
        }
    }

    /// Starts new campaigns, reloads changed ones, pauses removed or broken ones.
    async fn rescan(&mut self) -> std::io::Result<()> {
        // The global do-not-call files first, so a number listed there is blocked before any dial.
        let dnc = crate::campaign::dnc::dnc_dir(&self.opts.campaigns_dir);
        if let Err(e) = crate::campaign::dnc::sync_dnc_folder(&self.store, &dnc, chrono::Utc::now()).await {
            error!(dir = %dnc.display(), error = %e, "Do-not-call folder could not be read; retrying on the next scan.");
        }
        let files = watch::scan(&self.opts.campaigns_dir)?;
        for (id, r) in self.running.iter_mut() {
            if !files.contains_key(id) && r.fingerprint != Fingerprint::Missing {
                warn!(campaign = %id, "Campaign file removed; pausing the campaign. Nothing is deleted.");
                r.fingerprint = Fingerprint::Missing;
                let _ = r.control.send(Control::Pause).await;
            }
        }
        self.refused.retain(|id, _| files.contains_key(id));
        self.leases.waiting.retain(|id, _| files.contains_key(id));
        self.poll_controls().await;
        for (id, (path, fp)) in files {
            let contacts_changed = self
                .running
                .get(&id)
                .is_some_and(|r| watch::meta_fingerprint(&r.contacts.0) != r.contacts.1);
            let known = self.knows(&id).or(self.refused.get(&id));
            if known == Some(&fp) && !contacts_changed {
                continue;
            }
            match load_campaign(&path) {
                Err(errs) => {
                    for e in &errs.0 {
                        error!(campaign = %id, file = %path.display(), line = e.line, key = e.key.as_deref(), error = %e.reason, "Campaign file refused.");
                    }
                    self.refused.insert(id.clone(), fp);
                    self.leases.waiting.remove(&id);
                    if let Some(r) = self.running.get_mut(&id) {
                        r.fingerprint = Fingerprint::Missing;
                        let _ = r.control.send(Control::Pause).await;
                    }
                }
                Ok(campaign) => {
                    self.refused.remove(&id);
                    let contacts = (
                        campaign.contacts.path.clone(),
                        watch::meta_fingerprint(&campaign.contacts.path),
                    );
                    if let Some(r) = self.running.get_mut(&id) {
                        r.fingerprint = fp;
                        r.contacts = contacts;
                        let _ = r.control.send(Control::Reload(Box::new(campaign))).await;
                    } else {
                        // Started once this node holds the campaign's lease (the next lease tick).
                        self.leases.wait(campaign, fp, contacts);
                    }
                }
            }
        }
        Ok(())
    }

    fn start(
        &mut self,
        campaign: Campaign,
        fingerprint: Fingerprint,
        contacts: (PathBuf, Fingerprint),
        lease: Option<leases::LeaseClock>,
    ) {
        let id = campaign.id.clone();
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let trunk = match build_trunk(
            &campaign,
            self.twilio.as_ref(),
            self.livekit.as_ref(),
            self.opts.sim_account.as_ref(),
            ev_tx.clone(),
        ) {
            Ok(t) => t,
            Err(e) => {
                error!(campaign = %id, error = %e, "Campaign refused.");
                self.refused.insert(id, fingerprint);
                return;
            }
        };
        self.agents.register_campaign(&id, ev_tx, Arc::clone(&trunk));
        let (ctl_tx, ctl_rx) = mpsc::channel(8);
        let (st_tx, st_rx) = tokio_watch::channel(RunnerStatus::default());
        let runner = Runner::new(
            campaign,
            self.store.clone(),
            trunk,
            ev_rx,
            ctl_rx,
            st_tx,
            self.opts.shutdown_grace,
        )
        .with_agents(Arc::clone(&self.agents))
        .with_live(self.live.clone())
        .with_heartbeat(self.beats.register(&format!("campaign {id}")), self.beat_every())
        .with_lease(lease);
        let join = tokio::spawn(runner.run());
        self.running.insert(
            id,
            Running {
                control: ctl_tx,
                status: st_rx,
                join,
                fingerprint,
                contacts,
                operator: None,
            },
        );
    }

    /// Sends `record` to `campaign`'s runner, if it runs.
    async fn send_control(&mut self, campaign: &str, record: crate::store::ControlRecord) {
        if let Some(r) = self.running.get_mut(campaign) {
            r.operator = Some(record.control);
            let _ = r.control.send(Control::Operator(record)).await;
        }
    }

    /// Reads every campaign's control (one query) and tells the runners whose control changed,
    /// so `dialerd pause` from another process reaches a runner within a poll interval; the
    /// claim refuses every contact of a paused campaign from the moment the change commits.
    async fn poll_controls(&mut self) {
        let controls = match self.store.campaign_controls().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "Cannot read the campaigns' control; retrying on the next scan.");
                return;
            }
        };
        for (id, control) in controls {
            let Some(r) = self.running.get(&id) else { continue };
            if r.operator == Some(control) {
                continue;
            }
            match self.store.campaign_control(&id).await {
                Ok(Some(record)) => self.send_control(&id, record).await,
                Ok(None) => {}
                Err(e) => warn!(campaign = %id, error = %e, "Cannot read the campaign's control."),
            }
        }
    }
}
