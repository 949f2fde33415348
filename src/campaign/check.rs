//! `dialerd check`: validate a campaign file and read its contact list, touching no database.
//! A long list shows its progress on stderr ([`super::progress::StderrProgress`]); every rejected
//! row, for `--rejects`, is written by [`super::rejects`].

use super::contact_zone::ZoneCounts;
use super::contacts::{ContactReject, ReadSummary, check_contacts_observed};
use super::progress::StderrProgress;
use super::validate::load_campaign;
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// How many rejected rows a report lists (all of them go to `--rejects`).
pub const REJECTS_SHOWN: usize = 10;

/// Contact counts in a check report.
#[derive(Debug, Clone, Serialize)]
pub struct ContactsReport {
    /// Data rows read (header excluded).
    pub rows: u64,
    /// Rows that became a contact.
    pub accepted: u64,
    /// Rows rejected, with a reason each.
    pub rejected: u64,
    /// Rows merged into an earlier row with the same number.
    pub duplicates: u64,
    /// Accepted contacts by where their zone came from: the timezone column, the number, or
    /// the campaign's default.
    pub zones: ZoneCounts,
    /// The campaign's `default_timezone`.
    pub default_timezone: String,
    /// The first rejected rows.
    pub rejects: Vec<RejectLine>,
    /// The file every rejected row was written to (`--rejects`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejects_file: Option<String>,
}

/// A contact list read in full by [`check_file_full`]: what `--rejects` writes.
#[derive(Debug, Clone)]
pub struct CheckedList {
    /// The contact file (resolved against the campaign file's folder).
    pub contacts_file: PathBuf,
    /// Its header cells as read.
    pub header: Vec<String>,
    /// Every rejected row, by line, with its cells.
    pub rejects: Vec<ContactReject>,
}

/// A rejected row.
#[derive(Debug, Clone, Serialize)]
pub struct RejectLine {
    /// 1-based line in the CSV.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// The result of checking one campaign file: `{"file", "valid", "errors", "contacts"}`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The campaign file as given.
    pub file: String,
    /// True when the campaign file and its contact list can run.
    pub valid: bool,
    /// Problems, each naming file, line and key.
    pub errors: Vec<String>,
    /// Contact counts; absent when the campaign file itself is invalid or the list unreadable.
    pub contacts: Option<ContactsReport>,
}

/// Validates `path` and reads its contact list. Never touches a database.
pub fn check_file(path: &Path) -> CheckReport {
    check_file_full(path).0
}

/// [`check_file`], also handing back the list's header and every rejected row; `None` when the
/// campaign file is invalid or its list unreadable (the report says why).
pub fn check_file_full(path: &Path) -> (CheckReport, Option<CheckedList>) {
    let mut report = CheckReport {
        file: path.display().to_string(),
        valid: false,
        errors: Vec::new(),
        contacts: None,
    };
    let campaign = match load_campaign(path) {
        Ok(c) => c,
        Err(errs) => {
            report.errors = errs.0.iter().map(|e| e.to_string()).collect();
            return (report, None);
        }
    };
    let progress = StderrProgress::new(format!("checking {}", path.display()));
    match check_contacts_observed(&campaign.contacts, &progress) {
        Ok((summary, rejects)) => {
            report.valid = true;
            report.contacts = Some(contacts_report(
                &summary,
                &rejects,
                campaign.contacts.default_timezone.name(),
            ));
            let list = CheckedList {
                contacts_file: campaign.contacts.path.clone(),
                header: summary.header,
                rejects,
            };
            (report, Some(list))
        }
        Err(e) => {
            report.errors.push(e.to_string());
            (report, None)
        }
    }
}

fn contacts_report(summary: &ReadSummary, rejects: &[ContactReject], default_timezone: &str) -> ContactsReport {
    let s = &summary.stats;
    ContactsReport {
        rows: s.rows,
        accepted: s.accepted,
        rejected: s.rejected,
        duplicates: s.duplicates,
        zones: summary.zones,
        default_timezone: default_timezone.to_string(),
        rejects: rejects
            .iter()
            .take(REJECTS_SHOWN)
            .map(|r| RejectLine {
                line: r.line,
                reason: r.reason.clone(),
            })
            .collect(),
        rejects_file: None,
    }
}

impl CheckReport {
    /// Human-readable form, several lines ending in a newline.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}: {}", self.file, if self.valid { "valid" } else { "INVALID" });
        for e in &self.errors {
            let _ = writeln!(out, "  error: {e}");
        }
        if let Some(c) = &self.contacts {
            let _ = writeln!(
                out,
                "  contacts: {} rows, {} accepted, {} rejected, {} duplicates merged",
                c.rows, c.accepted, c.rejected, c.duplicates
            );
            let _ = writeln!(
                out,
                "  time zones: {} from the timezone column, {} from the number, {} from default_timezone ({})",
                c.zones.column, c.zones.number, c.zones.default, c.default_timezone
            );
            for r in &c.rejects {
                let _ = writeln!(out, "  rejected line {}: {}", r.line, r.reason);
            }
            if c.rejected as usize > c.rejects.len() {
                let _ = writeln!(
                    out,
                    "  … and {} more rejected rows",
                    c.rejected as usize - c.rejects.len()
                );
            }
            if let Some(f) = &c.rejects_file {
                let _ = writeln!(out, "  every rejected row ({}) written to {f}", c.rejected);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_shows_where_zones_came_from() {
        let report = CheckReport {
            file: "c.toml".into(),
            valid: true,
            errors: Vec::new(),
            contacts: Some(ContactsReport {
                rows: 5,
                accepted: 4,
                rejected: 0,
                duplicates: 1,
                zones: ZoneCounts {
                    column: 1,
                    number: 2,
                    default: 1,
                },
                default_timezone: "America/New_York".into(),
                rejects: Vec::new(),
                rejects_file: None,
            }),
        };
        let text = report.text();
        assert!(
            text.contains(
                "  time zones: 1 from the timezone column, 2 from the number, 1 from default_timezone (America/New_York)\n"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["contacts"]["zones"],
            serde_json::json!({"column": 1, "number": 2, "default": 1})
        );
    }
}
