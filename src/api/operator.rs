//! What the operator surfaces share (campaigns, metrics, readiness): the store, the scoped
//! bearer tokens, the daemon's request channel, the heartbeats and the metrics recorder; and
//! the one check each of their routes starts with.

use super::{ApiError, ApiState};
use crate::engine::Request;
use crate::engine::service::Heartbeats;
use crate::settings::{ApiToken, TokenScope};
use crate::store::Store;
use axum::http::HeaderMap;
use metrics_exporter_prometheus::PrometheusHandle;
use std::time::Duration;
use tokio::sync::mpsc;

/// The operator surfaces' state.
pub struct OperatorSurface {
    /// The daemon's database.
    pub store: Store,
    /// Bearer tokens with their scopes (`[api] tokens`, `read_token`, `control_token`).
    pub tokens: Vec<ApiToken>,
    /// Where control changes go to reach the runners at once; `None`: they reach them at the
    /// next folder scan.
    pub requests: Option<mpsc::Sender<Request>>,
    /// The daemon's heartbeats and loaded flag, for `GET /readyz`.
    pub beats: Heartbeats,
    /// A heartbeat older than this is a wedged task (`service::wedge_limit`).
    pub wedge_limit: Duration,
    /// The Prometheus recorder; `None`: `GET /metrics` answers 503.
    pub metrics: Option<PrometheusHandle>,
    /// The runners' live events, streamed by `GET /v1/events`.
    pub live: crate::engine::live::LiveEvents,
}

/// The operator surface of `state`, after the bearer token was checked for `need`; returns the
/// surface and the token's name.
///
/// Errors: [`ApiError::Unavailable`] when the daemon serves no operator surface;
/// [`ApiError::Unauthorized`] (no or unknown token), [`ApiError::Forbidden`] (scope too narrow).
pub fn authorized<'s>(
    state: &'s ApiState,
    headers: &HeaderMap,
    need: TokenScope,
) -> Result<(&'s OperatorSurface, &'s str), ApiError> {
    let surface = state
        .operator
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("the operator API is not served by this process".into()))?;
    let name = super::auth::authorize(headers, &surface.tokens, need)?;
    Ok((surface, name))
}
