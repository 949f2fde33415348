//! `dialerd preflight FILE [--at TIME] [--csv]`: for every contact of a campaign's list, without a
//! database, whether it may be dialled at `TIME`, every rule that stops it (DNC, consent, calling
//! window and holidays in each of its zones, state rules), and when it next may be; then counts by
//! reason and a histogram of next-callable times over the following week. It runs the daemon's
//! own core checks ([`check_due`], [`all_refusals`]) on the candidates the runner would build.

use super::contact_signals;
use super::contacts::{ContactsError, read_contacts};
use super::dnc::{DncError, dnc_dir, read_dnc};
use super::validate::{Campaign, CampaignErrors, load_campaign};
use crate::core::zones::zones_or;
use crate::core::{Candidate, ContactStatus, Refusal, RefusalReason, all_refusals, check_due};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::Path;

/// How far ahead [`next_callable`] looks: 30 days.
pub const HORIZON_DAYS: i64 = 30;

/// One contact's verdict.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ContactVerdict {
    /// 1-based line of its row in the list.
    pub line: u64,
    /// The number, E.164.
    pub phone_e164: String,
    /// Its zones, each with its local time at `at` (`America/Chicago 07:12`).
    pub zones: Vec<String>,
    /// Its jurisdictions (`US-FL`).
    pub jurisdictions: Vec<String>,
    /// Every rule that stops a dial at `at`; empty when it may be dialled.
    pub reasons: Vec<RefusalReason>,
    /// When it next may be dialled (UTC): `at` itself when callable, `None` when no instant in the
    /// next [`HORIZON_DAYS`] days allows it.
    pub next_callable: Option<DateTime<Utc>>,
    /// The caller ID its first attempt would present (local presence over a fresh pool: no
    /// number rested or capped yet), E.164.
    pub caller_id: String,
}

/// The whole preflight.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Preflight {
    /// Campaign id.
    pub campaign: String,
    /// The instant checked (UTC).
    pub at: DateTime<Utc>,
    /// Rows of the list that are not contacts (see `dialerd check --rejects`).
    pub rejected_rows: u64,
    /// Every contact, in list order.
    pub contacts: Vec<ContactVerdict>,
}

/// Errors from [`preflight`].
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The campaign file is invalid.
    #[error(transparent)]
    Campaign(#[from] CampaignErrors),
    /// The contact list cannot be read.
    #[error(transparent)]
    Contacts(#[from] ContactsError),
    /// A DNC file cannot be read.
    #[error(transparent)]
    Dnc(#[from] DncError),
}

/// The numbers on the campaign's own DNC list and on the global lists (every `*.csv` of the
/// `dnc/` folder beside the campaigns folder, as the daemon imports them).
fn dnc_numbers(c: &Campaign) -> Result<HashSet<String>, DncError> {
    let mut files: Vec<std::path::PathBuf> = c.dnc_list.iter().cloned().collect();
    let folder = dnc_dir(c.path.parent().unwrap_or(Path::new(".")));
    if let Ok(entries) = std::fs::read_dir(&folder) {
        let mut found: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        found.sort();
        files.extend(found);
    }
    let mut out = HashSet::new();
    for f in files {
        read_dnc(&f, c.contacts.default_region, 10_000, |rows| {
            out.extend(rows.into_iter().map(|r| r.phone_e164));
            ControlFlow::Continue(())
        })?;
    }
    Ok(out)
}

/// The earliest instant in `[at, at + HORIZON_DAYS)` at which [`check_due`] allows `c`, following
/// each refusal's own `until`; `None` when a rule never allows it or the horizon passes.
pub fn next_callable(rules: &crate::core::Rules, c: &Candidate, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let end = at + Duration::days(HORIZON_DAYS);
    let mut t = at;
    for _ in 0..256 {
        match check_due(rules, c, t) {
            Ok(()) => return Some(t),
            Err(Refusal::Compliance { until: Some(u), .. }) => t = u.max(t + Duration::seconds(1)),
            Err(Refusal::NotYetDue) => t = c.next_attempt_at.max(t + Duration::seconds(1)),
            Err(_) => return None,
        }
        if t >= end {
            return None;
        }
    }
    None
}

/// Runs the preflight of the campaign file at `path` at instant `at`.
///
/// Errors: [`PreflightError`] for an invalid campaign file, an unreadable list or DNC file.
pub fn preflight(path: &Path, at: DateTime<Utc>) -> Result<Preflight, PreflightError> {
    let campaign = load_campaign(path)?;
    let dnc = dnc_numbers(&campaign)?;
    let cols = &campaign.contacts.columns;
    let rules = &campaign.rules;
    let pool = &campaign.caller_ids;
    let mut health = crate::core::PoolHealth::new(pool.health.clone());
    let mut contacts = Vec::new();
    let summary = read_contacts(&campaign.contacts, super::contacts::BATCH_ROWS, |batch| {
        for (i, r) in batch.rows.iter().enumerate() {
            let zones = zones_or(&r.timezone, campaign.contacts.default_timezone);
            let c = Candidate {
                dnc: dnc.contains(&r.phone_e164),
                jurisdictions: contact_signals::jurisdictions(cols, &r.phone_e164, &r.custom_fields),
                consent: contact_signals::consent(cols, &r.custom_fields).map(|e| e.core()),
                ..Candidate::new(i as i64 + 1, 0, ContactStatus::Pending, at, zones.clone())
            };
            let reasons: Vec<RefusalReason> = all_refusals(rules, &c, at).into_iter().map(|(r, _)| r).collect();
            // As the runner picks: each pick counts as a dial, so the list spreads over equals.
            let caller_id = match crate::core::caller_id::pick(
                pool,
                &health,
                r.line as i64,
                &r.phone_e164,
                &c.jurisdictions,
                None,
                at,
            ) {
                crate::core::Pick::Use { number, .. } | crate::core::Pick::Wait { number, .. } => number,
            };
            if !pool.numbers.is_empty() {
                health.record_dial(&caller_id, at);
            }
            contacts.push(ContactVerdict {
                line: r.line,
                phone_e164: r.phone_e164.clone(),
                zones: zones
                    .iter()
                    .map(|z| format!("{} {}", z.name(), at.with_timezone(z).format("%a %H:%M")))
                    .collect(),
                jurisdictions: c.jurisdictions.iter().map(ToString::to_string).collect(),
                next_callable: if reasons.is_empty() {
                    Some(at)
                } else {
                    next_callable(rules, &c, at)
                },
                reasons,
                caller_id,
            });
        }
        ControlFlow::Continue(())
    })?;
    Ok(Preflight {
        campaign: campaign.id,
        at,
        rejected_rows: summary.stats.rejected,
        contacts,
    })
}

impl Preflight {
    /// Counts of contacts by reason (a contact with two reasons counts under each).
    pub fn by_reason(&self) -> BTreeMap<RefusalReason, u64> {
        let mut out = BTreeMap::new();
        for c in &self.contacts {
            for r in &c.reasons {
                *out.entry(*r).or_insert(0) += 1;
            }
        }
        out
    }

    /// Contacts by when they next may be dialled: callable now, then each of the next 7 days (by
    /// 24-hour steps from `at`), later, never (within the horizon).
    pub fn histogram(&self) -> Vec<(String, u64)> {
        let mut bins = [0u64; 10];
        for c in &self.contacts {
            let bin = match c.next_callable {
                None => 9,
                Some(t) if t <= self.at => 0,
                Some(t) => {
                    let d = (t - self.at).num_seconds() / 86_400;
                    if d < 7 { 1 + d as usize } else { 8 }
                }
            };
            bins[bin] += 1;
        }
        let mut out = vec![("now".to_string(), bins[0])];
        for d in 0..7 {
            let from = self.at + Duration::days(d);
            out.push((
                format!("{} (+{}d)", from.format("%a %Y-%m-%d %H:%M UTC"), d),
                bins[1 + d as usize],
            ));
        }
        out.push(("later".into(), bins[8]));
        out.push(("never".into(), bins[9]));
        out
    }

    /// The human summary: totals, counts by reason, the histogram, then one line per contact
    /// that cannot be called now.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let now = self.contacts.iter().filter(|c| c.reasons.is_empty()).count();
        let _ = writeln!(s, "campaign {} at {}", self.campaign, self.at.to_rfc3339());
        let _ = writeln!(
            s,
            "contacts {}  callable now {}  not now {}  rejected rows {}",
            self.contacts.len(),
            now,
            self.contacts.len() - now,
            self.rejected_rows
        );
        let _ = writeln!(s, "\nreasons (a contact may have several)");
        for (r, n) in self.by_reason() {
            let _ = writeln!(s, "  {:<16} {n}", r.as_str());
        }
        let _ = writeln!(s, "\nnext callable");
        for (label, n) in self.histogram() {
            let _ = writeln!(s, "  {label:<34} {n}");
        }
        if !self.caller_ids().is_empty() {
            let _ = writeln!(s, "\nfirst-attempt caller IDs (local presence)");
            for (n, count) in self.caller_ids() {
                let _ = writeln!(s, "  {n:<16} {count}");
            }
        }
        let _ = writeln!(
            s,
            "\nnot callable now (line, number, reasons, next callable, zones, jurisdictions)"
        );
        for c in self.contacts.iter().filter(|c| !c.reasons.is_empty()) {
            let _ = writeln!(
                s,
                "  {} {} {} next {} [{}] [{}]",
                c.line,
                c.phone_e164,
                reasons_text(&c.reasons),
                c.next_callable.map_or_else(|| "never".into(), |t| t.to_rfc3339()),
                c.zones.join(", "),
                c.jurisdictions.join(" ")
            );
        }
        s
    }

    /// Contacts by the caller ID of their first attempt, when the campaign has a pool; empty
    /// for a campaign with one caller ID.
    pub fn caller_ids(&self) -> BTreeMap<&str, u64> {
        let mut out = BTreeMap::new();
        for c in &self.contacts {
            *out.entry(c.caller_id.as_str()).or_insert(0) += 1;
        }
        if out.len() < 2 {
            out.clear();
        }
        out
    }

    /// One CSV row per contact:
    /// `line,phone,callable,reasons,next_callable,zones,jurisdictions,caller_id`.
    ///
    /// Errors: the CSV writer's.
    pub fn write_csv<W: std::io::Write>(&self, out: W) -> Result<(), csv::Error> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record([
            "line",
            "phone",
            "callable",
            "reasons",
            "next_callable",
            "zones",
            "jurisdictions",
            "caller_id",
        ])?;
        for c in &self.contacts {
            w.write_record([
                c.line.to_string(),
                c.phone_e164.clone(),
                c.reasons.is_empty().to_string(),
                reasons_text(&c.reasons),
                c.next_callable.map(|t| t.to_rfc3339()).unwrap_or_default(),
                c.zones.join("; "),
                c.jurisdictions.join(" "),
                c.caller_id.clone(),
            ])?;
        }
        w.flush()?;
        Ok(())
    }
}

fn reasons_text(r: &[RefusalReason]) -> String {
    r.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(";")
}
