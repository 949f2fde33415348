//! What a contact's own columns say about the rules that apply to it: its jurisdictions (the
//! mapped state and postal-code columns, with its number's area code) and its consent evidence
//! (the mapped `consent_at`, `consent_source` and `consent_kind` columns). The columns stay among
//! the contact's stored fields, so the runner, the simulator and `dialerd preflight` read them the
//! same way from the same cells; the import checks the consent cells so a bad one is a reject.

use super::file::ContactsFile;
use crate::core::jurisdiction_map::contact_jurisdictions;
use crate::core::{Consent, ConsentKind, JurisdictionCode};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `[contacts]` columns that hold a contact's consent evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ConsentColumns {
    /// `consent_at`.
    pub at: Option<String>,
    /// `consent_source`.
    pub source: Option<String>,
    /// `consent_kind`.
    pub kind: Option<String>,
}

impl ConsentColumns {
    /// The consent columns of a `[contacts]` mapping.
    pub fn of(cols: &ContactsFile) -> ConsentColumns {
        ConsentColumns {
            at: cols.consent_at.clone(),
            source: cols.consent_source.clone(),
            kind: cols.consent_kind.clone(),
        }
    }
}

/// A contact's consent as it travels with its calls (call record, `call_analyzed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentEvidence {
    /// `express` or `written`.
    pub kind: &'static str,
    /// When it was given (UTC).
    pub at: DateTime<Utc>,
    /// Where it came from (the `consent_source` cell), when mapped and filled.
    pub source: Option<String>,
}

impl ConsentEvidence {
    /// The core's view: kind and time.
    pub fn core(&self) -> Consent {
        Consent {
            kind: if self.kind == "written" {
                ConsentKind::Written
            } else {
                ConsentKind::Express
            },
            at: self.at,
        }
    }
}

/// Parses a consent time: RFC 3339 (`2026-03-01T12:00:00Z`), `YYYY-MM-DD HH:MM:SS` (UTC) or
/// `YYYY-MM-DD` (00:00 UTC). `None` for anything else.
pub fn parse_consent_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Checks the consent cells of one row: a filled `consent_at` must be a time
/// ([`parse_consent_time`]) and a filled `consent_kind` must be `express` or `written`.
/// Errors: the reason, naming the column as written in the header.
pub fn check_consent_cells(at: Option<(&str, &str)>, kind: Option<(&str, &str)>) -> Result<(), String> {
    if let Some((label, v)) = at
        && !v.is_empty()
        && parse_consent_time(v).is_none()
    {
        return Err(format!(
            "{label}: \"{v}\" is not a consent time (RFC 3339, YYYY-MM-DD HH:MM:SS UTC, or YYYY-MM-DD)"
        ));
    }
    if let Some((label, v)) = kind
        && !v.is_empty()
        && ConsentKind::parse(v).is_none()
    {
        return Err(format!("{label}: \"{v}\" must be express or written"));
    }
    Ok(())
}

fn norm(s: &str) -> String {
    s.trim_start_matches('\u{feff}').trim().to_lowercase()
}

/// The cell of `column` among a contact's stored fields (header names as written), matched as
/// the import matches headers: case-insensitive, surrounding spaces ignored; `None` when empty.
pub fn field<'a>(fields: &'a BTreeMap<String, String>, column: &str) -> Option<&'a str> {
    let want = norm(column);
    fields
        .iter()
        .find(|(k, _)| norm(k) == want)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Every jurisdiction of a contact: its state cell, its postal-code cell and its number's area
/// code ([`contact_jurisdictions`]).
pub fn jurisdictions(cols: &ContactsFile, e164: &str, fields: &BTreeMap<String, String>) -> Vec<JurisdictionCode> {
    let state = cols.state.as_deref().and_then(|c| field(fields, c));
    let postal = cols.postal_code.as_deref().and_then(|c| field(fields, c));
    contact_jurisdictions(e164, state, postal)
}

/// A contact's consent evidence: `None` without a `consent_at` column or with an empty or
/// unreadable cell. Without a `consent_kind` column (or with an empty cell) the consent counts as
/// express only.
pub fn consent(cols: &ContactsFile, fields: &BTreeMap<String, String>) -> Option<ConsentEvidence> {
    consent_in(&ConsentColumns::of(cols), fields)
}

/// [`consent`] under columns named by a [`ConsentColumns`] (the analysis job's snapshot).
pub fn consent_in(cols: &ConsentColumns, fields: &BTreeMap<String, String>) -> Option<ConsentEvidence> {
    let at = parse_consent_time(field(fields, cols.at.as_deref()?)?)?;
    let kind = match cols
        .kind
        .as_deref()
        .and_then(|c| field(fields, c))
        .and_then(ConsentKind::parse)
    {
        Some(k) => k.as_str(),
        None => ConsentKind::Express.as_str(),
    };
    let source = cols
        .source
        .as_deref()
        .and_then(|c| field(fields, c))
        .map(str::to_string);
    Some(ConsentEvidence { kind, at, source })
}
