//! Health probes, without authentication: `GET /healthz` (liveness: the process serves
//! requests) and `GET /readyz` (readiness: the database answers, every embedded migration is
//! applied, the campaigns are loaded and no runner is wedged), 503 with every reason when not.

use super::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// The health routes.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Why the daemon is not ready now; empty when it is.
pub async fn not_ready(state: &ApiState) -> Vec<String> {
    let Some(s) = &state.operator else {
        return vec!["this process runs no daemon".into()];
    };
    let mut reasons = Vec::new();
    match s.store.ping().await {
        Err(e) => reasons.push(format!("database unreachable: {e}")),
        Ok(()) => match s.store.migrations_pending().await {
            Ok(0) => {}
            Ok(n) => reasons.push(format!("{n} migration(s) not applied")),
            Err(e) => reasons.push(format!("cannot read the migrations: {e}")),
        },
    }
    if !s.beats.loaded() {
        reasons.push("campaigns not loaded yet".into());
    }
    for (task, age) in s.beats.stale(s.wedge_limit) {
        reasons.push(format!("{task} has made no progress for {:.0} s", age.as_secs_f64()));
    }
    reasons
}

async fn readyz(State(state): State<Arc<ApiState>>) -> (StatusCode, Json<serde_json::Value>) {
    let reasons = not_ready(&state).await;
    if reasons.is_empty() {
        (StatusCode::OK, Json(serde_json::json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "not_ready", "reasons": reasons })),
        )
    }
}
