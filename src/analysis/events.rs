//! Outbox jobs as the engine and the pipeline create them: webhook envelopes
//! `{event, api_version, created_at, request_id, data}`, stable idempotency keys, ordering keys
//! per call and per sink, and the jobs written when a call rings, when it ends, when a campaign
//! starts or completes, and when a CRM or follow-up job is dead-lettered.

use crate::call::{CallDetail, CallRecord, Role};
use crate::campaign::analysis_file::{AnalysisConfig, WebhooksFile};
use crate::core::AttemptKey;
use crate::store::{Job, NewJob};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `api_version` of every envelope.
pub const API_VERSION: &str = "2025-01-01";

/// Payload of a `webhook` job: the exact bytes to send, so every retry is identical.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookJob {
    /// Receiver.
    pub url: String,
    /// Raw JSON body (the envelope).
    pub body: String,
    /// Per-request timeout in milliseconds.
    pub timeout_ms: u64,
}

/// Payload of an `analyze` job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalyzeJob {
    /// The call record to analyse.
    pub call_id: String,
    /// The campaign's post-call configuration when the call ended.
    pub config: AnalysisConfig,
    /// The campaign's caller id (the sender of SMS follow-ups).
    pub caller_id: String,
}

/// A stable idempotency key from the parts that identify one delivery: `evt_` + 32 hex digits.
pub fn idempotency_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    format!("evt_{}", &hex::encode(h.finalize())[..32])
}

/// The ordering key of a call's events to the campaign's webhook URL (`call_started`, the
/// message events, `call_ended`, `call_analyzed`, `sentiment.alert`, `error_occurred`,
/// `contact.exhausted`): delivered one at a time, in the order they were written.
pub fn call_order_key(call_id: &str) -> String {
    format!("call:{call_id}")
}

/// The ordering key of a call's `analyze` job, which shares it with nothing: the analysis waits
/// on nothing but the call's end (the job is written when the call ends), never on a sink.
pub fn analyze_order_key(call_id: &str) -> String {
    format!("analyze:{call_id}")
}

/// The envelope body of `event` with `data`, using `id` as `request_id`.
pub fn envelope(event: &str, id: &str, created_at: DateTime<Utc>, data: serde_json::Value) -> String {
    serde_json::json!({
        "event": event,
        "api_version": API_VERSION,
        "created_at": created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "request_id": id,
        "data": data,
    })
    .to_string()
}

/// A webhook job to `url` (any receiver: main, knowledge-gap, task, custom CRM).
#[allow(clippy::too_many_arguments)]
pub fn webhook_to(
    url: &str,
    w: &WebhooksFile,
    campaign: &str,
    order_key: &str,
    event: &str,
    id_parts: &[&str],
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> NewJob {
    let mut parts = vec![campaign, event];
    parts.extend_from_slice(id_parts);
    let id = idempotency_key(&parts);
    let payload = WebhookJob {
        url: url.to_string(),
        body: envelope(event, &id, now, data),
        timeout_ms: w.timeout.as_millis() as u64,
    };
    NewJob {
        campaign_id: campaign.to_string(),
        order_key: order_key.to_string(),
        kind: "webhook".into(),
        event: Some(event.to_string()),
        idempotency_key: id,
        payload: serde_json::to_string(&payload).unwrap_or_default(),
        max_attempts: w.webhook_retry_count + 1,
        run_at: now,
    }
}

/// The job for `event` to the campaign's webhook URL, when `webhook_events` selects it.
pub fn webhook(
    w: &WebhooksFile,
    campaign: &str,
    order_key: &str,
    event: &str,
    id_parts: &[&str],
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Option<NewJob> {
    let url = w.url.as_deref().filter(|_| w.wants(event))?;
    Some(webhook_to(url, w, campaign, order_key, event, id_parts, data, now))
}

/// `call_started` when the trunk reports the call ringing.
pub fn call_started(
    cfg: &AnalysisConfig,
    campaign: &str,
    key: AttemptKey,
    trunk_call_id: &str,
    agent_id: &str,
    now: DateTime<Utc>,
) -> Option<NewJob> {
    let call_id = CallRecord::id_for(key.contact, key.attempt);
    let data = serde_json::json!({
        "call_id": call_id, "trunk_call_id": trunk_call_id, "campaign_id": campaign,
        "contact_id": key.contact, "attempt": key.attempt, "agent_id": agent_id,
    });
    webhook(
        &cfg.webhooks,
        campaign,
        &call_order_key(&call_id),
        "call_started",
        &[&call_id],
        data,
        now,
    )
}

/// Jobs written with the call record when the call ends: `message_received` / `agent_speech`
/// per transcript message (behind `call_started` on the call's webhook key), then the `analyze`
/// job on its own key.
pub fn at_call_end(
    cfg: &AnalysisConfig,
    campaign: &str,
    caller_id: &str,
    key: AttemptKey,
    detail: Option<&CallDetail>,
    now: DateTime<Utc>,
) -> Vec<NewJob> {
    let call_id = CallRecord::id_for(key.contact, key.attempt);
    let order = call_order_key(&call_id);
    let mut jobs = Vec::new();
    for (i, m) in detail
        .map(|d| d.transcript.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let event = match m.role {
            Role::User => "message_received",
            Role::Agent => "agent_speech",
        };
        let text = super::stages::strip_gap_markers(&m.text);
        let data = serde_json::json!({"call_id": call_id, "index": i, "role": m.role, "text": text, "at": m.at});
        let n = i.to_string();
        jobs.extend(webhook(
            &cfg.webhooks,
            campaign,
            &order,
            event,
            &[&call_id, &n],
            data,
            now,
        ));
    }
    let payload = AnalyzeJob {
        call_id: call_id.clone(),
        config: cfg.clone(),
        caller_id: caller_id.to_string(),
    };
    jobs.push(NewJob {
        campaign_id: campaign.to_string(),
        order_key: analyze_order_key(&call_id),
        kind: "analyze".into(),
        event: None,
        idempotency_key: idempotency_key(&[campaign, "analyze", &call_id]),
        payload: serde_json::to_string(&payload).unwrap_or_default(),
        max_attempts: 5,
        run_at: now,
    });
    jobs
}

/// `contact.exhausted` for a contact whose attempts ran out.
pub fn contact_exhausted(cfg: &AnalysisConfig, campaign: &str, key: AttemptKey, now: DateTime<Utc>) -> Option<NewJob> {
    let call_id = CallRecord::id_for(key.contact, key.attempt);
    let data = serde_json::json!({"campaign_id": campaign, "contact_id": key.contact, "attempts": key.attempt, "last_call_id": call_id});
    let contact = key.contact.to_string();
    webhook(
        &cfg.webhooks,
        campaign,
        &call_order_key(&call_id),
        "contact.exhausted",
        &[&contact],
        data,
        now,
    )
}

/// `campaign.started` (once per campaign) or `campaign.completed` (once per campaign).
pub fn campaign_event(
    cfg: &AnalysisConfig,
    campaign: &str,
    name: &str,
    event: &str,
    now: DateTime<Utc>,
) -> Option<NewJob> {
    let data = serde_json::json!({"campaign_id": campaign, "name": name, "at": now});
    webhook(
        &cfg.webhooks,
        campaign,
        &format!("campaign:{campaign}"),
        event,
        &[],
        data,
        now,
    )
}

/// What a dead-lettered `crm` or `follow_up` job's payload says about where its error goes.
#[derive(Deserialize)]
struct DeadLetterView {
    #[serde(default)]
    on_error: Option<WebhooksFile>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    fields: serde_json::Map<String, serde_json::Value>,
}

/// `error_occurred` for a `crm` or `follow_up` job that reached the dead state, when the
/// campaign's `webhook_events` selected it (its payload then carries the webhook settings).
/// The data names the call, the job kind, its event, attempts and error. The idempotency key
/// derives from the dead job's key, so a replayed job that dies again sends nothing new.
pub fn dead_letter(job: &Job, error: &str, now: DateTime<Utc>) -> Option<NewJob> {
    if !matches!(job.kind.as_str(), "crm" | "follow_up") {
        return None;
    }
    let view: DeadLetterView = serde_json::from_str(&job.payload).ok()?;
    let w = view.on_error?;
    let call_id = view
        .call_id
        .or_else(|| view.fields.get("call_id").and_then(|v| v.as_str()).map(str::to_string))?;
    let data = serde_json::json!({
        "call_id": call_id,
        "error": {
            "stage": job.kind, "job_kind": job.kind, "job_event": job.event, "job_id": job.id,
            "job_key": job.idempotency_key, "attempts": job.attempts, "error": error,
        },
    });
    webhook(
        &w,
        &job.campaign_id,
        &call_order_key(&call_id),
        "error_occurred",
        &[&call_id, "dead", &job.idempotency_key],
        data,
        now,
    )
}
