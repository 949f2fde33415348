//! The jurisdiction rules data file (`jurisdictions.toml`): its TOML shape, validation into the
//! core's [`StateRules`], the copy shipped inside dialerd (`src/core/jurisdictions.toml`, each
//! entry with its statute and the day it was checked) and an operator's file that overrides
//! entries by code or adds new ones. Every error names the file, the entry and the key.

use crate::core::{JurisdictionCode, LegalHours, StateRule, StateRules};
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The shipped rules, embedded at build time.
pub const SHIPPED: &str = include_str!("../core/jurisdictions.toml");

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    jurisdiction: Vec<EntryFile>,
}

/// One `[[jurisdiction]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    code: String,
    name: String,
    statute: String,
    checked: toml::value::Datetime,
    note: Option<String>,
    max_calls_24h: Option<u32>,
    #[serde(default)]
    holidays: Vec<toml::value::Datetime>,
    #[serde(default)]
    hours: HoursFile,
}

/// `[jurisdiction.hours]`: `"HH:MM-HH:MM"` per weekday; a day left out allows no call.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursFile {
    mon: Option<String>,
    tue: Option<String>,
    wed: Option<String>,
    thu: Option<String>,
    fri: Option<String>,
    sat: Option<String>,
    sun: Option<String>,
}

/// A jurisdiction rules file that cannot be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{}: {where_}: {reason}", file.display())]
pub struct StateRulesError {
    /// The file (`jurisdictions.toml (shipped)` for the embedded copy).
    pub file: PathBuf,
    /// Which entry and key (`jurisdiction[2] (US-FL).hours.sun`), or the TOML position.
    pub where_: String,
    /// What is wrong.
    pub reason: String,
}

fn date_of(d: &toml::value::Datetime) -> Option<NaiveDate> {
    match (d.date, d.time) {
        (Some(date), None) => NaiveDate::from_ymd_opt(i32::from(date.year), u32::from(date.month), u32::from(date.day)),
        _ => None,
    }
}

/// Parses and validates rules text read from `file`: codes (ISO 3166), names, statutes, the
/// `checked` date, hours per weekday, holidays (dates without a time) and caps (at least 1).
/// Errors: the first problem found, with its entry and key.
pub fn parse_rules(file: &Path, text: &str) -> Result<Vec<StateRule>, StateRulesError> {
    let fail = |where_: String, reason: String| StateRulesError {
        file: file.to_path_buf(),
        where_,
        reason,
    };
    let parsed: RulesFile = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!("line {}", text[..s.start.min(text.len())].lines().count().max(1)))
            .unwrap_or_else(|| "file".into());
        fail(at, e.message().to_string())
    })?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(parsed.jurisdiction.len());
    for (i, e) in parsed.jurisdiction.into_iter().enumerate() {
        let at = |key: &str| format!("jurisdiction[{i}] ({}).{key}", e.code);
        let code = JurisdictionCode::parse(&e.code).ok_or_else(|| {
            fail(
                at("code"),
                format!("`{}` is not an ISO 3166 code like US-FL or CA", e.code),
            )
        })?;
        if !seen.insert(code) {
            return Err(fail(at("code"), "appears twice in one file".into()));
        }
        for (key, v) in [("name", &e.name), ("statute", &e.statute)] {
            if v.trim().is_empty() {
                return Err(fail(at(key), "must not be empty".into()));
            }
        }
        let checked = date_of(&e.checked).ok_or_else(|| fail(at("checked"), "must be a date (YYYY-MM-DD)".into()))?;
        if e.max_calls_24h == Some(0) {
            return Err(fail(at("max_calls_24h"), "must be at least 1".into()));
        }
        let h = &e.hours;
        let days = [
            ("mon", &h.mon),
            ("tue", &h.tue),
            ("wed", &h.wed),
            ("thu", &h.thu),
            ("fri", &h.fri),
            ("sat", &h.sat),
            ("sun", &h.sun),
        ];
        let mut hours = [None; 7];
        for (d, (key, v)) in days.iter().enumerate() {
            if let Some(s) = v {
                hours[d] =
                    Some(LegalHours::parse(s).map_err(|err| fail(at(&format!("hours.{key}")), err.to_string()))?);
            }
        }
        let holidays = e
            .holidays
            .iter()
            .enumerate()
            .map(|(k, d)| {
                date_of(d).ok_or_else(|| fail(at(&format!("holidays[{k}]")), "must be a date (YYYY-MM-DD)".into()))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        out.push(StateRule {
            code,
            name: e.name.trim().to_string(),
            statute: e.statute.trim().to_string(),
            checked,
            note: e.note.filter(|n| !n.trim().is_empty()),
            hours,
            holidays,
            max_calls_24h: e.max_calls_24h,
        });
    }
    Ok(out)
}

/// The shipped rules, parsed once. Errors: the embedded file is broken (a build that a test
/// catches; reported, not a panic).
pub fn shipped() -> Result<Arc<StateRules>, StateRulesError> {
    static SHIPPED_RULES: OnceLock<Result<Arc<StateRules>, StateRulesError>> = OnceLock::new();
    SHIPPED_RULES
        .get_or_init(|| {
            parse_rules(Path::new("jurisdictions.toml (shipped)"), SHIPPED).map(|r| Arc::new(StateRules::new(r)))
        })
        .clone()
}

/// The shipped rules with the operator's file at `path` over them: an entry with a shipped code
/// replaces it, a new code is added. Errors: the file cannot be read or is invalid.
pub fn with_overrides(path: &Path) -> Result<Arc<StateRules>, StateRulesError> {
    let text = std::fs::read_to_string(path).map_err(|e| StateRulesError {
        file: path.to_path_buf(),
        where_: "file".into(),
        reason: format!("cannot read: {e}"),
    })?;
    let extra = parse_rules(path, &text)?;
    let mut all = shipped()?.rules().to_vec();
    all.extend(extra);
    Ok(Arc::new(StateRules::new(all)))
}
