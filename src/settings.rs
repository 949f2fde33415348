//! Daemon settings: built-in defaults, then `/etc/dialerd/dialerd.toml` (or `--config FILE`),
//! then `DIALERD__*` environment variables (`DIALERD__DATABASE_URL=...`), then CLI flags.
//! Campaign behaviour lives in campaign files, never here; secrets will, and are redacted in Debug.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The settings file read when `--config` is not given; it may be absent.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/dialerd/dialerd.toml";

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Human,
    /// One JSON object per event.
    Json,
    /// Native journal entries (`tracing-journald`), with each field as a journal field in upper
    /// case (`CAMPAIGN=`, `CONTACT=`, `ATTEMPT=`, `OUTCOME=`), so `journalctl CAMPAIGN=spring` filters.
    /// The default under systemd when `JOURNAL_STREAM` is set and no format is given.
    Journald,
}

/// Daemon settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Database URL (`sqlite://dialerd.db`, or a plain path).
    pub database_url: String,
    /// Folder of campaign files for `dialerd run`.
    pub campaigns_dir: PathBuf,
    /// Log format; unset: `journald` when `JOURNAL_STREAM` is set (started by systemd), else `human`.
    #[serde(default)]
    pub log_format: Option<LogFormat>,
    /// How long calls in flight may take to end after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Campaign folder rescan interval, the fallback for missed file notifications.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Key of the `X-Webhook-Signature` HMAC-SHA256 (`DIALERD__WEBHOOK_SECRET`); webhooks are not sent without it.
    #[serde(default)]
    pub webhook_secret: Option<Secret>,
    /// `[llm]`: the OpenAI-compatible chat-completions endpoint of the analysis stages.
    #[serde(default)]
    pub llm: LlmSettings,
    /// HubSpot private-app token (`DIALERD__HUBSPOT_TOKEN`).
    #[serde(default)]
    pub hubspot_token: Option<Secret>,
    /// `[smtp]`: the server that sends follow-up emails.
    #[serde(default)]
    pub smtp: SmtpSettings,
    /// `[outbox]`: delivery workers.
    #[serde(default)]
    pub outbox: OutboxSettings,
    /// Address of the HTTP listener (`DIALERD__LISTEN`): health, trunk callbacks.
    pub listen: std::net::SocketAddr,
    /// Base URL at which providers reach the listener (`DIALERD__PUBLIC_URL`), e.g. the reverse
    /// proxy's `https://dialer.example.com`; callback URLs and signatures are built on it.
    /// Unset: `http://{listen}`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// `[api]`: limits of the HTTP listener.
    #[serde(default)]
    pub api: ApiSettings,
    /// `[twilio]`: the Twilio account (`DIALERD__TWILIO__ACCOUNT_SID`, `..__AUTH_TOKEN`).
    #[serde(default)]
    pub twilio: TwilioSettings,
    /// `[livekit]`: the LiveKit project (`DIALERD__LIVEKIT__URL`, `..__API_KEY`, `..__API_SECRET`).
    #[serde(default)]
    pub livekit: LivekitSettings,
    /// `[sim]`: the sim trunk's account limits (`DIALERD__SIM__CALLS_PER_SECOND`, `..__MAX_CONCURRENT`).
    #[serde(default)]
    pub sim: SimSettings,
    /// This node's id among the nodes sharing one database (`DIALERD__NODE_ID`); stable across
    /// restarts, so a node that restarts takes its own campaigns back at once. Unset: the host name.
    #[serde(default)]
    pub node_id: Option<String>,
    /// How long a campaign lease lasts unless renewed (`DIALERD__LEASE_TTL`, default 15 s; it is
    /// renewed every third of it): a node that dies holding a lease is replaced after at most this.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

impl Settings {
    /// This node's id: `node_id`, or the host name (`localhost` if it cannot be read).
    pub fn node_id(&self) -> String {
        self.node_id
            .clone()
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(host_name)
    }
}

/// This machine's host name, lossily decoded; `localhost` when it is empty.
pub fn host_name() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    if name.is_empty() { "localhost".to_string() } else { name }
}

/// A secret string (token, password, key): read like a string, printed as `***` by Debug.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One model endpoint; unset fields fall back to `[llm]`'s.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmEndpoint {
    /// Base URL of the OpenAI-compatible API (`https://api.openai.com/v1`); `/chat/completions` is appended.
    pub base_url: Option<String>,
    /// Bearer API key.
    pub api_key: Option<Secret>,
    /// Model name.
    pub model: Option<String>,
}

/// `[llm]`: defaults for every stage, plus `[llm.stages.<stage>]` overrides for `summary`,
/// `tagging`, `scoring`, `extraction` and `sentiment`. A stage with no base URL or model is skipped.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSettings {
    /// Default base URL.
    pub base_url: Option<String>,
    /// Default API key.
    pub api_key: Option<Secret>,
    /// Default model.
    pub model: Option<String>,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Per-stage overrides.
    pub stages: std::collections::BTreeMap<String, LlmEndpoint>,
}

impl Default for LlmSettings {
    fn default() -> Self {
        LlmSettings {
            base_url: None,
            api_key: None,
            model: None,
            timeout: Duration::from_secs(30),
            stages: Default::default(),
        }
    }
}

impl LlmSettings {
    /// The endpoint of `stage` (overrides over defaults); `None` when it has no base URL or model.
    pub fn endpoint(&self, stage: &str) -> Option<LlmEndpoint> {
        let o = self.stages.get(stage).cloned().unwrap_or_default();
        let e = LlmEndpoint {
            base_url: o.base_url.or_else(|| self.base_url.clone()),
            api_key: o.api_key.or_else(|| self.api_key.clone()),
            model: o.model.or_else(|| self.model.clone()),
        };
        (e.base_url.is_some() && e.model.is_some()).then_some(e)
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain SMTP (loopback test servers only).
    None,
    /// STARTTLS upgrade (port 587).
    #[default]
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

/// `[smtp]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// Server host; email follow-ups fail without it.
    pub host: Option<String>,
    /// Server port.
    pub port: u16,
    /// Connection security.
    pub tls: SmtpTls,
    /// Login user.
    pub username: Option<String>,
    /// Login password.
    pub password: Option<Secret>,
    /// Sender address.
    pub from: String,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: None,
            port: 587,
            tls: SmtpTls::default(),
            username: None,
            password: None,
            from: "dialerd@localhost".into(),
        }
    }
}

/// `[outbox]`: delivery workers and their retry backoff.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Jobs run at once.
    pub concurrency: u32,
    /// How often idle workers look for due jobs.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// First retry delay; doubles per attempt, with jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// How long `run --until-idle` waits for the outbox to drain before exiting
    /// (`DIALERD__OUTBOX__DRAIN_TIMEOUT`); jobs still pending then stay in the outbox for the next start.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            concurrency: 8,
            poll_interval: Duration::from_millis(100),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Error loading settings: names the source and the key.
#[derive(Debug, thiserror::Error)]
#[error("settings: {0}")]
pub struct SettingsError(#[from] config::ConfigError);

impl Settings {
    /// Loads defaults, then `file` (or [`DEFAULT_CONFIG_FILE`] when it exists), then the environment.
    ///
    /// Errors: a named file that is missing or malformed, or a value of the wrong type.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let builder = config::Config::builder()
            .set_default("database_url", "sqlite://dialerd.db")?
            .set_default("campaigns_dir", "campaigns")?
            .set_default("shutdown_grace", "30s")?
            .set_default("poll_interval", "2s")?
            .set_default("lease_ttl", "15s")?
            .set_default("listen", "127.0.0.1:8686")?;
        let builder = match file {
            Some(f) => builder.add_source(config::File::from(f).required(true)),
            None => builder.add_source(config::File::with_name(DEFAULT_CONFIG_FILE).required(false)),
        };
        let cfg = builder
            .add_source(
                config::Environment::with_prefix("DIALERD")
                    .prefix_separator("__")
                    .separator("__"),
            )
            .build()?;
        Ok(cfg.try_deserialize()?)
    }
}

/// `[api]`: limits every request to the HTTP listener is held to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Largest request body, in bytes; a larger one is answered 413.
    pub max_body_bytes: usize,
    /// Longest a request may take, body included; a slower one is answered 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Bearer token of the voice agent's events API (`POST /v1/calls/{call_id}/events`;
    /// `DIALERD__API__AGENT_TOKEN`). Unset: that route answers 503.
    pub agent_token: Option<Secret>,
    /// Bearer tokens of the operator API (`/v1/campaigns…`, `/metrics`), each named and scoped.
    pub tokens: Vec<ApiToken>,
    /// One `read`-scoped token named `read` (`DIALERD__API__READ_TOKEN`), beside `tokens`.
    pub read_token: Option<Secret>,
    /// One `control`-scoped token named `control` (`DIALERD__API__CONTROL_TOKEN`), beside `tokens`.
    pub control_token: Option<Secret>,
}

/// What an operator API token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// `GET` routes: campaigns, conversations, metrics.
    Read,
    /// Everything `read` may, and pause, resume and cancel campaigns.
    Control,
}

/// One operator API token (`[[api.tokens]]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds it; logged and recorded with what it changes (`api:<name>`), never the token.
    pub name: String,
    /// The bearer token.
    pub token: Secret,
    /// What it may do.
    pub scope: TokenScope,
}

impl ApiSettings {
    /// Every configured operator token: `tokens`, then `read_token` and `control_token`; empty
    /// tokens are left out, so none ever matches an empty `Bearer`.
    pub fn operator_tokens(&self) -> Vec<ApiToken> {
        let shortcut = |name: &str, t: &Option<Secret>, scope| {
            t.clone().map(|token| ApiToken {
                name: name.to_string(),
                token,
                scope,
            })
        };
        self.tokens
            .iter()
            .cloned()
            .chain(shortcut("read", &self.read_token, TokenScope::Read))
            .chain(shortcut("control", &self.control_token, TokenScope::Control))
            .filter(|t| !t.token.expose().is_empty())
            .collect()
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        // A Twilio status callback is about 1 KiB; 64 KiB leaves room for every surface planned.
        ApiSettings {
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            agent_token: None,
            tokens: Vec::new(),
            read_token: None,
            control_token: None,
        }
    }
}

/// `[twilio]`: the Twilio account the `twilio` trunk dials through. Requests authenticate with an
/// API key pair when one is set, else with the account SID and auth token; status callbacks are
/// always verified with the auth token (Twilio signs them with it).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioSettings {
    /// Account SID (`AC…`).
    pub account_sid: Option<String>,
    /// Auth token of the account.
    pub auth_token: Option<Secret>,
    /// API key SID (`SK…`), used with `api_key_secret` instead of the auth token for requests.
    pub api_key_sid: Option<String>,
    /// API key secret.
    pub api_key_secret: Option<Secret>,
    /// Base URL of the REST API (a test peer's address in tests).
    pub base_url: String,
    /// Per-request timeout of the REST API.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The account's calls per second (Twilio's default for an account is 1), shared by every
    /// Twilio campaign; each campaign's own `calls_per_second` applies on top.
    pub calls_per_second: u32,
    /// Most calls in progress on the account at once, across campaigns; none when unset.
    pub max_concurrent: Option<u32>,
}

impl Default for TwilioSettings {
    fn default() -> Self {
        TwilioSettings {
            account_sid: None,
            auth_token: None,
            api_key_sid: None,
            api_key_secret: None,
            base_url: "https://api.twilio.com".into(),
            timeout: Duration::from_secs(10),
            calls_per_second: 1,
            max_concurrent: None,
        }
    }
}

/// `[sim]`: the sim trunk as one provider account shared by every node on the database, to
/// rehearse an account's limits before a real trunk: at most `calls_per_second` dials in any
/// rolling second and `max_concurrent` calls in progress across every sim campaign of every node.
/// Unset: no account limit (each campaign's own limits still apply).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSettings {
    /// Dials per rolling second across every node.
    pub calls_per_second: Option<u32>,
    /// Calls in progress at once across every node.
    pub max_concurrent: Option<u32>,
}

impl SimSettings {
    /// The account limit these settings describe (account `sim`), if any is set.
    pub fn account_limit(&self) -> Option<crate::core::AccountLimit> {
        if self.calls_per_second.is_none() && self.max_concurrent.is_none() {
            return None;
        }
        Some(crate::core::AccountLimit {
            account: "sim".into(),
            calls_per_second: self.calls_per_second.unwrap_or(u32::MAX),
            max_concurrent: self.max_concurrent,
        })
    }
}

/// `[livekit]`: the LiveKit project the `livekit` trunk dials through (LiveKit SIP API). Requests
/// are signed with the API key and secret; webhooks are verified with the same pair. Both are
/// secrets: never logged, never in an error.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivekitSettings {
    /// Server URL (`wss://project.livekit.cloud` or `https://…`; `ws(s)` is read as `http(s)`).
    pub url: Option<String>,
    /// API key (`API…`).
    pub api_key: Option<Secret>,
    /// API secret, the HS256 key of every token.
    pub api_secret: Option<Secret>,
    /// Per-request timeout of the Twirp API (a dial waits for the answer: ring timeout + 2 s at least).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for LivekitSettings {
    fn default() -> Self {
        LivekitSettings {
            url: None,
            api_key: None,
            api_secret: None,
            timeout: Duration::from_secs(10),
        }
    }
}
