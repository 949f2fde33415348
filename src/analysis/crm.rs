//! CRM auto-sync. `hubspot`: find the contact by phone (every form HubSpot's phone properties
//! hold) or email (CRM v3 search), create it if missing, then create a call engagement
//! (`POST /crm/v3/objects/calls`) associated with it; request shapes and rate limits in
//! [`super::hubspot`].
//! `custom`: a signed `crm.sync` webhook to `base_url`. `crm_sync_fields` selects the fields.

use super::{Pipeline, SinkError, hubspot, webhook};
use crate::call::CallRecord;
use crate::campaign::analysis_file::{CrmFile, CrmProvider, WebhooksFile};
use crate::store::NewJob;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

/// HubSpot's public API base.
pub const HUBSPOT_BASE: &str = "https://api.hubapi.com";

/// Payload of a `crm` job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrmJob {
    /// Provider.
    pub provider: CrmProvider,
    /// API base (HubSpot) or receiver (custom).
    pub base_url: String,
    /// Selected fields and their values.
    pub fields: serde_json::Map<String, Value>,
    /// Contact's phone (E.164), email and names, to find or create it.
    pub contact: Value,
    /// Request timeout in milliseconds.
    pub timeout_ms: u64,
    /// The campaign's webhook settings when they select `error_occurred`, sent if this job is dead-lettered.
    #[serde(default)]
    pub on_error: Option<WebhooksFile>,
}

/// HubSpot's default call outcomes, the internal GUID values of `hs_call_disposition`.
///
/// Source: HubSpot developer docs, "Calls" engagement API, property `hs_call_disposition`
/// ("The default HubSpot outcome labels and their internal values are: ..."),
/// <https://developers.hubspot.com/docs/guides/api/crm/engagements/calls> (checked 2026-11;
/// the same list is on the reference page
/// <https://developers.hubspot.com/docs/api-reference/legacy/crm/activities/calls/guide>).
/// An account's custom outcomes have other GUIDs (`GET /calling/v1/dispositions`).
pub mod hubspot_disposition {
    /// "Busy".
    pub const BUSY: &str = "9d9162e7-6cf3-4944-bf63-4dff82258764";
    /// "Connected".
    pub const CONNECTED: &str = "f240bbac-87c9-4f6e-bf70-924b57d47db7";
    /// "Left live message".
    pub const LEFT_LIVE_MESSAGE: &str = "a4c4c377-d246-4b32-a13b-75a56a4cd0ff";
    /// "Left voicemail".
    pub const LEFT_VOICEMAIL: &str = "b2cf5968-551e-4856-9783-52b3da59a7d0";
    /// "No answer".
    pub const NO_ANSWER: &str = "73a0d17f-1163-4015-bdd5-ec830791da20";
    /// "Wrong number".
    pub const WRONG_NUMBER: &str = "17b47fee-58de-441e-a44c-c6300d46f273";
}

/// `hs_call_status` values HubSpot documents for calls (same source as [`hubspot_disposition`]).
pub const HUBSPOT_CALL_STATUSES: &[&str] = &[
    "BUSY",
    "CALLING_CRM_USER",
    "CANCELED",
    "COMPLETED",
    "CONNECTING",
    "FAILED",
    "IN_PROGRESS",
    "NO_ANSWER",
    "QUEUED",
    "RINGING",
];

/// HubSpot's call outcome GUID (`hs_call_disposition`, see [`hubspot_disposition`]) and
/// `hs_call_status` for an attempt outcome. An abandoned call reached a person who heard the
/// recorded safe-harbor message: "Left live message". A `failed` call (the trunk could not place
/// it) is "No answer" with status `FAILED`, not "Wrong number", which would tell a sales rep the
/// contact's number is bad when the network was; machines and no answers are "No answer".
pub fn hubspot_outcome(outcome: &str) -> (&'static str, &'static str) {
    use hubspot_disposition as d;
    match outcome {
        "human" | "callback_requested" => (d::CONNECTED, "COMPLETED"),
        "voicemail_left" => (d::LEFT_VOICEMAIL, "COMPLETED"),
        "busy" => (d::BUSY, "BUSY"),
        "abandoned" => (d::LEFT_LIVE_MESSAGE, "COMPLETED"),
        "failed" => (d::NO_ANSWER, "FAILED"),
        _ => (d::NO_ANSWER, "NO_ANSWER"),
    }
}

/// The `crm` job for an analysed call.
pub fn job(crm: &CrmFile, w: &WebhooksFile, rec: &CallRecord, a: &Value, now: DateTime<Utc>) -> NewJob {
    let all = crm.crm_sync_fields.is_empty();
    let want = |f: &str| all || crm.crm_sync_fields.iter().any(|x| x == f);
    let mut fields = serde_json::Map::new();
    let candidates = [
        ("summary", a["call_summary"].clone()),
        ("disposition", a["disposition"].clone()),
        ("duration", a["metrics"]["duration_s"].clone()),
        ("status", json!(rec.outcome)),
        ("direction", json!("OUTBOUND")),
        ("timestamp", json!(rec.ended_at)),
        ("tags", a["tags"].clone()),
        ("sentiment", a["user_sentiment"].clone()),
        ("transcript", a["transcript"].clone()),
    ];
    for (k, v) in candidates {
        if want(k) || k == "timestamp" {
            fields.insert(k.into(), v);
        }
    }
    fields.insert("call_id".into(), json!(rec.call_id));
    let f = &rec.contact_fields;
    let payload = CrmJob {
        provider: crm.crm_provider,
        base_url: crm.base_url.clone().unwrap_or_else(|| HUBSPOT_BASE.into()),
        fields,
        contact: json!({"phone": rec.callee_number, "email": f.get("email"), "firstname": f.get("first_name"),
            "lastname": f.get("last_name"), "outcome": rec.outcome}),
        timeout_ms: w.timeout.as_millis() as u64,
        on_error: w.wants("error_occurred").then(|| w.clone()),
    };
    NewJob {
        campaign_id: rec.campaign_id.clone(),
        order_key: format!("crm:{}", rec.call_id),
        kind: "crm".into(),
        event: Some("crm.sync".into()),
        idempotency_key: super::events::idempotency_key(&[&rec.campaign_id, "crm", &rec.call_id]),
        payload: serde_json::to_string(&payload).unwrap_or_default(),
        max_attempts: w.webhook_retry_count + 1,
        run_at: now,
    }
}

/// POSTs `body` to HubSpot at `url` (the account's API at `base`), honouring the account's
/// rate-limit pause before sending and setting it from the reply: a 429 pauses every job of the
/// account for as long as HubSpot said (then [`SinkError::Throttled`]); a 2xx whose headers say
/// the window is used up pauses the next requests. A contact create refused with 409 because
/// the email exists answers `{"id": <existing contact>}`.
async fn hubspot_post(
    p: &Pipeline,
    base: &str,
    url: String,
    body: &Value,
    timeout: Duration,
    id: &str,
) -> Result<Value, SinkError> {
    let token = p
        .hubspot_token
        .as_ref()
        .ok_or_else(|| SinkError::Unconfigured("no HubSpot token configured (DIALERD__HUBSPOT_TOKEN)".into()))?;
    let sink = format!("hubspot:{base}");
    let create_contact = url.ends_with("/crm/v3/objects/contacts");
    if let Some(wait) = p.paused_for(&sink, Utc::now()) {
        return Err(SinkError::Throttled {
            message: "HubSpot rate limit: waiting as told".into(),
            wait,
        });
    }
    let resp = p
        .http
        .post(url)
        .timeout(timeout)
        .bearer_auth(token.expose())
        .header("X-Webhook-Id", id)
        .json(body)
        .send()
        .await
        .map_err(|e| webhook::transport_error(&e))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    if status.as_u16() == 429 {
        let reply: Value = resp.json().await.unwrap_or(Value::Null);
        let now = Utc::now();
        return match hubspot::throttle_wait(&headers, &reply, now) {
            Some(wait) => {
                p.pause(&sink, wait, now);
                let policy = reply["policyName"].as_str().unwrap_or("unnamed");
                Err(SinkError::Throttled {
                    message: format!("HTTP 429 from HubSpot ({policy} limit)"),
                    wait,
                })
            }
            None => Err(SinkError::Retryable("HTTP 429".into())),
        };
    }
    if status.as_u16() == 409 && create_contact {
        // The email belongs to a contact the search did not return (HubSpot's search index lags
        // writes by a few seconds): log the call on that contact rather than dead-letter it.
        let reply: Value = resp.json().await.unwrap_or(Value::Null);
        return hubspot::existing_contact_id(&reply)
            .map(|id| json!({"id": id}))
            .ok_or_else(|| SinkError::Permanent("HTTP 409".into()));
    }
    webhook::classify(status)?;
    if let Some(wait) = hubspot::pause_after(&headers) {
        p.pause(&sink, wait, Utc::now());
    }
    resp.json()
        .await
        .map_err(|e| SinkError::Retryable(format!("HubSpot reply: {e}")))
}

/// The call's HubSpot properties from the synced `fields`: `hs_timestamp` (required by HubSpot,
/// UTC with milliseconds), `hs_call_body` (summary, then tags, sentiment and disposition),
/// `hs_call_duration` (milliseconds), `hs_call_disposition` (outcome GUID), `hs_call_status` and
/// `hs_call_direction`, every value a string.
pub fn call_properties(f: &serde_json::Map<String, Value>, outcome: &str) -> serde_json::Map<String, Value> {
    let (disposition, status) = hubspot_outcome(outcome);
    let mut props = serde_json::Map::new();
    let ts = f.get("timestamp").and_then(hubspot::timestamp);
    props.insert(
        "hs_timestamp".into(),
        json!(ts.unwrap_or_else(|| Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))),
    );
    let mut body = String::new();
    if let Some(s) = f.get("summary").and_then(Value::as_str) {
        body.push_str(s);
    }
    for (k, label) in [
        ("tags", "Tags"),
        ("sentiment", "Sentiment"),
        ("disposition", "Disposition"),
    ] {
        if let Some(v) = f.get(k).filter(|v| !v.is_null()) {
            body.push_str(&format!("\n{label}: {v}"));
        }
    }
    if f.contains_key("summary") || body.contains('\n') {
        props.insert("hs_call_body".into(), json!(body.trim()));
    }
    if let Some(d) = f.get("duration").and_then(Value::as_f64) {
        props.insert(
            "hs_call_duration".into(),
            json!(((d * 1000.0).round() as i64).to_string()),
        );
    }
    if f.contains_key("disposition") {
        props.insert("hs_call_disposition".into(), json!(disposition));
    }
    if f.contains_key("status") {
        props.insert("hs_call_status".into(), json!(status));
    }
    if f.contains_key("direction") {
        props.insert("hs_call_direction".into(), json!("OUTBOUND"));
    }
    props
}

/// Runs a `crm` job.
///
/// Errors: [`SinkError`] from HubSpot or the custom receiver; permanent when a token or secret is missing.
pub async fn run_job(p: &Pipeline, id: &str, payload: &str) -> Result<(), SinkError> {
    let job: CrmJob = serde_json::from_str(payload).map_err(|e| SinkError::Permanent(format!("crm payload: {e}")))?;
    let timeout = Duration::from_millis(job.timeout_ms);
    let base = job.base_url.trim_end_matches('/');
    match job.provider {
        CrmProvider::Custom => {
            let secret = p.webhook_secret.as_ref().ok_or_else(|| {
                SinkError::Unconfigured("no webhook secret configured (DIALERD__WEBHOOK_SECRET)".into())
            })?;
            let body = super::events::envelope(
                "crm.sync",
                id,
                Utc::now(),
                json!({"contact": job.contact, "call": job.fields}),
            );
            webhook::post_signed(
                &p.http,
                base,
                secret.expose().as_bytes(),
                "crm.sync",
                id,
                &body,
                timeout,
            )
            .await?;
        }
        CrmProvider::Hubspot => {
            let c = &job.contact;
            let phone = c["phone"].as_str().unwrap_or_default();
            let email = c["email"].as_str();
            let search = hubspot::search_body(phone, email);
            let found = hubspot_post(
                p,
                base,
                format!("{base}/crm/v3/objects/contacts/search"),
                &search,
                timeout,
                id,
            )
            .await?;
            let results = found["results"].as_array().map(Vec::as_slice).unwrap_or_default();
            let contact_id = match hubspot::pick_contact(results, phone, email) {
                Some(x) => x,
                None => {
                    let body = hubspot::contact_body(c);
                    let created =
                        hubspot_post(p, base, format!("{base}/crm/v3/objects/contacts"), &body, timeout, id).await?;
                    created["id"]
                        .as_str()
                        .ok_or_else(|| SinkError::Retryable("HubSpot created a contact without an id".into()))?
                        .to_string()
                }
            };
            let props = call_properties(&job.fields, c["outcome"].as_str().unwrap_or_default());
            let call = hubspot::call_body(props, &contact_id);
            hubspot_post(p, base, format!("{base}/crm/v3/objects/calls"), &call, timeout, id).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_documented_dispositions_and_statuses() {
        use hubspot_disposition as d;
        assert_eq!(hubspot_outcome("failed"), (d::NO_ANSWER, "FAILED"));
        assert_eq!(hubspot_outcome("abandoned"), (d::LEFT_LIVE_MESSAGE, "COMPLETED"));
        assert_eq!(hubspot_outcome("human"), (d::CONNECTED, "COMPLETED"));
        let documented = [
            d::BUSY,
            d::CONNECTED,
            d::LEFT_LIVE_MESSAGE,
            d::LEFT_VOICEMAIL,
            d::NO_ANSWER,
            d::WRONG_NUMBER,
        ];
        for o in [
            "human",
            "callback_requested",
            "voicemail_left",
            "busy",
            "failed",
            "no_answer",
            "machine",
            "abandoned",
            "unknown",
        ] {
            let (guid, status) = hubspot_outcome(o);
            assert!(documented.contains(&guid), "{o}: {guid}");
            assert!(HUBSPOT_CALL_STATUSES.contains(&status), "{o}: {status}");
        }
        assert_eq!(hubspot_outcome("human"), (d::CONNECTED, "COMPLETED"));
        assert_eq!(
            hubspot_outcome("voicemail_left").0,
            "b2cf5968-551e-4856-9783-52b3da59a7d0"
        );
        assert_eq!(hubspot_outcome("no_answer").0, "73a0d17f-1163-4015-bdd5-ec830791da20");
        assert_eq!(
            hubspot_outcome("busy"),
            ("9d9162e7-6cf3-4944-bf63-4dff82258764", "BUSY")
        );
    }
}
