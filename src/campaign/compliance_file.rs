//! `[compliance]` validated into the core's compliance rules: the abandonment cap and its
//! policy, attempt limits, the safe-harbor message, holidays, the state and provincial rules
//! (shipped `jurisdictions.toml`, an operator's `state_rules_file` over it, or none on the sim
//! trunk with `state_rules = false`) and the consent every contact must have (`consent`).

use super::file::{CampaignFile, TrunkKindFile};
use crate::core::compliance::ABANDON_HOLD;
use crate::core::{AbandonCap, AbandonPolicy, AttemptLimits, ConsentKind, ConsentRequirement, PacingMode, StateRules};
use chrono::{NaiveDate, TimeDelta};
use std::path::Path;
use std::sync::Arc;

/// `[compliance] state_rules`, `state_rules_file` and `consent`, with the `[contacts]` consent
/// columns they need. `state_rules = false` is allowed only on the sim trunk, which places no
/// real call; `consent = "written"` needs a `consent_kind` column (evidence without a kind counts
/// as express consent only) and any consent needs a `consent_at` column.
pub(crate) fn state_rules_and_consent(
    path: &Path,
    f: &CampaignFile,
    err: &mut dyn FnMut(&str, String),
) -> (Arc<StateRules>, ConsentRequirement) {
    let c = &f.compliance;
    let rules = match (c.state_rules, &c.state_rules_file) {
        (Some(false), Some(_)) => {
            err("compliance.state_rules_file", "is set while state_rules = false".into());
            Arc::new(StateRules::default())
        }
        (Some(false), None) if f.trunk.kind != TrunkKindFile::Sim => {
            err(
                "compliance.state_rules",
                "false is allowed only on the sim trunk, which places no real call".into(),
            );
            Arc::new(StateRules::default())
        }
        (Some(false), None) => Arc::new(StateRules::default()),
        (_, Some(file)) => {
            let p = path.parent().unwrap_or(Path::new(".")).join(file);
            super::state_rules_file::with_overrides(&p).unwrap_or_else(|e| {
                err("compliance.state_rules_file", e.to_string());
                Arc::new(StateRules::default())
            })
        }
        (_, None) => super::state_rules_file::shipped().unwrap_or_else(|e| {
            err("compliance.state_rules", e.to_string());
            Arc::new(StateRules::default())
        }),
    };
    let consent = match c.consent.as_deref().map(str::trim) {
        None | Some("none") => None,
        Some(s) => match ConsentKind::parse(s) {
            Some(k) => Some(k),
            None => {
                err(
                    "compliance.consent",
                    format!("`{s}` must be one of none, express, written"),
                );
                None
            }
        },
    };
    let cols = &f.contacts;
    if consent.is_some() && cols.consent_at.is_none() {
        err(
            "compliance.consent",
            "needs [contacts] consent_at, the column with the time each contact gave consent".into(),
        );
    }
    if consent == Some(ConsentKind::Written) && cols.consent_kind.is_none() {
        err(
            "compliance.consent",
            "\"written\" needs [contacts] consent_kind, the column saying whether each consent is express or written"
                .into(),
        );
    }
    (rules, consent)
}

/// `[compliance]`: holidays, abandonment cap and policy, attempt limits, safe-harbor message.
pub(crate) fn compliance(
    f: &CampaignFile,
    mode: PacingMode,
    err: &mut dyn FnMut(&str, String),
) -> (AbandonCap, AttemptLimits) {
    let c = &f.compliance;
    let policy = match c.abandon_policy.as_deref() {
        None => AbandonPolicy::Both,
        Some(s) => AbandonPolicy::parse(s).unwrap_or_else(|| {
            err(
                "compliance.abandon_policy",
                format!("`{s}` must be one of us_tsr, uk_ofcom, both"),
            );
            AbandonPolicy::Both
        }),
    };
    let cap = c.abandon_cap.unwrap_or(0.03);
    if !(cap > 0.0 && cap <= 0.03) {
        err(
            "compliance.abandon_cap",
            format!("{cap} must be above 0 and at most 0.03 (16 CFR 310.4(b)(4)(i); Ofcom: 3% over 24 hours)"),
        );
    }
    if f.dialer.target_abandon_rate > cap {
        err(
            "dialer.target_abandon_rate",
            format!("{} is above compliance.abandon_cap {cap}", f.dialer.target_abandon_rate),
        );
    }
    let sim = f.trunk.kind == TrunkKindFile::Sim;
    let fp = match c.amd_false_positive_rate {
        Some(r) if !(0.0..1.0).contains(&r) => {
            err("compliance.amd_false_positive_rate", format!("{r} must be in 0..1"));
            0.0
        }
        Some(r) => r,
        None if sim => f.trunk.sim.amd_false_positive,
        None => {
            if policy.ofcom() {
                err(
                    "compliance.amd_false_positive_rate",
                    "is required under uk_ofcom/both on a real trunk: Ofcom counts AMD false positives (persons hung up on as machines) as abandoned calls".into(),
                );
            }
            0.0
        }
    };
    if policy.ofcom() && fp >= cap {
        err(
            "compliance.amd_false_positive_rate",
            format!("{fp} alone reaches the {cap} cap under Ofcom's measure; no pacing could comply"),
        );
    }
    if c.max_attempts_per_day == Some(0) {
        err("compliance.max_attempts_per_day", "must be at least 1".into());
    }
    match &c.safe_harbor_message {
        None if mode.can_abandon() => err(
            "compliance.safe_harbor_message",
            format!(
                "is required with mode `{}`, which can abandon calls (FTC TSR 16 CFR 310.4(b)(4)(iii): a recorded message within 2 s naming the seller and a callback number)",
                mode.as_str()
            ),
        ),
        Some(m) if m.trim().is_empty() => err("compliance.safe_harbor_message", "must not be empty".into()),
        Some(m) if m.chars().filter(char::is_ascii_digit).count() < 7 => err(
            "compliance.safe_harbor_message",
            "must give a callback number (16 CFR 310.4(b)(4)(iii)); none was found".into(),
        ),
        Some(m) => {
            if let Err(e) = super::template::check(m) {
                err(
                    "compliance.safe_harbor_message",
                    format!("is not a valid template: {e}"),
                );
            }
        }
        None => {}
    }
    let limits = AttemptLimits {
        max_per_day: c.max_attempts_per_day,
        min_gap: c.min_gap.map(|d| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)),
        abandon_hold: mode.can_abandon().then_some(ABANDON_HOLD),
    };
    (
        AbandonCap {
            policy,
            cap,
            amd_false_positive_rate: fp,
        },
        limits,
    )
}

/// `[compliance] holidays`: `YYYY-MM-DD` dates; each bad one is reported with its index.
pub(crate) fn holidays(list: &[String], err: &mut dyn FnMut(&str, String)) -> Vec<NaiveDate> {
    list.iter()
        .enumerate()
        .filter_map(|(i, d)| {
            NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                .map_err(|e| {
                    err(
                        &format!("compliance.holidays[{i}]"),
                        format!("`{d}` is not a YYYY-MM-DD date: {e}"),
                    )
                })
                .ok()
        })
        .collect()
}
