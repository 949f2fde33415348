//! The voice agent's events API: `POST /v1/calls/{call_id}/events` (the agent reports the
//! conversation of a live call: transcript turns, tool calls, opt-out, callback request, its own
//! AMD, end of call) and `GET /v1/openapi.json` (this API's OpenAPI 3.1 document, no auth).
//!
//! A request is checked in this order, and the first failure answers: a token is configured
//! (503), `Authorization: Bearer` matches `[api] agent_token` in constant time (401), the body is
//! JSON (415, 400), every event is well formed (422 naming `events[i].field`), the call is live
//! (404 unknown, 409 ended). Only then does anything reach the call, so a refusal changes nothing.
//! `call_id` is the stable id `c<contact>a<attempt>` or the trunk's own call id.

use super::{ApiError, ApiState};
use crate::call::agent::parse_events;
use crate::engine::agent_hub::{AgentHub, AgentHubError};
use crate::settings::Secret;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::Utc;
use std::sync::Arc;
use tracing::debug;

/// Path of the events route (axum syntax).
pub const EVENTS_PATH: &str = "/v1/calls/{call_id}/events";
/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/v1/openapi.json";
/// The OpenAPI 3.1 document of the agent events API, as served.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the agent routes need.
pub struct AgentSurface {
    /// The agent's bearer token; `None` (or empty): the events route answers 503.
    pub token: Option<Secret>,
    /// Where the events go.
    pub hub: Arc<AgentHub>,
}

/// The agent routes.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route(EVENTS_PATH, post(events))
        .route(OPENAPI_PATH, get(openapi))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn events(
    State(state): State<Arc<ApiState>>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let unconfigured =
        || ApiError::Unavailable("the agent events API needs [api] agent_token (DIALERD__API__AGENT_TOKEN)".into());
    let surface = state.agents.as_ref().ok_or_else(unconfigured)?;
    let token = surface
        .token
        .as_ref()
        .filter(|t| !t.expose().is_empty())
        .ok_or_else(unconfigured)?;
    super::auth::require_bearer(&headers, Some(token))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::UnsupportedMediaType(
            "the events body must be application/json".into(),
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let events = parse_events(&value).map_err(ApiError::Unprocessable)?;
    let n = events.len();
    let d = surface
        .hub
        .deliver(&call_id, events, Utc::now())
        .await
        .map_err(|e| match e {
            AgentHubError::UnknownCall(_) | AgentHubError::Ambiguous(_) => ApiError::NotFound(e.to_string()),
            AgentHubError::Ended(_) => ApiError::Conflict(e.to_string()),
            AgentHubError::Stopped(_) => ApiError::Unavailable(e.to_string()),
        })?;
    debug!(call_id = %call_id, events = n, accepted = d.accepted, duplicates = d.duplicates, "Agent events.");
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"call_id": call_id, "accepted": d.accepted, "duplicates": d.duplicates})),
    ))
}
