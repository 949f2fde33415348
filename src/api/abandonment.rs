//! The abandonment history API (read scope): `GET /v1/campaigns/{id}/abandonment?hours=&step_minutes=`
//! gives the campaign's measured 24-hour and 30-day abandonment (abandoned / person-answered,
//! FTC TSR 16 CFR 310.4(b)(4)(i) and Ofcom's 24 hours) at evenly spaced points over the last
//! `hours`, against its cap, computed from the attempts table with the core's own ledger
//! ([`crate::core::rolling_series`]), so the chart shows what the pacer saw. The status page
//! draws it. Described in `openapi.json`.

use super::operator::authorized;
use super::{ApiError, ApiState};
use crate::core::{AbandonCounts, rolling_series};
use crate::settings::TokenScope;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

/// Hours shown when `hours` is not given.
pub const DEFAULT_HOURS: u32 = 24;
/// The longest history asked for: 30 days, in hours.
pub const MAX_HOURS: u32 = 720;
/// The most points one answer carries.
pub const MAX_POINTS: u32 = 1_000;

/// The abandonment history route.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/v1/campaigns/{id}/abandonment", get(history))
}

/// The window and spacing asked for: (hours, step in minutes).
///
/// Errors: [`ApiError::BadRequest`] naming the parameter: unknown, repeated, not a whole
/// number, `hours` outside 1..=720, `step_minutes` outside 1..=1440 or giving more than 1,000 points.
pub fn window(query: Option<&str>) -> Result<(u32, u32), ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("query string: {e}")))?;
    let bad = |k: &str, why: &str| ApiError::BadRequest(format!("query parameter `{k}`: {why}"));
    let (mut hours, mut step) = (None, None);
    for (k, v) in &pairs {
        let slot = match k.as_str() {
            "hours" => &mut hours,
            "step_minutes" => &mut step,
            _ => return Err(bad(k, "unknown; expected hours or step_minutes")),
        };
        if slot.is_some() {
            return Err(bad(k, "given more than once"));
        }
        *slot = Some(v.parse::<u32>().map_err(|_| bad(k, "not a whole number"))?);
    }
    let hours = hours.unwrap_or(DEFAULT_HOURS);
    if !(1..=MAX_HOURS).contains(&hours) {
        return Err(bad("hours", "must be 1..=720"));
    }
    // By default about 120 points, on whole minutes.
    let step = step.unwrap_or_else(|| (hours * 60).div_ceil(120).max(1));
    if !(1..=1_440).contains(&step) {
        return Err(bad("step_minutes", "must be 1..=1440"));
    }
    if (hours * 60).div_ceil(step) + 1 > MAX_POINTS {
        return Err(bad("step_minutes", "gives more than 1000 points; take a longer step"));
    }
    Ok((hours, step))
}

fn counts(c: AbandonCounts) -> Value {
    json!({ "human": c.human, "abandoned": c.abandoned, "rate": c.rate() })
}

/// The points of a window of `hours` ending at `now`, `step` minutes apart, the last at `now`.
fn points(now: DateTime<Utc>, hours: u32, step: u32) -> Vec<DateTime<Utc>> {
    let step = TimeDelta::minutes(i64::from(step));
    let from = now - TimeDelta::hours(i64::from(hours));
    let mut at = from.duration_trunc(step).unwrap_or(from) + step;
    let mut out = Vec::new();
    while at < now {
        out.push(at);
        at += step;
    }
    out.push(now);
    out
}

async fn history(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (s, _) = authorized(&state, &headers, TokenScope::Read)?;
    let (hours, step) = window(query.as_deref())?;
    let now = Utc::now();
    let status = s
        .store
        .campaign_status(Some(&id), 0, now)
        .await
        .map_err(ApiError::store)?;
    let Some(status) = status.into_iter().next() else {
        return Err(ApiError::NotFound(format!("no campaign `{id}`")));
    };
    let at = points(now, hours, step);
    let since = at[0] - TimeDelta::days(30) - TimeDelta::minutes(2);
    let minutes: Vec<_> = s
        .store
        .abandon_minutes(&id, since)
        .await
        .map_err(ApiError::store)?
        .into_iter()
        .map(|m| (m.minute, m.human, m.abandoned))
        .collect();
    let series = rolling_series(&minutes, &at);
    let points: Vec<Value> = at
        .iter()
        .zip(series)
        .map(|(t, (day, month))| {
            json!({
                "at": t.to_rfc3339_opts(SecondsFormat::Secs, true),
                "last_24h": counts(day),
                "last_30d": counts(month),
            })
        })
        .collect();
    Ok(Json(json!({
        "campaign": id,
        "abandon_policy": status.compliance.abandon_policy,
        "abandon_cap": status.compliance.abandon_cap,
        "step_minutes": step,
        "points": points,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_checked_and_named() {
        assert_eq!(window(None).unwrap(), (24, 12));
        assert_eq!(window(Some("hours=720")).unwrap(), (720, 360));
        assert_eq!(window(Some("hours=2&step_minutes=1")).unwrap(), (2, 1));
        for (q, name) in [
            ("hours=0", "`hours`"),
            ("hours=721", "`hours`"),
            ("hours=x", "`hours`"),
            ("hours=1&hours=2", "`hours`"),
            ("step_minutes=0", "`step_minutes`"),
            ("hours=720&step_minutes=1", "`step_minutes`"),
            ("campaign=a", "`campaign`"),
        ] {
            let Err(ApiError::BadRequest(why)) = window(Some(q)) else {
                panic!("{q} accepted");
            };
            assert!(why.contains(name), "{q}: {why}");
        }
    }

    #[test]
    fn points_are_evenly_spaced_and_end_now() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T09:07:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = points(now, 1, 15);
        assert_eq!(p.last(), Some(&now));
        assert_eq!(p[0].to_rfc3339(), "2026-12-01T08:15:00+00:00");
        assert_eq!(p.len(), 5);
        assert!(p.windows(2).all(|w| w[1] > w[0]));
    }
}
