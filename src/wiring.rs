//! `dialerd run`'s wiring (binary only): the store, the pipeline, the HTTP listener, the trunk
//! accounts and the daemon, started in the order the service protocol promises (`READY=1` once
//! the database is migrated, the listener bound and the campaigns loaded), and the signals:
//! SIGTERM/SIGINT stop, SIGHUP re-reads the settings file and rescans the campaign folder.

use anyhow::Result;
use dialerd::analysis::Pipeline;
use dialerd::engine::{Daemon, Request, RunOptions};
use dialerd::settings::Settings;
use dialerd::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::mpsc;

/// `dialerd run`'s flags, kept so a reload applies them over the re-read settings again.
pub struct RunFlags {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--campaigns`.
    pub campaigns: Option<PathBuf>,
    /// `--database`.
    pub database: Option<String>,
    /// `--until-idle`.
    pub until_idle: bool,
}

impl RunFlags {
    fn options(&self, settings: &Settings) -> RunOptions {
        RunOptions {
            campaigns_dir: self.campaigns.clone().unwrap_or(settings.campaigns_dir.clone()),
            until_idle: self.until_idle,
            shutdown_grace: settings.shutdown_grace,
            poll_interval: settings.poll_interval,
            node: dialerd::engine::leases::NodeOptions::new(settings.node_id(), settings.lease_ttl),
            sim_account: settings.sim.account_limit(),
        }
    }
}

/// Runs the daemon until a stop signal (or idle with `--until-idle`).
///
/// Errors: the database cannot be opened or migrated, the pipeline cannot be built, or the
/// campaign folder cannot be read.
pub async fn run(settings: Settings, flags: RunFlags) -> Result<ExitCode> {
    let shutdown = shutdown_signal();
    let url = flags.database.clone().unwrap_or(settings.database_url.clone());
    let store = Store::open(&url).await?;
    let pipeline = Pipeline::new(store.clone(), &settings)?.with_sim_sms()?;
    let opts = flags.options(&settings);
    tracing::info!(database = %url, campaigns = %opts.campaigns_dir.display(), "dialerd starting.");
    if settings.webhook_secret.is_none() {
        tracing::warn!(
            "No webhook secret (DIALERD__WEBHOOK_SECRET): webhook deliveries are dead-lettered until one is set."
        );
    }
    // Sim campaigns need no listener, so a busy address is an error line, not a stop.
    let hub = Arc::new(dialerd::trunk::twilio::TwilioHub::new());
    let livekit_hub = Arc::new(dialerd::trunk::livekit::LivekitHub::new());
    let agents = Arc::new(dialerd::engine::agent_hub::AgentHub::new());
    let metrics = dialerd::telemetry::install()
        .inspect_err(|e| tracing::error!(error = %e, "Metrics recorder not installed: GET /metrics answers 503."))
        .ok();
    let beats = dialerd::engine::service::Heartbeats::new();
    let live = dialerd::engine::live::LiveEvents::new();
    let (requests, rx) = mpsc::channel(16);
    let tokens = settings.api.operator_tokens();
    if tokens.is_empty() {
        tracing::warn!(
            "No operator API token ([api] read_token, control_token or tokens): /v1/campaigns and /metrics answer 401."
        );
    }
    let operator = dialerd::api::operator::OperatorSurface {
        store: store.clone(),
        tokens,
        requests: Some(requests.clone()),
        beats: beats.clone(),
        wedge_limit: dialerd::engine::service::wedge_limit(sd_notify::watchdog_enabled()),
        metrics,
        live: live.clone(),
    };
    let api = dialerd::api::start(
        &settings,
        Arc::clone(&hub),
        Arc::clone(&livekit_hub),
        Arc::clone(&agents),
        Some(operator),
    )
    .await
    .inspect_err(|e| tracing::error!(error = %e, "HTTP listener not started: no health checks or trunk callbacks."))
    .ok();
    let mut daemon = Daemon::new(store, opts)
        .with_heartbeats(beats)
        .with_live(live)
        .with_pipeline(Arc::new(pipeline))
        .with_agent_hub(agents)
        .with_requests(rx);
    if let (Some(api), Some(_)) = (&api, &settings.twilio.account_sid) {
        match dialerd::trunk::twilio::TwilioClient::new(&settings.twilio) {
            Ok(client) => {
                let public_url = api.public_url.clone();
                let account = dialerd::trunk::twilio::TwilioAccount::new(client, hub, public_url, &settings.twilio);
                daemon = daemon.with_twilio(account);
            }
            Err(e) => tracing::error!(error = %e, "Twilio campaigns are refused."),
        }
    }
    if let (Some(_), Some(_)) = (&api, &settings.livekit.url) {
        match dialerd::trunk::livekit::LivekitAccount::new(&settings.livekit, livekit_hub) {
            Ok(account) => daemon = daemon.with_livekit(account),
            Err(e) => tracing::error!(error = %e, "LiveKit campaigns are refused."),
        }
    }
    let reloads = tokio::spawn(reload_on_sighup(settings, flags, requests));
    let ran = daemon.run(shutdown).await;
    reloads.abort();
    if let Some(api) = api {
        api.stop(std::time::Duration::from_secs(5)).await;
    }
    ran?;
    tracing::info!("dialerd stopped.");
    Ok(ExitCode::SUCCESS)
}

/// On every SIGHUP: re-reads the settings file; a valid one is sent to the daemon as a
/// [`Request::Reload`] (the campaign folder, its poll interval and the shutdown grace apply at
/// once; what the listener, the database and the trunk accounts were built with is named in a
/// warning and applies at the next restart); an invalid one is logged and the running settings kept.
async fn reload_on_sighup(mut current: Settings, flags: RunFlags, requests: mpsc::Sender<Request>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for SIGHUP; reloads need a restart.");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: re-reading the settings and rescanning the campaign folder.");
            let next = match Settings::load(flags.config.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "Settings file refused on reload; keeping the running settings.");
                    // The rescan still runs, with the running settings.
                    current.clone()
                }
            };
            let later: Vec<&str> = [
                ("database_url", next.database_url != current.database_url),
                ("listen", next.listen != current.listen),
                ("public_url", next.public_url != current.public_url),
                ("api", next.api != current.api),
                ("log_format", next.log_format != current.log_format),
            ]
            .into_iter()
            .filter_map(|(k, changed)| changed.then_some(k))
            .collect();
            if !later.is_empty() {
                tracing::warn!(settings = ?later, "These settings changed; they apply at the next restart.");
            }
            if requests
                .send(Request::Reload(Box::new(flags.options(&next))))
                .await
                .is_err()
            {
                return;
            }
            current = next;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (current, flags, requests);
        std::future::pending::<()>().await;
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when it
/// is first awaited, so a signal sent while the daemon starts up stops it gracefully.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (term, int) => {
                    let e = term.err().or(int.err()).map(|e| e.to_string()).unwrap_or_default();
                    tracing::warn!(error = %e, "Cannot listen for SIGTERM; only SIGINT stops the daemon.");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
