//! Post-call follow-ups: `webhook` and `task` (signed webhooks), `sms` (through the trunk) and
//! `email` (SMTP through `lettre`). Templates are rendered when the call is analysed, with
//! `{{agent_name}}`, `{{call_id}}`, `{{caller_number}}`, `{{caller_name}}`, `{{caller_email}}`,
//! `{{duration}}`, `{{summary}}`, `{{date}}`, `{{details}}` and the contact's custom fields;
//! a missing variable skips the action and reports an `error_occurred` event, never a blank.

use super::{Pipeline, SinkError, webhook};
use crate::call::CallRecord;
use crate::campaign::analysis_file::{FollowUpFile, FollowUpKind, WebhooksFile};
use crate::settings::SmtpTls;
use crate::store::NewJob;
use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Payload of a `follow_up` job, already rendered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FollowUpJob {
    /// Action kind.
    pub kind: FollowUpKind,
    /// Endpoint of webhook and task.
    pub url: Option<String>,
    /// Recipient (sms: E.164, email: address).
    pub to: Option<String>,
    /// Sender of sms (the campaign's caller id).
    pub from: String,
    /// Email subject.
    pub subject: Option<String>,
    /// Message.
    pub body: Option<String>,
    /// The call the follow-up is about.
    pub call_id: String,
    /// Request timeout in milliseconds.
    pub timeout_ms: u64,
    /// The campaign's webhook settings when they select `error_occurred`, sent if this job is dead-lettered.
    #[serde(default)]
    pub on_error: Option<WebhooksFile>,
}

/// The template variables of an analysed call: contact fields, then the built-ins.
pub fn variables(rec: &CallRecord, a: &Value) -> BTreeMap<String, String> {
    let mut v = rec.contact_fields.clone();
    let f = &rec.contact_fields;
    v.insert("agent_name".into(), rec.agent_id.clone());
    v.insert("call_id".into(), rec.call_id.clone());
    v.insert("caller_number".into(), rec.callee_number.clone());
    let name: Vec<&str> = [f.get("first_name"), f.get("last_name")]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if !name.is_empty() {
        v.insert("caller_name".into(), name.join(" "));
    }
    if let Some(e) = f.get("email") {
        v.insert("caller_email".into(), e.clone());
    }
    if let Some(d) = a["metrics"]["duration_s"].as_f64() {
        v.insert("duration".into(), format!("{}", d.round() as i64));
    }
    if let Some(s) = a["call_summary"].as_str() {
        v.insert("summary".into(), s.to_string());
    }
    v.insert("date".into(), rec.ended_at.format("%Y-%m-%d").to_string());
    if let Some(c) = a["conversions"].as_array().and_then(|c| c.first()) {
        v.insert("details".into(), c["details"].to_string());
    }
    v
}

/// The ordering key of a call's follow-ups to one sink: `fu:<call>:sms`, `fu:<call>:email`, or
/// `fu:<call>:webhook@<url>` / `fu:<call>:task@<url>`. Actions to the same sink keep their
/// order; a sink that is down delays no other.
pub fn order_key(call_id: &str, kind: FollowUpKind, url: Option<&str>) -> String {
    let kind = format!("{kind:?}").to_lowercase();
    match url {
        Some(u) if matches!(kind.as_str(), "webhook" | "task") => format!("fu:{call_id}:{kind}@{u}"),
        _ => format!("fu:{call_id}:{kind}"),
    }
}

/// Rendered jobs for the actions that apply to this call, and one message per skipped action.
pub fn jobs(
    f: &FollowUpFile,
    w: &WebhooksFile,
    rec: &CallRecord,
    a: &Value,
    caller_id: &str,
    now: DateTime<Utc>,
) -> (Vec<NewJob>, Vec<String>) {
    let vars = variables(rec, a);
    let (mut jobs, mut errors) = (Vec::new(), Vec::new());
    let tags: Vec<&str> = a["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let disposition = a["disposition"].as_str().unwrap_or_default();
    for (i, act) in f.actions.iter().enumerate() {
        if !act.when.is_empty() && !act.when.iter().any(|x| x == disposition || tags.contains(&x.as_str())) {
            continue;
        }
        let default_to = match act.kind {
            FollowUpKind::Sms => Some("{{caller_number}}"),
            FollowUpKind::Email => Some("{{caller_email}}"),
            _ => None,
        };
        let render = |t: Option<&str>| t.map(|t| crate::campaign::template::render(t, &vars)).transpose();
        let rendered = (|| {
            Ok::<_, minijinja::Error>((
                render(act.to.as_deref().or(default_to))?,
                render(act.subject.as_deref())?,
                render(act.body.as_deref())?,
            ))
        })();
        let (to, subject, body) = match rendered {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(campaign = %rec.campaign_id, call_id = %rec.call_id, action = i, error = %e,
                    "Follow-up skipped: its template could not be rendered.");
                errors.push(format!("follow_up action {i} ({:?}) skipped: {e}", act.kind).to_lowercase());
                continue;
            }
        };
        let payload = FollowUpJob {
            kind: act.kind,
            url: act.url.clone(),
            to,
            from: caller_id.to_string(),
            subject,
            body,
            call_id: rec.call_id.clone(),
            timeout_ms: w.timeout.as_millis() as u64,
            on_error: w.wants("error_occurred").then(|| w.clone()),
        };
        let n = i.to_string();
        jobs.push(NewJob {
            campaign_id: rec.campaign_id.clone(),
            order_key: order_key(&rec.call_id, act.kind, act.url.as_deref()),
            kind: "follow_up".into(),
            event: Some(format!("follow_up.{:?}", act.kind).to_lowercase()),
            idempotency_key: super::events::idempotency_key(&[&rec.campaign_id, "follow_up", &rec.call_id, &n]),
            payload: serde_json::to_string(&payload).unwrap_or_default(),
            max_attempts: w.webhook_retry_count + 1,
            run_at: now,
        });
    }
    (jobs, errors)
}

async fn email(p: &Pipeline, job: &FollowUpJob) -> Result<(), SinkError> {
    let s = &p.smtp;
    let host = s
        .host
        .as_deref()
        .ok_or_else(|| SinkError::Unconfigured("no SMTP server configured ([smtp] host)".into()))?;
    let perm = |what: &str, e: &dyn std::fmt::Display| SinkError::Permanent(format!("{what}: {e}"));
    let to = job.to.as_deref().unwrap_or_default();
    let msg = lettre::Message::builder()
        .from(s.from.parse().map_err(|e| perm("smtp.from", &e))?)
        .to(to.parse().map_err(|e| perm("recipient", &e))?)
        .subject(job.subject.clone().unwrap_or_default())
        .header(ContentType::TEXT_PLAIN)
        .body(job.body.clone().unwrap_or_default())
        .map_err(|e| perm("email", &e))?;
    let builder = match s.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        SmtpTls::Starttls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(|e| perm("smtp", &e))?
        }
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| perm("smtp", &e))?,
    };
    let mut builder = builder
        .port(s.port)
        .timeout(Some(Duration::from_millis(job.timeout_ms)));
    if let (Some(u), Some(pw)) = (&s.username, &s.password) {
        builder = builder.credentials(Credentials::new(u.clone(), pw.expose().to_string()));
    }
    builder.build().send(msg).await.map_err(|e| {
        if e.is_permanent() {
            SinkError::Permanent(format!("smtp: {e}"))
        } else {
            SinkError::Retryable(format!("smtp: {e}"))
        }
    })?;
    Ok(())
}

/// Runs a `follow_up` job.
///
/// Errors: [`SinkError`] from the receiver, the trunk or the SMTP server.
pub async fn run_job(p: &Pipeline, id: &str, payload: &str) -> Result<(), SinkError> {
    let job: FollowUpJob =
        serde_json::from_str(payload).map_err(|e| SinkError::Permanent(format!("follow_up payload: {e}")))?;
    match job.kind {
        FollowUpKind::Webhook | FollowUpKind::Task => {
            let secret = p.webhook_secret.as_ref().ok_or_else(|| {
                SinkError::Unconfigured("no webhook secret configured (DIALERD__WEBHOOK_SECRET)".into())
            })?;
            let event = if job.kind == FollowUpKind::Task {
                "follow_up.task"
            } else {
                "follow_up.webhook"
            };
            let data = json!({"call_id": job.call_id, "to": job.to, "subject": job.subject, "message": job.body});
            let body = super::events::envelope(event, id, Utc::now(), data);
            let url = job
                .url
                .as_deref()
                .ok_or_else(|| SinkError::Permanent("no url".into()))?;
            webhook::post_signed(
                &p.http,
                url,
                secret.expose().as_bytes(),
                event,
                id,
                &body,
                Duration::from_millis(job.timeout_ms),
            )
            .await?;
        }
        FollowUpKind::Sms => {
            let trunk = p
                .sms
                .as_ref()
                .ok_or_else(|| SinkError::Permanent("no trunk to send text messages".into()))?;
            let to = job.to.as_deref().unwrap_or_default();
            trunk
                .sms(&job.from, to, job.body.as_deref().unwrap_or_default())
                .await
                .map_err(|e| match e {
                    crate::trunk::TrunkError::Unavailable(_) | crate::trunk::TrunkError::NotPlaced { .. } => {
                        SinkError::Retryable(e.to_string())
                    }
                    crate::trunk::TrunkError::Rejected(_) | crate::trunk::TrunkError::Permanent { .. } => {
                        SinkError::Permanent(e.to_string())
                    }
                })?;
        }
        FollowUpKind::Email => email(p, &job).await?,
    }
    Ok(())
}
