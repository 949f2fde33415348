//! The post-call analysis pipeline and its sinks, fed by the outbox.
//!
//! When a call ends the engine writes its [`CallRecord`](crate::call::CallRecord) and the first outbox jobs in
//! the transaction that closes the attempt. Outbox workers ([`worker::OutboxPool`]) then run
//! them at least once, in order per call and per sink: the `analyze` job (which waits on
//! nothing but the call's end) runs the deterministic stages ([`stages`]) and the
//! language-model stages ([`llm`]), stores the result with where each field came from, and
//! enqueues the deliveries: signed webhooks ([`webhook`]), CRM sync ([`crm`], HubSpot in
//! [`hubspot`]) and follow-ups ([`followup`]), each sink on its own order key so that one that
//! is down delays only its own deliveries. Every delivery carries a stable idempotency key,
//! sent as `X-Webhook-Id`. [`receiver`] is the operator's local receiver
//! (`dialerd receive`) that verifies those signatures.

pub mod crm;
pub mod events;
pub mod followup;
pub mod hubspot;
pub mod llm;
pub mod pipeline;
pub mod receiver;
pub mod stages;
pub mod webhook;
pub mod worker;

use crate::settings::{LlmSettings, OutboxSettings, Secret, SmtpSettings};
use crate::store::Store;
use crate::trunk::Trunk;
use std::sync::Arc;

pub use worker::OutboxPool;

/// Why a job attempt failed; the worker retries `Retryable` with backoff and dead-letters `Permanent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying: timeouts, connection errors, 5xx, 408, 429, a busy database.
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help: other 4xx, a malformed job.
    #[error("{0}")]
    Permanent(String),
    /// A secret, token or server this sink needs is not in settings: dead-lettered at once, like
    /// `Permanent`, but the worker warns once per message rather than once per job.
    #[error("{0}")]
    Unconfigured(String),
    /// The sink asked for a pause (HTTP 429 with a wait it named): run again after `wait`
    /// without counting the attempt, since the request was never judged.
    #[error("{message} (asked to wait {wait:?})")]
    Throttled {
        /// What the sink said.
        message: String,
        /// How long it asked for.
        wait: std::time::Duration,
    },
}

impl From<crate::store::StoreError> for SinkError {
    fn from(e: crate::store::StoreError) -> Self {
        SinkError::Retryable(format!("store: {e}"))
    }
}

/// Everything the workers share: the store, one HTTP client, secrets and endpoints from
/// settings, and the trunk that sends text messages.
pub struct Pipeline {
    /// The store holding call records and the outbox.
    pub store: Store,
    /// HTTP client (rustls) for webhooks, the model API and the CRM.
    pub http: reqwest::Client,
    /// Webhook signing secret; without it webhooks are dead-lettered with that reason.
    pub webhook_secret: Option<Secret>,
    /// Model endpoints per stage.
    pub llm: LlmSettings,
    /// HubSpot token.
    pub hubspot_token: Option<Secret>,
    /// SMTP server for email follow-ups.
    pub smtp: SmtpSettings,
    /// Worker count and backoff.
    pub outbox: OutboxSettings,
    /// Trunk that sends SMS follow-ups; `None` dead-letters them.
    pub sms: Option<Arc<dyn Trunk>>,
    /// Rate-limited sinks (a HubSpot API base) and the instant (UTC) before which no request
    /// goes to them: a 429 for one job holds every job of that sink.
    paused: std::sync::Mutex<std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>>,
}

impl Pipeline {
    /// A pipeline over `store` with the secrets and endpoints of `settings`; no SMS trunk.
    ///
    /// Errors: the HTTP client cannot be built (TLS setup).
    pub fn new(store: Store, settings: &crate::settings::Settings) -> Result<Pipeline, SinkError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("dialerd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SinkError::Permanent(format!("HTTP client: {e}")))?;
        Ok(Pipeline {
            store,
            http,
            webhook_secret: settings.webhook_secret.clone(),
            llm: settings.llm.clone(),
            hubspot_token: settings.hubspot_token.clone(),
            smtp: settings.smtp.clone(),
            outbox: settings.outbox.clone(),
            sms: None,
            paused: Default::default(),
        })
    }

    /// Sends SMS follow-ups through a sim trunk, which records them (the only trunk kind today).
    ///
    /// Errors: the default call model is invalid (it is not).
    pub fn with_sim_sms(self) -> Result<Pipeline, SinkError> {
        let model = crate::sim::CallModel::new(&crate::campaign::file::SimFile::default())
            .map_err(|e| SinkError::Permanent(e.to_string()))?;
        let (events, _) = tokio::sync::mpsc::channel(1);
        Ok(self.with_sms(Arc::new(crate::trunk::sim::SimTrunk::new(model, 1, 1.0, events))))
    }

    /// Sends SMS follow-ups through `trunk`.
    pub fn with_sms(mut self, trunk: Arc<dyn Trunk>) -> Pipeline {
        self.sms = Some(trunk);
        self
    }
}

impl Pipeline {
    /// How long `sink` is still paused at `now`; `None` when it is not.
    pub fn paused_for(&self, sink: &str, now: chrono::DateTime<chrono::Utc>) -> Option<std::time::Duration> {
        let map = self.paused.lock().ok()?;
        let until = *map.get(sink)?;
        (until > now).then(|| (until - now).to_std().unwrap_or_default())
    }

    /// Holds every request to `sink` for `wait` from `now` (an existing longer pause stays).
    pub fn pause(&self, sink: &str, wait: std::time::Duration, now: chrono::DateTime<chrono::Utc>) {
        let until = chrono::TimeDelta::from_std(wait)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        if let Ok(mut map) = self.paused.lock() {
            let e = map.entry(sink.to_string()).or_insert(until);
            *e = (*e).max(until);
        }
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("webhook_secret", &self.webhook_secret)
            .field("llm", &self.llm)
            .field("smtp", &self.smtp)
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}
