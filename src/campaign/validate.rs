//! Validation of a campaign file into a runtime [`Campaign`]. Every error names the file, the
//! line, the key and the reason; semantic errors are all collected, not just the first.

use super::contacts::{ContactSource, parse_region};
use super::file::{CampaignFile, ModeFile, SimFile, TrunkKindFile, VoicemailActionFile, toml_datetime_utc};
use super::phone::is_e164;
use crate::core::{
    CallbackPolicy, CallingWindow, LegalHours, PacingConfig, PacingMode, Policy, Priors, RetryPolicy, Rules,
    VoicemailAction,
};
use chrono::TimeDelta;
use chrono_tz::Tz;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shortest ring timeout allowed: 15 seconds, FTC TSR 16 CFR 310.4(b)(4)(ii)
/// ("at least fifteen seconds or four rings").
pub const MIN_RING_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest ring timeout allowed: 5 minutes, the margin [`crate::core::AbandonCap::headroom`]
/// leaves at the far edge of its windows.
pub const MAX_RING_TIMEOUT: Duration = Duration::from_secs(300);

/// One problem in a campaign file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CampaignError {
    /// The campaign file.
    pub file: PathBuf,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// Dotted key path (`dialer.ring_timeout`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for CampaignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for CampaignError {}

/// All the problems found in one campaign file (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignErrors(pub Vec<CampaignError>);

impl fmt::Display for CampaignErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        f.write_str(&lines.join("; "))
    }
}

impl std::error::Error for CampaignErrors {}

/// Dialer settings the driver needs beyond the core's rules.
#[derive(Debug, Clone)]
pub struct DialerSettings {
    /// Most new calls per second (≥ 1).
    pub calls_per_second: u32,
    /// Ring timeout (≥ 15 s).
    pub ring_timeout: Duration,
}

/// A validated campaign, ready to run.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// File name without `.toml`.
    pub id: String,
    /// The campaign file.
    pub path: PathBuf,
    /// Display name.
    pub name: String,
    /// Voice agent that takes answered calls.
    pub agent_id: String,
    /// The default caller ID, E.164 (the single `caller_id`, or the pool's `default`).
    pub caller_id: String,
    /// Every caller ID with local presence and health rules (`[caller_id]`); just the default
    /// when the file names one number.
    pub caller_ids: crate::core::CallerIdPool,
    /// Where the contacts come from.
    pub contacts: ContactSource,
    /// The pure core's rules (slots, pacing, policy, window).
    pub rules: Rules,
    /// CPS and ring timeout.
    pub dialer: DialerSettings,
    /// Voicemail template (`{{first_name}}` variables), set when the action is `leave_message`.
    pub voicemail_message: Option<String>,
    /// Safe-harbor message template (`[compliance]`), set whenever the pacing mode can abandon.
    pub safe_harbor_message: Option<String>,
    /// The campaign's own do-not-call CSV (`[compliance] dnc_list`), resolved beside the file.
    pub dnc_list: Option<PathBuf>,
    /// Which trunk adapter to use.
    pub trunk: TrunkKindFile,
    /// `[trunk] record`: the trunk records every call.
    pub record: bool,
    /// The sim trunk's call model.
    pub sim: SimFile,
    /// `[trunk.twilio]`, checked: present, with the URL its `connect` needs, when the kind is `twilio`.
    pub twilio: Option<super::twilio_file::TwilioFile>,
    /// `[trunk.livekit]`, checked: present, with a trunk id and an agent name, when the kind is `livekit`.
    pub livekit: Option<super::livekit_file::LivekitFile>,
    /// Post-call analysis, webhooks, CRM and follow-ups (`[analysis]`, `[webhooks]`, `[crm]`, `[follow_up]`).
    pub analysis: super::analysis_file::AnalysisConfig,
}

/// Reads and validates the campaign file at `path`.
///
/// Errors: the file cannot be read, is not valid TOML, has unknown keys or wrong types, or
/// breaks a rule (each error with line and key).
pub fn load_campaign(path: &Path) -> Result<Campaign, CampaignErrors> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        CampaignErrors(vec![CampaignError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            reason: format!("cannot read: {e}"),
        }])
    })?;
    parse_campaign(path, &src)
}

/// The campaign id of a file: its name without `.toml`.
pub fn campaign_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Validates campaign source text `src` read from `path` (used for messages and relative paths).
///
/// Errors: as [`load_campaign`].
pub fn parse_campaign(path: &Path, src: &str) -> Result<Campaign, CampaignErrors> {
    let locator = Locator { file: path, src };
    let deserializer =
        toml::Deserializer::parse(src).map_err(|e| CampaignErrors(vec![locator.toml_error(&e, None)]))?;
    let file: CampaignFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let key = (key != "." && !key.is_empty()).then_some(key);
        CampaignErrors(vec![locator.toml_error(e.inner(), key)])
    })?;
    let mut errs = Vec::new();
    let campaign = build(path, &file, &mut |key: &str, reason: String| {
        errs.push(locator.at(key, reason))
    });
    match campaign {
        Some(c) if errs.is_empty() => Ok(c),
        _ => Err(CampaignErrors(errs)),
    }
}

fn build(path: &Path, f: &CampaignFile, err: &mut dyn FnMut(&str, String)) -> Option<Campaign> {
    let nonempty = |v: &str| !v.trim().is_empty();
    for (key, value) in [("name", &f.name), ("agent_id", &f.agent_id)] {
        if !nonempty(value) {
            err(key, "must not be empty".into());
        }
    }
    let campaign_dir = path.parent().unwrap_or(Path::new("."));
    let caller_ids = super::caller_id_file::build(&f.caller_id, campaign_dir, &is_e164, err);
    let region = parse_region(&f.default_region);
    if region.is_none() {
        err(
            "default_region",
            format!("`{}` is not a known ISO 3166 region code", f.default_region),
        );
    }
    let tz: Option<Tz> = f.default_timezone.parse().ok();
    if tz.is_none() {
        err(
            "default_timezone",
            format!("`{}` is not an IANA time zone", f.default_timezone),
        );
    }
    if !nonempty(&f.contacts.file) {
        err("contacts.file", "must name the contact CSV".into());
    }

    let start_at = f.schedule.start_at.as_ref().and_then(|d| {
        let t = toml_datetime_utc(d);
        if t.is_none() {
            err(
                "schedule.start_at",
                format!("`{d}` needs a date, a time and an offset (2026-12-01T08:00:00Z)"),
            );
        }
        t
    });
    let end_at = f.schedule.end_at.as_ref().and_then(|d| {
        let t = toml_datetime_utc(d);
        if t.is_none() {
            err(
                "schedule.end_at",
                format!("`{d}` needs a date, a time and an offset (2026-12-20T00:00:00Z)"),
            );
        }
        t
    });
    if let (Some(s), Some(e)) = (start_at, end_at)
        && s >= e
    {
        err("schedule.end_at", "must be after schedule.start_at".into());
    }

    let legal = match &f.compliance.legal_hours {
        None => Some(LegalHours::DEFAULT),
        Some(s) => match LegalHours::parse(s) {
            Ok(h) if !h.within(&LegalHours::DEFAULT) && f.trunk.kind != TrunkKindFile::Sim => {
                err(
                    "compliance.legal_hours",
                    format!(
                        "`{s}` widens 08:00-21:00 (16 CFR 310.4(c)); only the sim trunk, which places no real call, may do that"
                    ),
                );
                None
            }
            Ok(h) => Some(h),
            Err(e) => {
                err("compliance.legal_hours", e.to_string());
                None
            }
        },
    };
    let holidays = super::compliance_file::holidays(&f.compliance.holidays, err);
    let window = legal.and_then(
        |legal| match CallingWindow::new(&f.schedule.windows, legal, start_at, end_at) {
            Ok(w) => Some(w.with_holidays(holidays)),
            Err(e) => {
                err("schedule.windows", e.to_string());
                None
            }
        },
    );

    let d = &f.dialer;
    if d.max_concurrent == 0 {
        err("dialer.max_concurrent", "must be at least 1".into());
    }
    if d.calls_per_second == 0 {
        err("dialer.calls_per_second", "must be at least 1".into());
    }
    if d.ring_timeout < MIN_RING_TIMEOUT {
        err(
            "dialer.ring_timeout",
            format!(
                "{} is below the 15 s minimum (FTC TSR 16 CFR 310.4(b)(4)(ii): ring at least 15 seconds or four rings)",
                humantime::format_duration(d.ring_timeout)
            ),
        );
    }
    if d.ring_timeout > MAX_RING_TIMEOUT {
        err(
            "dialer.ring_timeout",
            format!(
                "{} is above 5 minutes; the abandonment cap's worst-case bound assumes calls resolve within that",
                humantime::format_duration(d.ring_timeout)
            ),
        );
    }
    if f.retry.max_attempts == 0 {
        err("retry.max_attempts", "must be at least 1".into());
    }
    let voicemail = match f.voicemail.action {
        VoicemailActionFile::LeaveMessage => VoicemailAction::LeaveMessage,
        VoicemailActionFile::Hangup => VoicemailAction::Hangup,
    };
    match (&f.voicemail.message, voicemail) {
        (None, VoicemailAction::LeaveMessage) => err(
            "voicemail.message",
            "is required when action = \"leave_message\"".into(),
        ),
        (Some(m), _) => {
            if let Err(e) = super::template::check(m) {
                err("voicemail.message", format!("is not a valid template: {e}"));
            }
        }
        _ => {}
    }
    validate_sim(&f.trunk.sim, err);
    super::twilio_file::validate(&f.trunk, err);
    super::livekit_file::validate(&f.trunk, err);
    let analysis = super::analysis_file::AnalysisConfig {
        analysis: f.analysis.clone(),
        webhooks: f.webhooks.clone(),
        crm: f.crm.clone(),
        follow_up: f.follow_up.clone(),
        consent_columns: super::contact_signals::ConsentColumns::of(&f.contacts),
    };
    super::analysis_file::validate_analysis(&analysis, err);

    let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    let r = &f.retry;
    let policy = Policy {
        retry: RetryPolicy {
            max_attempts: r.max_attempts,
            delay: delta(r.delay),
            no_answer: r.no_answer.map(delta),
            busy: r.busy.map(delta),
            machine: r.machine.map(delta),
            failed: r.failed.map(delta),
            abandoned: r.abandoned.map(delta),
            unknown: r.unknown.map(delta),
        },
        voicemail,
        callback: CallbackPolicy {
            enabled: f.callback.enabled,
            delay: delta(f.callback.delay),
        },
    };
    let mode = match d.mode {
        ModeFile::Progressive => PacingMode::Progressive,
        ModeFile::Ratio => PacingMode::Ratio,
        ModeFile::Predictive => PacingMode::Predictive,
        ModeFile::VicidialAdaptive => PacingMode::VicidialAdaptive,
    };
    validate_pacing(d, err);
    let (cap, mut limits) = super::compliance_file::compliance(f, mode, err);
    let (state_rules, consent) = super::compliance_file::state_rules_and_consent(path, f, err);
    if let Some(gap) = limits.min_gap
        && gap > TimeDelta::days(7)
    {
        err("compliance.min_gap", "must be at most 7 days".into());
        limits.min_gap = None;
    }
    let pacing = PacingConfig {
        mode,
        ratio: d.ratio,
        target_abandon_rate: d.target_abandon_rate,
        max_dial_ratio: d.max_dial_ratio,
        vicidial_intensity: d.vicidial_intensity,
        ..PacingConfig::default()
    };
    let contacts_path = path.parent().unwrap_or(Path::new(".")).join(&f.contacts.file);
    Some(Campaign {
        id: campaign_id(path),
        path: path.to_path_buf(),
        name: f.name.clone(),
        agent_id: f.agent_id.clone(),
        caller_id: f.caller_id.default_number().to_string(),
        caller_ids: caller_ids?,
        contacts: ContactSource {
            path: contacts_path,
            columns: f.contacts.clone(),
            default_region: region?,
            default_timezone: tz?,
        },
        rules: Rules {
            slots: d.max_concurrent,
            pacing,
            ring_timeout_s: d.ring_timeout.as_secs_f64(),
            priors: Priors::default(),
            policy,
            window: window?,
            cap,
            limits,
            state_rules,
            consent,
        },
        dialer: DialerSettings {
            calls_per_second: d.calls_per_second,
            ring_timeout: d.ring_timeout,
        },
        voicemail_message: f.voicemail.message.clone(),
        safe_harbor_message: f.compliance.safe_harbor_message.clone(),
        dnc_list: f
            .compliance
            .dnc_list
            .as_ref()
            .map(|p| path.parent().unwrap_or(Path::new(".")).join(p)),
        trunk: f.trunk.kind,
        record: f.trunk.record,
        sim: f.trunk.sim.clone(),
        twilio: f.trunk.twilio.clone(),
        livekit: f.trunk.livekit.clone(),
        analysis,
    })
}

fn validate_pacing(d: &super::file::DialerFile, err: &mut dyn FnMut(&str, String)) {
    if !(d.target_abandon_rate > 0.0 && d.target_abandon_rate <= 0.03) {
        let reason = "must be above 0 and at most 0.03 (FTC TSR 16 CFR 310.4(b)(4)(i): 3% of answered calls)";
        err(
            "dialer.target_abandon_rate",
            format!("{} {reason}", d.target_abandon_rate),
        );
    }
    if !(1.0..=5.0).contains(&d.max_dial_ratio) {
        err("dialer.max_dial_ratio", format!("{} must be in 1..5", d.max_dial_ratio));
    }
    if !(1.0..=5.0).contains(&d.ratio) {
        err("dialer.ratio", format!("{} must be in 1..5", d.ratio));
    }
    if !(-100.0..=100.0).contains(&d.vicidial_intensity) {
        err(
            "dialer.vicidial_intensity",
            format!("{} must be in -100..100", d.vicidial_intensity),
        );
    }
}

fn validate_sim(s: &SimFile, err: &mut dyn FnMut(&str, String)) {
    let probs = [
        ("trunk.sim.p_human", s.p_human),
        ("trunk.sim.p_machine", s.p_machine),
        ("trunk.sim.p_no_answer", s.p_no_answer),
        ("trunk.sim.p_busy", s.p_busy),
        ("trunk.sim.p_failed", s.p_failed),
        ("trunk.sim.callback_rate", s.callback_rate),
        ("trunk.sim.knowledge_gap_rate", s.knowledge_gap_rate),
        ("trunk.sim.conversion_rate", s.conversion_rate),
        ("trunk.sim.opt_out_rate", s.opt_out_rate),
    ];
    for (key, p) in probs {
        if !(0.0..=1.0).contains(&p) {
            err(key, format!("{p} is not a probability in 0..1"));
        }
    }
    let sum: f64 = probs[..5].iter().map(|(_, p)| p).sum();
    if (sum - 1.0).abs() > 1e-6 {
        err(
            "trunk.sim",
            format!("p_human + p_machine + p_no_answer + p_busy + p_failed = {sum}, must be 1"),
        );
    }
    for (number, f) in &s.answer_factor {
        if !(0.0..=1.0).contains(f) {
            err(
                &format!("trunk.sim.answer_factor.\"{number}\""),
                format!("{f} is not a factor in 0..1"),
            );
        }
    }
    if !(s.time_scale > 0.0 && s.time_scale.is_finite()) {
        err(
            "trunk.sim.time_scale",
            format!("{} must be a positive number", s.time_scale),
        );
    }
    for (key, v) in [
        ("trunk.sim.answer_sigma", s.answer_sigma),
        ("trunk.sim.talk_sigma", s.talk_sigma),
    ] {
        if !(0.0..=3.0).contains(&v) {
            err(key, format!("{v} must be in 0..3"));
        }
    }
}

/// Maps key paths and byte offsets of one file to lines.
struct Locator<'a> {
    file: &'a Path,
    src: &'a str,
}

impl Locator<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.src[..offset.min(self.src.len())].matches('\n').count() + 1
    }

    fn toml_error(&self, e: &toml::de::Error, key: Option<String>) -> CampaignError {
        let line = e.span().map(|s| self.line_of(s.start));
        CampaignError {
            file: self.file.to_path_buf(),
            line,
            key,
            reason: e.message().trim().to_string(),
        }
    }

    /// An error at dotted `key`, located at the key's value (or its nearest existing parent table).
    fn at(&self, key: &str, reason: String) -> CampaignError {
        CampaignError {
            file: self.file.to_path_buf(),
            line: self.find(key),
            key: Some(key.to_string()),
            reason,
        }
    }

    fn find(&self, key: &str) -> Option<usize> {
        let root = toml::de::DeTable::parse(self.src).ok()?;
        let mut table = root.get_ref();
        let mut line = None;
        for part in key.split('.') {
            let Some((_, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part) else {
                break;
            };
            line = Some(self.line_of(value.span().start));
            match value.get_ref().as_table() {
                Some(t) => table = t,
                None => break,
            }
        }
        line
    }
}
