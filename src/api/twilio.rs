//! Twilio's callbacks: `POST /v1/trunk/twilio/status` (call progress: `StatusCallback`),
//! `POST /v1/trunk/twilio/amd` (`AsyncAmdStatusCallback`) and `POST /v1/trunk/twilio/recording`
//! (`RecordingStatusCallback`, stored for the conversations API), each with the attempt in the query
//! (`?campaign=…&contact=…&attempt=…`). A callback is checked in this order, and the first
//! failure answers: form body (415/413/400), `X-Twilio-Signature` over `public_url` + path +
//! query and every form parameter (403, logged without the token), the query's attempt (400),
//! the fields (422); only then is it handed to the [`TwilioHub`], so nothing refused reaches a
//! campaign. An unknown campaign is 404.

use super::form::FormBody;
use super::{ApiError, ApiState};
use crate::settings::Secret;
use crate::trunk::twilio::signature::{self, SIGNATURE_HEADER};
use crate::trunk::twilio::{AmdCallback, CallbackTarget, HubError, RecordingCallback, StatusCallback, TwilioHub};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use chrono::Utc;
use std::sync::Arc;
use tracing::{debug, info, warn};

/// Path of the status callback.
pub const STATUS_PATH: &str = "/v1/trunk/twilio/status";
/// Path of the async AMD callback.
pub const AMD_PATH: &str = "/v1/trunk/twilio/amd";
/// Path of the recording status callback.
pub const RECORDING_PATH: &str = "/v1/trunk/twilio/recording";

/// What the Twilio routes need: the auth token Twilio signs with, and where callbacks go.
pub struct TwilioSurface {
    /// The account's auth token (the HMAC key of `X-Twilio-Signature`).
    pub auth_token: Secret,
    /// Routes callbacks to the campaigns' trunks.
    pub hub: Arc<TwilioHub>,
    /// Where recording URLs are stored; `None`: recording callbacks answer 503.
    pub store: Option<crate::store::Store>,
}

/// The Twilio callback routes.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route(STATUS_PATH, post(status))
        .route(AMD_PATH, post(amd))
        .route(RECORDING_PATH, post(recording))
}

/// Checks the signature and reads the attempt from the query.
fn verified(state: &ApiState, headers: &HeaderMap, uri: &Uri, form: &FormBody) -> Result<CallbackTarget, ApiError> {
    let surface = surface(state)?;
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = format!("{}{}", state.public_url, path);
    let given = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let ok = given.is_some_and(|sig| signature::verify(surface.auth_token.expose(), &url, &form.pairs, sig));
    if !ok {
        warn!(
            url = %url,
            signature_present = given.is_some(),
            "Refused a Twilio callback: X-Twilio-Signature does not match (check public_url and the auth token)."
        );
        return Err(ApiError::Forbidden("X-Twilio-Signature does not match this request"));
    }
    serde_urlencoded::from_str::<CallbackTarget>(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("callback query (campaign, contact, attempt): {e}")))
}

fn surface(state: &ApiState) -> Result<&TwilioSurface, ApiError> {
    state
        .twilio
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("Twilio callbacks need [twilio] auth_token in the settings".into()))
}

fn hub_error(e: HubError) -> ApiError {
    match e {
        HubError::UnknownCampaign(_) => ApiError::NotFound(e.to_string()),
        HubError::Stopped(_) => ApiError::Unavailable(e.to_string()),
    }
}

async fn status(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    uri: Uri,
    form: FormBody,
) -> Result<StatusCode, ApiError> {
    let target = verified(&state, &headers, &uri, &form)?;
    let cb: StatusCallback = form.parse()?;
    let added = surface(&state)?
        .hub
        .status(&target, &cb, Utc::now())
        .await
        .map_err(hub_error)?;
    debug!(campaign = %target.campaign, contact = target.contact, attempt = target.attempt, call_id = %cb.call_sid,
        status = ?cb.call_status, sequence = ?cb.sequence_number, events = added, "Twilio status callback.");
    Ok(StatusCode::NO_CONTENT)
}

async fn amd(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    uri: Uri,
    form: FormBody,
) -> Result<StatusCode, ApiError> {
    let target = verified(&state, &headers, &uri, &form)?;
    let cb: AmdCallback = form.parse()?;
    let first = surface(&state)?
        .hub
        .amd(&target, &cb, Utc::now())
        .await
        .map_err(hub_error)?;
    if first.is_some() {
        info!(campaign = %target.campaign, contact = target.contact, attempt = target.attempt, call_id = %cb.call_sid,
            answered_by = ?cb.answered_by, detection_ms = cb.machine_detection_duration, "AMD verdict.");
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn recording(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    uri: Uri,
    form: FormBody,
) -> Result<StatusCode, ApiError> {
    let target = verified(&state, &headers, &uri, &form)?;
    let cb: RecordingCallback = form.parse()?;
    if cb.recording_status != "completed" {
        return Ok(StatusCode::NO_CONTENT);
    }
    let store = surface(&state)?
        .store
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("recording callbacks need the daemon's database".into()))?;
    let found = store
        .set_recording_url(&cb.call_sid, &cb.recording_url)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "Could not store a recording URL.");
            ApiError::Unavailable("the database did not answer".into())
        })?;
    if !found {
        return Err(ApiError::NotFound(format!("no attempt with call {}", cb.call_sid)));
    }
    info!(campaign = %target.campaign, contact = target.contact, attempt = target.attempt, call_id = %cb.call_sid,
        recording = %cb.recording_sid, "Call recording stored.");
    Ok(StatusCode::NO_CONTENT)
}
