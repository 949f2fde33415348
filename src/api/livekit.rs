//! LiveKit's webhooks: `POST /v1/trunk/livekit/webhook`. LiveKit signs each one with a JWT in
//! `Authorization` (HS256 with the project's API secret, its `sha256` claim the base64 SHA-256 of
//! the body); `livekit-api`'s `WebhookReceiver` checks both before the JSON is read. A request is
//! checked in this order, and the first failure answers: UTF-8 body (400), token present and
//! signed by the project (401), body hash (403, tampered), event JSON (400); only then is it handed
//! to the [`LivekitHub`], so nothing refused reaches a campaign. Rooms that are not a running
//! campaign's are acknowledged (200) and ignored; a repeated event id changes nothing.

use super::{ApiError, ApiState};
use crate::trunk::livekit::{HubError, LivekitHub, WebhookOutcome};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use chrono::Utc;
use livekit_api::access_token::TokenVerifier;
use livekit_api::webhooks::{WebhookError, WebhookReceiver};
use std::sync::Arc;
use tracing::{debug, warn};

/// Path of the webhook (set it as the project's webhook URL: `public_url` + this).
pub const WEBHOOK_PATH: &str = "/v1/trunk/livekit/webhook";

/// What the LiveKit route needs: the verifier of the project's signatures, and where events go.
pub struct LivekitSurface {
    receiver: WebhookReceiver,
    /// Routes verified webhooks to the campaigns' trunks.
    pub hub: Arc<LivekitHub>,
}

impl LivekitSurface {
    /// The surface verifying webhooks signed with `api_key` / `api_secret` (the project's pair).
    pub fn new(api_key: &str, api_secret: &str, hub: Arc<LivekitHub>) -> LivekitSurface {
        LivekitSurface {
            receiver: WebhookReceiver::new(TokenVerifier::with_api_key(api_key, api_secret)),
            hub,
        }
    }
}

/// The LiveKit webhook route.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route(WEBHOOK_PATH, post(webhook))
}

async fn webhook(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> Result<StatusCode, ApiError> {
    let surface = state.livekit.as_ref().ok_or_else(|| {
        ApiError::Unavailable("LiveKit webhooks need [livekit] api_key and api_secret in the settings".into())
    })?;
    let body = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
        .filter(|v| !v.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let event = surface.receiver.receive(body, token).map_err(|e| match e {
        WebhookError::InvalidData(e) => ApiError::BadRequest(format!("webhook event: {e}")),
        WebhookError::InvalidSignature | WebhookError::InvalidBase64(_) => {
            warn!("Refused a LiveKit webhook: its body does not match the signed sha256.");
            ApiError::Forbidden("the body does not match the token's sha256")
        }
        WebhookError::InvalidAuth(_) => {
            warn!("Refused a LiveKit webhook: the token is not signed by this project's API key (check [livekit]).");
            ApiError::Unauthorized
        }
    })?;
    let outcome = surface.hub.webhook(&event, Utc::now()).await.map_err(|e| match e {
        HubError::UnknownCampaign(_) => ApiError::NotFound(e.to_string()),
        HubError::Stopped(_) => ApiError::Unavailable(e.to_string()),
    })?;
    let room = event.room.as_ref().map(|r| r.name.as_str()).unwrap_or("");
    debug!(event = %event.event, id = %event.id, room, outcome = ?outcome, "LiveKit webhook.");
    Ok(match outcome {
        WebhookOutcome::Duplicate | WebhookOutcome::Ignored | WebhookOutcome::Delivered { .. } => StatusCode::OK,
    })
}
