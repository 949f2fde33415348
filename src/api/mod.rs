//! The daemon's HTTP listener (axum): one module per surface, each adding its routes to the one
//! router built here, with shared limits and errors. Surfaces: [`health`] (`GET /healthz`),
//! [`twilio`] (Twilio's status and AMD callbacks), [`livekit`] (LiveKit's webhooks) and
//! [`agent`] (the voice agent's events and the OpenAPI document), [`campaigns`] (status and
//! pause / resume / cancel), [`abandonment`] (a campaign's abandonment over time),
//! [`conversations`] (calls, transcripts, recordings), [`events`] (live Server-Sent Events),
//! [`page`] (the status page at `/`), [`metrics`] (Prometheus) and `GET /readyz`; [`operator`] holds
//! what the operator surfaces share and their scoped bearer tokens. Every request is held to `[api]
//! max_body_bytes` (413) and `request_timeout` (408); every refusal is an [`ApiError`] answered
//! as JSON, including the bare statuses of lower layers (unknown route, body limit, timeout).
//! A refused request is answered before anything reaches a campaign.

pub mod abandonment;
pub mod agent;
pub mod auth;
pub mod campaigns;
pub mod conversations;
pub mod error;
pub mod events;
pub mod form;
pub mod health;
pub mod livekit;
pub mod metrics;
pub mod operator;
pub mod page;
pub mod twilio;

pub use error::ApiError;

use crate::settings::ApiSettings;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// What the handlers share.
pub struct ApiState {
    /// The base URL providers reach the listener at, without a trailing `/`
    /// (`https://dialer.example.com`); a request's full URL is this plus its path and query.
    pub public_url: String,
    /// The Twilio callback surface; `None` when no Twilio auth token is configured, and its
    /// routes then answer 503.
    pub twilio: Option<twilio::TwilioSurface>,
    /// The LiveKit webhook surface; `None` without `[livekit]` credentials (its route answers 503).
    pub livekit: Option<livekit::LivekitSurface>,
    /// The voice agent's events surface; `None`: its events route answers 503.
    pub agents: Option<agent::AgentSurface>,
    /// The operator surfaces (campaigns, metrics, readiness); `None`: they answer 503.
    pub operator: Option<operator::OperatorSurface>,
}

impl ApiState {
    /// State for `public_url` (a trailing `/` is dropped) with no surface configured.
    pub fn new(public_url: &str) -> ApiState {
        ApiState {
            public_url: public_url.trim_end_matches('/').to_string(),
            twilio: None,
            livekit: None,
            agents: None,
            operator: None,
        }
    }
}

/// Builds the router of every surface under the `[api]` limits.
pub fn router(state: Arc<ApiState>, limits: &ApiSettings) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(twilio::routes())
        .merge(livekit::routes())
        .merge(agent::routes())
        .merge(campaigns::routes())
        .merge(abandonment::routes())
        .merge(conversations::routes())
        .merge(events::routes())
        .merge(page::routes())
        .merge(metrics::routes())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .with_state(state)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::map_response(json_errors))
        .layer(TraceLayer::new_for_http())
}

/// Turns a bare error status from a lower layer (body limit, timeout, method router) into the
/// JSON [`ApiError`] body every other refusal has.
async fn json_errors(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(resp.status().is_client_error() || resp.status().is_server_error()) {
        return resp;
    }
    match ApiError::from_status(resp.status()) {
        Some(e) => e.into_response(),
        None => resp,
    }
}

/// Why the listener could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The `listen` address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("HTTP listener: {0}")]
    Serve(std::io::Error),
}

/// A bound listener, ready to [`Listener::serve`].
pub struct Listener {
    listener: tokio::net::TcpListener,
}

impl Listener {
    /// Binds `addr` (port 0: any free port).
    ///
    /// Errors: [`ServeError::Bind`].
    pub async fn bind(addr: SocketAddr) -> Result<Listener, ServeError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Listener { listener })
    }

    /// The address actually bound.
    ///
    /// Errors: the OS error when the socket has none.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown` completes, then lets requests in flight finish.
    ///
    /// Errors: [`ServeError::Serve`].
    pub async fn serve(
        self,
        router: Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::Serve)
    }
}

/// A listener serving in the background until [`RunningListener::stop`].
pub struct RunningListener {
    /// The address bound.
    pub addr: SocketAddr,
    /// The public base URL in use.
    pub public_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl RunningListener {
    /// Stops accepting, waits up to `grace` for requests in flight, and returns.
    pub async fn stop(self, grace: std::time::Duration) {
        let _ = self.stop.send(());
        match tokio::time::timeout(grace, self.task).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "HTTP listener failed."),
            Ok(_) => {}
            Err(_) => tracing::warn!("HTTP listener still had requests in flight at shutdown."),
        }
    }
}

/// Binds `settings.listen` and serves every surface in the background: `public_url` from the
/// settings (else `http://` + the bound address), Twilio callbacks into `hub` when
/// `[twilio] auth_token` is set, LiveKit webhooks into `livekit` when `[livekit] api_key` and
/// `api_secret` are, and the voice agent's events into `agents` (behind `[api] agent_token`).
///
/// Errors: [`ServeError::Bind`].
pub async fn start(
    settings: &crate::settings::Settings,
    hub: Arc<crate::trunk::twilio::TwilioHub>,
    livekit: Arc<crate::trunk::livekit::LivekitHub>,
    agents: Arc<crate::engine::agent_hub::AgentHub>,
    operator: Option<operator::OperatorSurface>,
) -> Result<RunningListener, ServeError> {
    let listener = Listener::bind(settings.listen).await?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: settings.listen,
        source,
    })?;
    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let mut state = ApiState::new(&public_url);
    state.twilio = settings
        .twilio
        .auth_token
        .clone()
        .filter(|t| !t.expose().is_empty())
        .map(|auth_token| twilio::TwilioSurface {
            auth_token,
            hub,
            store: operator.as_ref().map(|o| o.store.clone()),
        });
    let lk = &settings.livekit;
    if let (Some(key), Some(secret)) = (&lk.api_key, &lk.api_secret)
        && !key.expose().is_empty()
        && !secret.expose().is_empty()
    {
        state.livekit = Some(livekit::LivekitSurface::new(key.expose(), secret.expose(), livekit));
    }
    let twilio_callbacks = state.twilio.is_some();
    let livekit_webhooks = state.livekit.is_some();
    let token = settings.api.agent_token.clone().filter(|t| !t.expose().is_empty());
    let agent_events = token.is_some();
    state.agents = Some(agent::AgentSurface { token, hub: agents });
    let operator_tokens = operator.as_ref().map_or(0, |o| o.tokens.len());
    state.operator = operator;
    let state = Arc::new(state);
    let app = router(Arc::clone(&state), &settings.api);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(listener.serve(app, async move {
        let _ = stopped.await;
    }));
    tracing::info!(listen = %addr, public_url = %state.public_url, twilio_callbacks, livekit_webhooks, agent_events, operator_tokens, "HTTP listener started.");
    Ok(RunningListener {
        addr,
        public_url: state.public_url.clone(),
        stop,
        task,
    })
}
