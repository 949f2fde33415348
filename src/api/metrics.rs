//! `GET /metrics`: the Prometheus text exposition format (read scope). The process's counters
//! and histograms come from the recorder as they are; the gauges that must hold across restarts
//! (contacts by status, measured abandonment, refusals, outbox depth and age) are read from the
//! store first, at scrape time.

use super::operator::authorized;
use super::{ApiError, ApiState};
use crate::settings::TokenScope;
use crate::telemetry as t;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::Utc;
use metrics::{counter, gauge};
use std::sync::Arc;

/// The metrics route.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/metrics", get(scrape))
}

fn rate(m: crate::store::MeasuredAbandonment) -> f64 {
    if m.human == 0 {
        0.0
    } else {
        m.abandoned as f64 / m.human as f64
    }
}

async fn scrape(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    let (s, _) = authorized(&state, &headers, TokenScope::Read)?;
    let handle = s
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no metrics recorder in this process".into()))?;
    let now = Utc::now();
    let unavailable = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "Metrics scrape failed on the database.");
        ApiError::Unavailable("the database did not answer".into())
    };
    for (id, g) in s.store.campaign_gauges(now).await.map_err(unavailable)? {
        for status in crate::core::ContactStatus::ALL.iter().map(|c| c.as_str()) {
            let n = g.contacts.get(status).copied().unwrap_or(0);
            gauge!(t::CONTACTS, "campaign" => id.clone(), "status" => status).set(n as f64);
        }
        gauge!(t::ABANDONMENT, "campaign" => id.clone(), "window" => "24h").set(rate(g.abandonment_24h));
        gauge!(t::ABANDONMENT, "campaign" => id.clone(), "window" => "30d").set(rate(g.abandonment_30d));
        for (reason, n) in g.refusals {
            counter!(t::REFUSALS, "campaign" => id.clone(), "reason" => reason).absolute(n);
        }
    }
    let outbox = s.store.outbox_gauges().await.map_err(unavailable)?;
    for state in ["pending", "running", "done", "dead"] {
        let n = outbox.jobs.get(state).copied().unwrap_or(0);
        gauge!(t::OUTBOX_JOBS, "state" => state).set(n as f64);
    }
    let age = outbox
        .oldest_pending
        .map_or(0.0, |t0| (now - t0).num_milliseconds().max(0) as f64 / 1000.0);
    gauge!(t::OUTBOX_OLDEST).set(age);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    ))
}
