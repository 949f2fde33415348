//! The conversations API (read scope), in the shape voice-agent platforms use:
//! `GET /v1/conversations` (filters `campaign`, `contact`, `outcome`, `disposition`,
//! `ended_after`, `ended_before` as RFC 3339; `limit` 1..=500, default 50; `cursor` from the
//! previous page's `next_cursor`), `GET /v1/conversations/{id}` (duration, turns, resolution,
//! sentiment, topics, scores, structured data and provenance from the analysis),
//! `GET /v1/conversations/{id}/transcript`, and `GET /v1/conversations/{id}/audio` (302 to the
//! trunk's recording when the campaign records calls, else 404). Described in `openapi.json`.

use super::operator::authorized;
use super::{ApiError, ApiState};
use crate::settings::TokenScope;
use crate::store::{Conversation, ConversationFilter, Cursor, MAX_PAGE};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

/// The page size when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;

/// The conversations routes.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/conversations", get(list))
        .route("/v1/conversations/{id}", get(one))
        .route("/v1/conversations/{id}/transcript", get(transcript))
        .route("/v1/conversations/{id}/audio", get(audio))
}

/// Reads the list's query string; every refusal names the parameter.
///
/// Errors: [`ApiError::BadRequest`] for an unknown or repeated parameter or a bad value.
pub fn filter(query: Option<&str>) -> Result<ConversationFilter, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("query string: {e}")))?;
    let mut f = ConversationFilter {
        limit: DEFAULT_PAGE,
        ..ConversationFilter::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    let bad = |k: &str, why: &str| ApiError::BadRequest(format!("query parameter `{k}`: {why}"));
    let time = |k: &str, v: &str| {
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| bad(k, &format!("not an RFC 3339 instant ({e})")))
    };
    for (k, v) in &pairs {
        if !seen.insert(k.as_str()) {
            return Err(bad(k, "given more than once"));
        }
        match k.as_str() {
            "campaign" => f.campaign = Some(v.clone()),
            "contact" => f.contact = Some(v.parse().map_err(|_| bad(k, "not a contact id (an integer)"))?),
            "outcome" => f.outcome = Some(v.clone()),
            "disposition" => f.disposition = Some(v.clone()),
            "ended_after" => f.ended_after = Some(time(k, v)?),
            "ended_before" => f.ended_before = Some(time(k, v)?),
            "limit" => {
                f.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| bad(k, &format!("not an integer in 1..={MAX_PAGE}")))?;
            }
            "cursor" => f.after = Some(Cursor::decode(v).ok_or_else(|| bad(k, "not a cursor this API gave"))?),
            _ => return Err(bad(k, "unknown; see /v1/openapi.json")),
        }
    }
    Ok(f)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Seconds between two instants, to the millisecond.
fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

/// The summary every list item and the full record share.
pub fn summary(c: &Conversation) -> Value {
    json!({
        "id": c.id,
        "trunk_call_id": c.trunk_call_id,
        "campaign": c.campaign,
        "contact_id": c.contact_id,
        "attempt": c.attempt,
        "agent_id": c.agent_id,
        "from": c.from,
        "to": c.to,
        "dialed_at": rfc3339(c.dialed_at),
        "answered_at": c.answered_at.map(rfc3339),
        "ended_at": rfc3339(c.ended_at),
        "duration_seconds": c.answered_at.map_or(0.0, |a| seconds(a, c.ended_at)),
        "handle_seconds": seconds(c.dialed_at, c.ended_at),
        "outcome": c.outcome,
        "disposition": c.disposition,
        "turn_count": c.turn_count,
        "has_recording": c.recording_url.is_some(),
    })
}

/// The full record: the summary, first agent speech and the analysis' fields under the
/// names users know (`resolution` is `call_completion_rating`, `topics` the tags,
/// `structured_data` the extraction), `null` until analysed.
pub fn detail(c: &Conversation) -> Value {
    let mut v = summary(c);
    let a = c.analysis.as_ref();
    let field = |k: &str| a.and_then(|a| a.get(k)).cloned().unwrap_or(Value::Null);
    v["first_agent_speech_at"] = json!(c.first_agent_speech_at.map(rfc3339));
    v["analysis_status"] = json!(if a.is_some() { "done" } else { "pending" });
    v["summary"] = field("call_summary");
    v["resolution"] = field("call_completion_rating");
    v["sentiment"] = field("user_sentiment");
    v["topics"] = field("tags");
    v["scores"] = field("scores");
    v["structured_data"] = field("custom_analysis_data");
    v["knowledge_gaps"] = field("knowledge_gaps");
    v["conversions"] = field("conversions");
    v["provenance"] = field("provenance");
    v
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (s, _) = authorized(&state, &headers, TokenScope::Read)?;
    let f = filter(query.as_deref())?;
    let (page, next) = s.store.conversations(&f).await.map_err(ApiError::store)?;
    let items: Vec<Value> = page.iter().map(summary).collect();
    Ok(Json(
        json!({ "conversations": items, "next_cursor": next.map(|c| c.encode()) }),
    ))
}

async fn found(state: &ApiState, headers: &HeaderMap, id: &str) -> Result<Conversation, ApiError> {
    let (s, _) = authorized(state, headers, TokenScope::Read)?;
    s.store
        .conversation(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation `{id}`")))
}

async fn one(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(detail(&found(&state, &headers, &id).await?)))
}

async fn transcript(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (s, _) = authorized(&state, &headers, TokenScope::Read)?;
    let (messages, tools) = s
        .store
        .conversation_transcript(&id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation `{id}`")))?;
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| json!({"role": m.role, "text": m.text, "at": rfc3339(m.at)}))
        .collect();
    let tools: Vec<Value> = tools
        .iter()
        .map(|t| json!({"name": t.name, "arguments": t.arguments, "at": rfc3339(t.at)}))
        .collect();
    Ok(Json(json!({ "id": id, "messages": messages, "tool_events": tools })))
}

async fn audio(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let c = found(&state, &headers, &id).await?;
    let url = c
        .recording_url
        .ok_or_else(|| ApiError::NotFound(format!("conversation `{id}` has no recording")))?;
    Ok((StatusCode::FOUND, [(header::LOCATION, url)]).into_response())
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn the_filter_names_the_parameter_it_refuses() {
        let f = filter(Some(
            "campaign=spring&contact=12&limit=10&ended_after=2026-03-01T00:00:00Z",
        ))
        .unwrap();
        assert_eq!(f.campaign.as_deref(), Some("spring"));
        assert_eq!((f.contact, f.limit), (Some(12), 10));
        assert_eq!(filter(None).unwrap().limit, super::DEFAULT_PAGE);
        for (q, name) in [
            ("contact=x", "`contact`"),
            ("limit=0", "`limit`"),
            ("limit=501", "`limit`"),
            ("ended_before=yesterday", "`ended_before`"),
            ("cursor=zzz", "`cursor`"),
            ("campaing=spring", "`campaing`"),
            ("campaign=a&campaign=b", "`campaign`"),
        ] {
            let e = filter(Some(q)).unwrap_err().to_string();
            assert!(e.contains(name), "{q}: {e}");
        }
    }
}
