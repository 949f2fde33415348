//! The campaigns API: `GET /v1/campaigns` and `GET /v1/campaigns/{id}` (what `dialerd status
//! --json` prints; read scope) and `POST /v1/campaigns/{id}/pause|resume|cancel` (control
//! scope). A control change is stored first (recorded as `api:<token name>`), then sent to the
//! campaign's runner; the claim refuses every contact of a campaign not `running` from the
//! moment the change commits, so no dial starts after the answer.

use super::operator::authorized;
use super::{ApiError, ApiState};
use crate::settings::TokenScope;
use crate::store::{CampaignControl, ControlError};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use std::sync::Arc;
use tracing::info;

/// The campaigns routes.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/campaigns", get(list))
        .route("/v1/campaigns/{id}", get(one))
        .route("/v1/campaigns/{id}/{action}", post(control))
}

async fn list(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiError> {
    let (s, _) = authorized(&state, &headers, TokenScope::Read)?;
    let now = Utc::now();
    let status = s.store.campaign_status(None, 5, now).await.map_err(ApiError::store)?;
    let outbox = s.store.outbox_gauges().await.map_err(ApiError::store)?;
    let age = outbox
        .oldest_pending
        .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
    Ok(Json(serde_json::json!({
        "campaigns": status,
        "outbox": { "jobs": outbox.jobs, "oldest_pending_age_seconds": age },
    })))
}

async fn one(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<crate::store::CampaignStatus>, ApiError> {
    let (s, _) = authorized(&state, &headers, TokenScope::Read)?;
    let status = s
        .store
        .campaign_status(Some(&id), 5, Utc::now())
        .await
        .map_err(ApiError::store)?;
    status
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no campaign `{id}`")))
}

async fn control(
    State(state): State<Arc<ApiState>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<crate::store::ControlRecord>, ApiError> {
    let (s, token) = authorized(&state, &headers, TokenScope::Control)?;
    let to = match action.as_str() {
        "pause" => CampaignControl::Paused,
        "resume" => CampaignControl::Running,
        "cancel" => CampaignControl::Cancelled,
        _ => {
            return Err(ApiError::NotFound(format!(
                "no action `{action}`: pause, resume or cancel"
            )));
        }
    };
    let by = format!("api:{token}");
    let record = s
        .store
        .set_campaign_control(&id, to, &by, Utc::now())
        .await
        .map_err(|e| match e {
            ControlError::UnknownCampaign(_) => ApiError::NotFound(e.to_string()),
            ControlError::Cancelled(_) => ApiError::Conflict(e.to_string()),
            ControlError::Store(e) => ApiError::store(e),
        })?;
    info!(campaign = %id, control = record.control.as_str(), by = %by, "Campaign control changed through the API.");
    if let Some(tx) = &s.requests {
        let _ = tx
            .send(crate::engine::Request::Control {
                campaign: id,
                record: record.clone(),
            })
            .await;
    }
    Ok(Json(record))
}
