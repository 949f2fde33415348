//! `GET /v1/events` (read scope): the runners' live events as Server-Sent Events
//! (WHATWG HTML "Server-sent events"), so a page or a script follows campaigns without
//! polling. Each event's `event:` is its type (`call`, `campaign`, `pacing`) and its `data:` the
//! JSON of [`LiveEvent`]; `?campaign=ID` keeps one campaign's. A subscriber that falls more than
//! [`crate::engine::live::LIVE_BUFFER`] events behind gets one `lagged` event (`{"missed": n}`)
//! and continues with the newest. A comment line every 15 s keeps proxies from closing the stream.

use super::operator::authorized;
use super::{ApiError, ApiState};
use crate::engine::live::LiveEvent;
use crate::settings::TokenScope;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The events route.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/v1/events", get(events))
}

/// The campaign filter of the query string.
///
/// Errors: [`ApiError::BadRequest`] for any parameter other than one `campaign`.
pub fn campaign_filter(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("query string: {e}")))?;
    match pairs.as_slice() {
        [] => Ok(None),
        [(k, v)] if k == "campaign" => Ok(Some(v.clone())),
        _ => Err(ApiError::BadRequest(
            "query: only one `campaign` parameter is taken; see /v1/openapi.json".into(),
        )),
    }
}

/// One SSE event of `e`.
fn sse(e: &LiveEvent) -> Event {
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    Event::default().event(e.kind()).data(data)
}

async fn events(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (s, _) = authorized(&state, &headers, TokenScope::Read)?;
    let only = campaign_filter(query.as_deref())?;
    let start = (s.live.subscribe(), s.live.clone(), only);
    let stream = futures_util::stream::unfold(start, |(mut rx, live, only)| async move {
        loop {
            let event = tokio::select! {
                _ = live.closed() => return None,
                r = rx.recv() => match r {
                    Ok(e) if only.as_deref().is_none_or(|c| c == e.campaign()) => sse(&e),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(format!("{{\"missed\":{n}}}")),
                    Err(RecvError::Closed) => return None,
                },
            };
            return Some((Ok(event), (rx, live, only)));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_one_campaign_parameter_is_taken() {
        assert_eq!(super::campaign_filter(None).unwrap(), None);
        assert_eq!(
            super::campaign_filter(Some("campaign=a")).unwrap().as_deref(),
            Some("a")
        );
        for q in ["campaign=a&campaign=b", "kind=call", "campaign=a&x=1"] {
            assert!(super::campaign_filter(Some(q)).is_err(), "{q}");
        }
    }
}
