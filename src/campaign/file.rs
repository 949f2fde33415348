//! The campaign file (TOML) as written by operators: serde shapes with `deny_unknown_fields`
//! so a typo is an error. Validation into the runtime [`super::Campaign`] lives in `validate.rs`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::time::Duration;

/// Top level of `campaigns/<id>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    /// Human-readable campaign name.
    pub name: String,
    /// The voice agent that takes answered calls.
    pub agent_id: String,
    /// Caller ID: one E.164 number (`+14155550100`) presented on every call, or a
    /// `[caller_id]` pool with local presence and number health.
    pub caller_id: super::caller_id_file::CallerIdFile,
    /// ISO 3166 region (`US`) used to read numbers written without `+country`.
    pub default_region: String,
    /// IANA zone (`America/New_York`) used when neither the row nor the number gives one.
    pub default_timezone: String,
    /// Where the contacts come from and how their columns map.
    pub contacts: ContactsFile,
    /// Calling windows and campaign start/end.
    #[serde(default)]
    pub schedule: ScheduleFile,
    /// Pacing and concurrency.
    #[serde(default)]
    pub dialer: DialerFile,
    /// Retry delays and attempt limit.
    #[serde(default)]
    pub retry: RetryFile,
    /// What to do when a machine answers.
    #[serde(default)]
    pub voicemail: VoicemailFile,
    /// Callbacks the contact asks for.
    #[serde(default)]
    pub callback: CallbackFile,
    /// Legal calling hours on top of the windows.
    #[serde(default)]
    pub compliance: ComplianceFile,
    /// Which trunk places the calls.
    #[serde(default)]
    pub trunk: TrunkFile,
    /// `[analysis]`: post-call analysis stages.
    #[serde(default)]
    pub analysis: super::analysis_file::AnalysisFile,
    /// `[webhooks]`: signed event delivery.
    #[serde(default)]
    pub webhooks: super::analysis_file::WebhooksFile,
    /// `[crm]`: CRM auto-sync.
    #[serde(default)]
    pub crm: Option<super::analysis_file::CrmFile>,
    /// `[follow_up]`: post-call follow-up actions.
    #[serde(default)]
    pub follow_up: super::analysis_file::FollowUpFile,
}

/// `[contacts]`: the CSV file and its column mapping. Column names match the header
/// case-insensitively, ignoring surrounding spaces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactsFile {
    /// CSV path, relative to the campaign file.
    pub file: String,
    /// Column holding the phone number to dial (default `phone`).
    #[serde(default = "default_phone_column")]
    pub phone: String,
    /// Columns holding alternate phone numbers.
    #[serde(default)]
    pub alternate_phones: Vec<String>,
    /// Column holding the first name (default `first_name` when present).
    pub first_name: Option<String>,
    /// Column holding the last name (default `last_name` when present).
    pub last_name: Option<String>,
    /// Column holding the email address (default `email` when present).
    pub email: Option<String>,
    /// Column holding an IANA time zone for the contact (default `timezone` when present).
    pub timezone: Option<String>,
    /// Column holding the contact's dialing priority, an integer: among contacts due at the same
    /// instant, higher is dialled first (default `priority` when present; an empty cell is 0).
    #[serde(default)]
    pub priority: Option<String>,
    /// Column holding the contact's US state or Canadian province (`FL`, `Florida`, `US-FL`); its
    /// rules apply with those of the postal code and the area code.
    pub state: Option<String>,
    /// Column holding the contact's postal code (US ZIP, Canadian postal code).
    pub postal_code: Option<String>,
    /// Column holding when the contact gave consent to be called (RFC 3339, `YYYY-MM-DD HH:MM:SS`
    /// UTC, or `YYYY-MM-DD`); an empty cell means no consent.
    pub consent_at: Option<String>,
    /// Column naming where the consent came from (a form URL, a recording id); carried with the call.
    pub consent_source: Option<String>,
    /// Column saying `express` or `written` for each consent; unmapped, evidence counts as express.
    pub consent_kind: Option<String>,
}

fn default_phone_column() -> String {
    "phone".to_string()
}

impl Default for ContactsFile {
    /// No file, the `phone` column, nothing else mapped.
    fn default() -> Self {
        ContactsFile {
            file: String::new(),
            phone: default_phone_column(),
            alternate_phones: Vec::new(),
            first_name: None,
            last_name: None,
            email: None,
            timezone: None,
            priority: None,
            state: None,
            postal_code: None,
            consent_at: None,
            consent_source: None,
            consent_kind: None,
        }
    }
}

/// `[schedule]`: windows in the contact's local time, plus absolute start/end (UTC).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    /// `cron` crate expressions (`sec min hour dom mon dow`); a local minute that matches may start calls.
    /// Empty means "legal hours only".
    #[serde(default)]
    pub windows: Vec<String>,
    /// No dial before this instant.
    pub start_at: Option<toml::value::Datetime>,
    /// No dial at or after this instant.
    pub end_at: Option<toml::value::Datetime>,
}

/// Pacing mode names accepted in `[dialer] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeFile {
    /// One call per free agent slot.
    #[default]
    Progressive,
    /// A fixed number of lines per free slot (`ratio`).
    Ratio,
    /// Erlang-style predictive pacing under `target_abandon_rate`.
    Predictive,
    /// VICIdial's adaptive dial level, a baseline for comparison.
    #[serde(alias = "vicidial-adaptive")]
    VicidialAdaptive,
}

/// `[dialer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialerFile {
    /// Pacing mode.
    #[serde(default)]
    pub mode: ModeFile,
    /// Agent slots: the most conversations at once.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    /// Most new calls per second (CPS).
    #[serde(default = "default_cps")]
    pub calls_per_second: u32,
    /// How long a call may ring before it counts as no answer; at least 15 s.
    #[serde(default = "default_ring_timeout", with = "humantime_serde")]
    pub ring_timeout: Duration,
    /// Abandoned / human-answered target in 0..1 (default 0.03).
    #[serde(default = "default_target_abandon")]
    pub target_abandon_rate: f64,
    /// Most lines per agent slot, (dialing + talking) / slots (default 3.0).
    #[serde(default = "default_max_dial_ratio")]
    pub max_dial_ratio: f64,
    /// Lines per free slot in `ratio` mode (default 1.5).
    #[serde(default = "default_ratio")]
    pub ratio: f64,
    /// VICIdial `adaptive_intensity`, −100..100 (default 0), for `vicidial_adaptive`.
    #[serde(default)]
    pub vicidial_intensity: f64,
}

impl Default for DialerFile {
    fn default() -> Self {
        DialerFile {
            mode: ModeFile::default(),
            max_concurrent: default_max_concurrent(),
            calls_per_second: default_cps(),
            ring_timeout: default_ring_timeout(),
            target_abandon_rate: default_target_abandon(),
            max_dial_ratio: default_max_dial_ratio(),
            ratio: default_ratio(),
            vicidial_intensity: 0.0,
        }
    }
}

fn default_target_abandon() -> f64 {
    0.03
}
fn default_max_dial_ratio() -> f64 {
    3.0
}
fn default_ratio() -> f64 {
    1.5
}

fn default_max_concurrent() -> u32 {
    5
}
fn default_cps() -> u32 {
    5
}
fn default_ring_timeout() -> Duration {
    Duration::from_secs(25)
}

/// `[retry]`: delays per outcome (humantime strings); unset outcomes use `delay`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    /// Attempts over the contact's lifetime, at least 1.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay for any outcome without its own.
    #[serde(default = "default_retry_delay", with = "humantime_serde")]
    pub delay: Duration,
    /// Delay after `no_answer`.
    #[serde(default, with = "humantime_serde")]
    pub no_answer: Option<Duration>,
    /// Delay after `busy`.
    #[serde(default, with = "humantime_serde")]
    pub busy: Option<Duration>,
    /// Delay after `machine` (voicemail action `hangup`).
    #[serde(default, with = "humantime_serde")]
    pub machine: Option<Duration>,
    /// Delay after `failed`.
    #[serde(default, with = "humantime_serde")]
    pub failed: Option<Duration>,
    /// Delay after `abandoned`.
    #[serde(default, with = "humantime_serde")]
    pub abandoned: Option<Duration>,
    /// Delay after `unknown` (an attempt left open by a crash).
    #[serde(default, with = "humantime_serde")]
    pub unknown: Option<Duration>,
}

impl Default for RetryFile {
    fn default() -> Self {
        RetryFile {
            max_attempts: default_max_attempts(),
            delay: default_retry_delay(),
            no_answer: None,
            busy: None,
            machine: None,
            failed: None,
            abandoned: None,
            unknown: None,
        }
    }
}

fn default_max_attempts() -> u32 {
    3
}
fn default_retry_delay() -> Duration {
    Duration::from_secs(30 * 60)
}

/// Voicemail actions accepted in `[voicemail] action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailActionFile {
    /// Play the rendered message after the beep, then hang up.
    LeaveMessage,
    /// Hang up at once and retry later.
    #[default]
    Hangup,
}

/// `[voicemail]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoicemailFile {
    /// What to do when a machine answers.
    #[serde(default)]
    pub action: VoicemailActionFile,
    /// Message template with `{{first_name}}`-style variables; required for `leave_message`.
    pub message: Option<String>,
}

/// `[callback]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackFile {
    /// Honour callbacks the contact asks for.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long after the call to call back.
    #[serde(default = "default_callback_delay", with = "humantime_serde")]
    pub delay: Duration,
}

impl Default for CallbackFile {
    fn default() -> Self {
        CallbackFile {
            enabled: true,
            delay: default_callback_delay(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_callback_delay() -> Duration {
    Duration::from_secs(60 * 60)
}

/// `[compliance]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceFile {
    /// Legal calling hours in the contact's local time, `"HH:MM-HH:MM"`, default `08:00-21:00`.
    /// It may only narrow the default, except on the sim trunk, which places no real call.
    pub legal_hours: Option<String>,
    /// Local dates (`YYYY-MM-DD`, in the contact's zone) on which nobody is dialled.
    #[serde(default)]
    pub holidays: Vec<String>,
    /// Which abandonment measure applies: `us_tsr` (30 days), `uk_ofcom` (24 hours, AMD false
    /// positives count) or `both` (default).
    pub abandon_policy: Option<String>,
    /// The abandonment cap in 0..1, at most 0.03 (default 0.03).
    pub abandon_cap: Option<f64>,
    /// The AMD false-positive rate in 0..1 that Ofcom's measure adds as abandoned calls. Required
    /// under `uk_ofcom`/`both` on a real trunk; the sim trunk defaults to its own `amd_false_positive`.
    pub amd_false_positive_rate: Option<f64>,
    /// Attempts allowed per contact in one local day (unset: no daily limit).
    pub max_attempts_per_day: Option<u32>,
    /// Least time between two attempts to one contact (humantime, e.g. `"4h"`).
    #[serde(default, with = "humantime_serde")]
    pub min_gap: Option<Duration>,
    /// A do-not-call CSV for this campaign only, relative to the campaign file.
    pub dnc_list: Option<String>,
    /// Played within 2 s of answer when a person answers and no agent slot is free; required when
    /// the mode can abandon. It must name the caller and give a callback number
    /// (FTC TSR 16 CFR 310.4(b)(4)(iii)).
    pub safe_harbor_message: Option<String>,
    /// Apply the state and provincial rules (`jurisdictions.toml`); default true. `false` is
    /// allowed only on the sim trunk.
    pub state_rules: Option<bool>,
    /// An operator's jurisdiction rules file, relative to the campaign file: its entries replace
    /// shipped ones with the same code and add new codes.
    pub state_rules_file: Option<String>,
    /// The consent each contact must have given: `none` (default), `express` or `written`
    /// (TCPA 47 U.S.C. 227(b); an AI voice is an artificial voice, FCC 24-17).
    pub consent: Option<String>,
}

/// Trunk kinds accepted in `[trunk] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrunkKindFile {
    /// The built-in simulated trunk.
    #[default]
    Sim,
    /// Twilio Programmable Voice; `[trunk.twilio]` says how answered calls reach the agent and
    /// the account comes from the daemon's `[twilio]` settings.
    Twilio,
    /// LiveKit SIP: each call is a room with the agent dispatched into it; `[trunk.livekit]`
    /// names the SIP trunk and the agent, the project comes from the daemon's `[livekit]` settings.
    Livekit,
}

/// `[trunk]`; credentials never live here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkFile {
    /// Which adapter.
    #[serde(default)]
    pub kind: TrunkKindFile,
    /// Record every call on the trunk (Twilio: `Record=true`); the conversations API redirects
    /// `GET /v1/conversations/{id}/audio` to the recording. The sim trunk records nothing;
    /// LiveKit recording (Egress) is not supported yet and is refused at load.
    #[serde(default)]
    pub record: bool,
    /// `[trunk.sim]`: the simulated trunk's call model.
    #[serde(default)]
    pub sim: SimFile,
    /// `[trunk.twilio]`: how answered Twilio calls reach the voice agent.
    #[serde(default)]
    pub twilio: Option<super::twilio_file::TwilioFile>,
    /// `[trunk.livekit]`: the LiveKit SIP trunk and the agent dispatched into each call.
    #[serde(default)]
    pub livekit: Option<super::livekit_file::LivekitFile>,
}

/// `[trunk.sim]`: the statistical call model. Probabilities are in 0..1 and must sum to 1;
/// durations are humantime strings; `*_sigma` is the lognormal shape (standard deviation of ln).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimFile {
    /// RNG seed; the same seed gives the same calls.
    pub seed: u64,
    /// Multiplies every simulated duration (0.01 makes a 3-minute call last 1.8 s).
    pub time_scale: f64,
    /// P(a person answers).
    pub p_human: f64,
    /// P(an answering machine answers).
    pub p_machine: f64,
    /// P(no answer within the ring timeout).
    pub p_no_answer: f64,
    /// P(busy).
    pub p_busy: f64,
    /// P(the call fails).
    pub p_failed: f64,
    /// Mean time for a person to answer.
    #[serde(with = "humantime_serde")]
    pub human_answer_mean: Duration,
    /// Mean time for a machine to answer.
    #[serde(with = "humantime_serde")]
    pub machine_answer_mean: Duration,
    /// Lognormal sigma of the answer times.
    pub answer_sigma: f64,
    /// Time until a busy signal.
    #[serde(with = "humantime_serde")]
    pub busy_time: Duration,
    /// Time until a failure.
    #[serde(with = "humantime_serde")]
    pub failed_time: Duration,
    /// Mean talk time of a connected person.
    #[serde(with = "humantime_serde")]
    pub talk_mean: Duration,
    /// Lognormal sigma of the talk time.
    pub talk_sigma: f64,
    /// Length of the voicemail message as played.
    #[serde(with = "humantime_serde")]
    pub voicemail_length: Duration,
    /// P(a connected person asks to be called back), 0..1.
    pub callback_rate: f64,
    /// Time AMD takes to classify an answer, after which the call is connected or handled
    /// (`amd = "sync"`); with `amd = "async"`, the mean of the lognormal delay of the verdict.
    #[serde(with = "humantime_serde")]
    pub amd_time: Duration,
    /// When the AMD verdict comes: `sync` (default: before the call is connected) or `async`
    /// (the call is answered and connected to the agent at once as `unknown`; the verdict follows
    /// after a lognormal delay of mean `amd_time` and may move it to voicemail or a hang-up).
    pub amd: SimAmdFile,
    /// Lognormal sigma of the async AMD delay.
    pub amd_sigma: f64,
    /// P(AMD takes a person for a machine), 0..1.
    pub amd_false_positive: f64,
    /// P(AMD passes a machine to an agent slot), 0..1.
    pub amd_false_negative: f64,
    /// How long a machine passed to an agent slot holds it before the agent hangs up.
    #[serde(with = "humantime_serde")]
    pub amd_false_negative_hold: Duration,
    /// Length of the safe-harbor message as played.
    #[serde(with = "humantime_serde")]
    pub safe_harbor_length: Duration,
    /// P(an agent turn of a connected call carries a `[KNOWLEDGE_GAP: topic]` marker), 0..1 per call.
    pub knowledge_gap_rate: f64,
    /// P(a connected call has a `track_conversion` tool call), 0..1.
    pub conversion_rate: f64,
    /// P(a connected person opts out), 0..1.
    pub opt_out_rate: f64,
    /// Connect → the agent's first words, in real time (not scaled by `time_scale`): more than
    /// 2 s abandons the call (FTC TSR 16 CFR 310.4(b)(4)(i)). Default 0 s.
    #[serde(with = "humantime_serde")]
    pub agent_speech_delay: Duration,
    /// Who speaks for the agent on connected calls: `builtin` (template transcripts) or
    /// `external` (no transcript of its own: a voice agent posts the conversation to
    /// `POST /v1/calls/{call_id}/events` and ends the call with `end_call`).
    pub agent: SimAgent,
    /// How long the trunk takes to accept a dial, in real time (not scaled): a provider's create
    /// request. The runner awaits it, so a very long one models a trunk request that hangs.
    /// Default 0 s.
    #[serde(with = "humantime_serde")]
    pub dial_latency: Duration,
    /// `[trunk.sim.answer_factor]`: caller ID (E.164) → factor in 0..1 on P(answer) of calls
    /// presenting it; the answers it takes away ring out unanswered, as calls from a number
    /// labelled "spam likely" do. Numbers not listed answer at the model's rates.
    pub answer_factor: std::collections::BTreeMap<String, f64>,
}

/// `[trunk.sim] agent`: who speaks for the agent on the sim trunk's connected calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimAgent {
    /// Template transcripts drawn at the `[trunk.sim]` rates.
    #[default]
    Builtin,
    /// A real voice agent reports the conversation through the agent events API.
    External,
}

impl Default for SimFile {
    fn default() -> Self {
        SimFile {
            seed: 1,
            time_scale: 1.0,
            p_human: 0.25,
            p_machine: 0.20,
            p_no_answer: 0.40,
            p_busy: 0.10,
            p_failed: 0.05,
            human_answer_mean: Duration::from_secs(8),
            machine_answer_mean: Duration::from_secs(10),
            answer_sigma: 0.4,
            busy_time: Duration::from_secs(3),
            failed_time: Duration::from_secs(2),
            talk_mean: Duration::from_secs(120),
            talk_sigma: 0.6,
            voicemail_length: Duration::from_secs(20),
            callback_rate: 0.05,
            amd_time: Duration::from_millis(1500),
            amd: SimAmdFile::Sync,
            amd_sigma: 0.4,
            amd_false_positive: 0.0,
            amd_false_negative: 0.0,
            amd_false_negative_hold: Duration::from_secs(8),
            safe_harbor_length: Duration::from_secs(8),
            knowledge_gap_rate: 0.1,
            conversion_rate: 0.1,
            opt_out_rate: 0.03,
            agent_speech_delay: Duration::ZERO,
            agent: SimAgent::Builtin,
            dial_latency: Duration::ZERO,
            answer_factor: std::collections::BTreeMap::new(),
        }
    }
}

/// `[trunk.sim] amd`: when the simulated AMD verdict arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimAmdFile {
    /// Before the call is connected (the verdict is the answer's kind).
    #[default]
    Sync,
    /// After the answer, as Twilio's `AsyncAmd`: answered as `unknown`, verdict later.
    Async,
}

/// Converts a TOML datetime (which must carry an offset) to UTC.
pub fn toml_datetime_utc(dt: &toml::value::Datetime) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&dt.to_string())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}
