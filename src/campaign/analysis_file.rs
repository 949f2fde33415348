//! Campaign file sections for post-call analysis and delivery: `[analysis]`, `[webhooks]`,
//! `[crm]` and `[follow_up]` (serde shapes with `deny_unknown_fields`), their validation, and
//! [`AnalysisConfig`], the validated snapshot stored with each analyze job. Secrets never live
//! here: signing secret, model API keys, CRM tokens and SMTP credentials come from settings.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// Every webhook event type dialerd can send.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "call_started",
    "call_ended",
    "message_received",
    "agent_speech",
    "error_occurred",
    "sentiment.alert",
    "call_analyzed",
    "campaign.started",
    "campaign.completed",
    "contact.exhausted",
];

/// Fields `[crm] crm_sync_fields` may name.
pub const CRM_FIELDS: &[&str] = &[
    "summary",
    "disposition",
    "duration",
    "status",
    "direction",
    "timestamp",
    "tags",
    "sentiment",
    "transcript",
];

/// `[analysis]`: what the language-model stages produce.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisFile {
    /// Instructions for the summary stage; a built-in prompt when unset.
    #[serde(default)]
    pub call_summary_prompt: Option<String>,
    /// Tags the tagging stage may choose from; the first chosen is the disposition.
    #[serde(default)]
    pub call_tagging_categories: Vec<String>,
    /// QA criteria, each scored 0–10 with a one-sentence rationale.
    #[serde(default)]
    pub scoring_criteria: Vec<String>,
    /// Structured data to extract.
    #[serde(default)]
    pub post_call_analysis_data: Vec<DataField>,
    /// `event_type` of a `track_conversion` call that names none.
    #[serde(default)]
    pub conversion_event: Option<String>,
}

/// Types a structured-data field may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    /// One of `choices`.
    Enum,
    /// Free text.
    String,
    /// true / false.
    Boolean,
    /// A JSON number.
    Number,
}

/// One `[[analysis.post_call_analysis_data]]` field.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataField {
    /// Key in `custom_analysis_data` (letters, digits, `_`).
    pub name: String,
    /// Value type.
    #[serde(rename = "type")]
    pub kind: DataKind,
    /// What the model should put there.
    pub description: String,
    /// Allowed values of an `enum` field.
    #[serde(default)]
    pub choices: Vec<String>,
}

/// `[webhooks]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksFile {
    /// Receiver of every selected event (http or https).
    #[serde(default)]
    pub url: Option<String>,
    /// Events to send; all of [`WEBHOOK_EVENTS`] when unset.
    #[serde(default)]
    pub webhook_events: Option<Vec<String>>,
    /// Retries after the first delivery attempt (5xx, 408, 429 and timeouts are retried).
    #[serde(default = "default_retry_count")]
    pub webhook_retry_count: u32,
    /// Receiver of knowledge-gap reports.
    #[serde(default)]
    pub knowledge_gap_webhook_url: Option<String>,
    /// Per-request timeout (humantime).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for WebhooksFile {
    fn default() -> Self {
        WebhooksFile {
            url: None,
            webhook_events: None,
            webhook_retry_count: default_retry_count(),
            knowledge_gap_webhook_url: None,
            timeout: default_timeout(),
        }
    }
}

fn default_retry_count() -> u32 {
    5
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl WebhooksFile {
    /// True when `event` goes to the webhook URL.
    pub fn wants(&self, event: &str) -> bool {
        self.url.is_some()
            && self
                .webhook_events
                .as_ref()
                .is_none_or(|e| e.iter().any(|x| x == event))
    }
}

/// CRM providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmProvider {
    /// HubSpot CRM v3 calls object, associated with the contact (searched, created if missing).
    Hubspot,
    /// A signed webhook to `base_url`.
    Custom,
}

/// `[crm]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrmFile {
    /// Which CRM.
    pub crm_provider: CrmProvider,
    /// Fields to sync, from [`CRM_FIELDS`]; all when empty.
    #[serde(default)]
    pub crm_sync_fields: Vec<String>,
    /// API base URL (HubSpot: `https://api.hubapi.com`, the default) or the custom receiver.
    #[serde(default)]
    pub base_url: Option<String>,
}

/// Follow-up action kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpKind {
    /// A signed webhook to `url`.
    Webhook,
    /// A text message through the campaign's trunk.
    Sms,
    /// An email through the SMTP server in settings.
    Email,
    /// A signed webhook to a task endpoint `url`.
    Task,
}

/// One `[[follow_up.actions]]` entry. `to`, `subject` and `body` are `{{variable}}` templates.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpAction {
    /// What to do.
    #[serde(rename = "type")]
    pub kind: FollowUpKind,
    /// Endpoint of `webhook` and `task`.
    #[serde(default)]
    pub url: Option<String>,
    /// Recipient of `sms` (default `{{caller_number}}`) and `email` (default `{{caller_email}}`).
    #[serde(default)]
    pub to: Option<String>,
    /// Email subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Message text (sms, email) or the task/webhook `message` field.
    #[serde(default)]
    pub body: Option<String>,
    /// Run only when the call's final disposition is one of these (tags count too); always when empty.
    #[serde(default)]
    pub when: Vec<String>,
}

/// `[follow_up]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpFile {
    /// Actions, each run after the analysis; actions to the same sink (SMS, email, one URL) run in
    /// order, and a sink that is down delays no other.
    #[serde(default)]
    pub actions: Vec<FollowUpAction>,
}

/// The validated post-call configuration of one campaign, snapshotted into each analyze job.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct AnalysisConfig {
    /// `[analysis]`.
    pub analysis: AnalysisFile,
    /// `[webhooks]`.
    pub webhooks: WebhooksFile,
    /// `[crm]`, when set.
    pub crm: Option<CrmFile>,
    /// `[follow_up]`.
    pub follow_up: FollowUpFile,
    /// The `[contacts]` consent columns, so that `call_analyzed` carries the contact's consent
    /// evidence (empty for a job queued before they existed).
    #[serde(default)]
    pub consent_columns: super::contact_signals::ConsentColumns,
}

fn check_url(key: &str, url: &str, err: &mut dyn FnMut(&str, String)) {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        Ok(_) => err(key, format!("`{url}` must be an http or https URL")),
        Err(e) => err(key, format!("`{url}` is not a URL: {e}")),
    }
}

fn check_template(key: &str, t: &str, err: &mut dyn FnMut(&str, String)) {
    if let Err(e) = super::template::check(t) {
        err(key, format!("is not a valid template: {e}"));
    }
}

/// Validates the four sections into an [`AnalysisConfig`]; every problem goes to `err(key, reason)`.
pub fn validate_analysis(cfg: &AnalysisConfig, err: &mut dyn FnMut(&str, String)) {
    let a = &cfg.analysis;
    if let Some(p) = &a.call_summary_prompt
        && p.trim().is_empty()
    {
        err("analysis.call_summary_prompt", "must not be empty".into());
    }
    for (key, list) in [
        ("analysis.call_tagging_categories", &a.call_tagging_categories),
        ("analysis.scoring_criteria", &a.scoring_criteria),
    ] {
        let mut seen = BTreeSet::new();
        for v in list {
            if v.trim().is_empty() {
                err(key, "entries must not be empty".into());
            } else if !seen.insert(v) {
                err(key, format!("`{v}` appears twice"));
            }
        }
    }
    let mut names = BTreeSet::new();
    for f in &a.post_call_analysis_data {
        let key = "analysis.post_call_analysis_data";
        if f.name.is_empty() || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            err(key, format!("field name `{}` must be letters, digits and _", f.name));
        }
        if !names.insert(&f.name) {
            err(key, format!("field `{}` appears twice", f.name));
        }
        if f.description.trim().is_empty() {
            err(key, format!("field `{}` needs a description", f.name));
        }
        match (f.kind, f.choices.is_empty()) {
            (DataKind::Enum, true) => err(key, format!("enum field `{}` needs choices", f.name)),
            (DataKind::Enum, false) => {}
            (_, false) => err(key, format!("only enum fields take choices (`{}`)", f.name)),
            (_, true) => {}
        }
    }
    let w = &cfg.webhooks;
    if let Some(u) = &w.url {
        check_url("webhooks.url", u, err);
    }
    if let Some(u) = &w.knowledge_gap_webhook_url {
        check_url("webhooks.knowledge_gap_webhook_url", u, err);
    }
    for e in w.webhook_events.iter().flatten() {
        if !WEBHOOK_EVENTS.contains(&e.as_str()) {
            err(
                "webhooks.webhook_events",
                format!("unknown event `{e}`; known: {}", WEBHOOK_EVENTS.join(", ")),
            );
        }
    }
    if w.webhook_retry_count > 20 {
        err("webhooks.webhook_retry_count", "must be at most 20".into());
    }
    if w.timeout.is_zero() {
        err("webhooks.timeout", "must be positive".into());
    }
    if let Some(c) = &cfg.crm {
        match (&c.base_url, c.crm_provider) {
            (Some(u), _) => check_url("crm.base_url", u, err),
            (None, CrmProvider::Custom) => err("crm.base_url", "is required for crm_provider = \"custom\"".into()),
            (None, CrmProvider::Hubspot) => {}
        }
        for f in &c.crm_sync_fields {
            if !CRM_FIELDS.contains(&f.as_str()) {
                err(
                    "crm.crm_sync_fields",
                    format!("unknown field `{f}`; known: {}", CRM_FIELDS.join(", ")),
                );
            }
        }
    }
    for a in &cfg.follow_up.actions {
        let key = "follow_up.actions";
        match (a.kind, &a.url) {
            (FollowUpKind::Webhook | FollowUpKind::Task, None) => {
                err(key, format!("{:?} action needs `url`", a.kind).to_lowercase())
            }
            (_, Some(u)) => check_url(key, u, err),
            _ => {}
        }
        if matches!(a.kind, FollowUpKind::Sms | FollowUpKind::Email) && a.body.is_none() {
            err(key, format!("{:?} action needs `body`", a.kind).to_lowercase());
        }
        if a.kind == FollowUpKind::Email && a.subject.is_none() {
            err(key, "email action needs `subject`".into());
        }
        for t in [&a.to, &a.subject, &a.body].into_iter().flatten() {
            check_template(key, t, err);
        }
    }
}
