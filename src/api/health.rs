//! `GET /healthz`: the liveness probe for load balancers and systemd watchdogs; answers
//! `{"status": "ok"}` while the daemon serves requests.

use super::ApiState;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// The health routes.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}
