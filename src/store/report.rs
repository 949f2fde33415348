//! Read-only reports for operators: per-campaign status and the per-attempt export.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One campaign's figures for `dialerd status`.
#[derive(Clone, Debug, Serialize)]
pub struct CampaignStatus {
    /// Campaign id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `active`, `paused` or `finished`.
    pub state: String,
    /// The operator's control (`running`, `paused`, `cancelled`), who set it and when.
    pub control: super::ControlRecord,
    /// Contacts by status (pending, scheduled, in_progress, done, exhausted).
    pub contacts: BTreeMap<String, u64>,
    /// Final contacts by disposition.
    pub dispositions: BTreeMap<String, u64>,
    /// Ended attempts by outcome.
    pub attempts: BTreeMap<String, u64>,
    /// Attempts not yet ended (calls in flight, or left by a crash until reconciled).
    pub in_flight: u64,
    /// Rows rejected by the last contact import.
    pub rejected_rows: u64,
    /// The first rejected rows: (line, reason).
    pub rejects: Vec<RejectedRow>,
    /// The runner's latest pacing snapshot (dial ratio, estimated outcome probabilities).
    pub pacing: Option<super::PacingSnapshot>,
    /// Measured abandonment over the last 24 hours.
    pub abandonment_24h: super::MeasuredAbandonment,
    /// Measured abandonment over the last 30 days.
    pub abandonment_30d: super::MeasuredAbandonment,
    /// The abandonment cap and the measures it applies, and refusals by reason.
    pub compliance: ComplianceStatus,
    /// Answer → first agent speech over the last 30 days (calls over 2 s are abandoned).
    pub agent_speech: super::SpeechLatency,
    /// The ETA to the end of the list at the pace of the last 15 minutes.
    pub eta: super::Eta,
    /// The caller-ID pool's per-number figures as the runner last published them (every 5 s
    /// while it runs); empty for a campaign with one caller ID.
    pub caller_ids: Vec<crate::core::caller_id::NumberStats>,
}

/// A campaign's compliance figures for `dialerd status`.
#[derive(Clone, Debug, Serialize)]
pub struct ComplianceStatus {
    /// `us_tsr`, `uk_ofcom` or `both` (from the runner's last snapshot; `both` before one).
    pub abandon_policy: String,
    /// The cap, 0..1.
    pub abandon_cap: f64,
    /// 30-day abandoned / person-answered, 0..1 (FTC TSR 16 CFR 310.4(b)(4)(i)); `None` when not applied.
    pub tsr_30d_rate: Option<f64>,
    /// 24-hour rate with estimated AMD false positives counted as abandoned (Ofcom), 0..1; `None` when not applied.
    pub ofcom_24h_rate: Option<f64>,
    /// Dials refused for compliance since the campaign began, by reason.
    pub refusals: BTreeMap<String, u64>,
}

/// A rejected CSV row, as shown by `dialerd status`.
#[derive(Clone, Debug, Serialize)]
pub struct RejectedRow {
    /// 1-based line in the CSV.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
}

/// One attempt, as written by `dialerd export`. A contact never dialled because its number is
/// on a do-not-call list, or because it lacks the consent the campaign requires, appears once
/// with `attempt` 0 and disposition `dnc` or `no_consent`.
#[derive(Clone, Debug, Serialize)]
pub struct ExportRow {
    /// Campaign id.
    pub campaign: String,
    /// Contact id.
    pub contact_id: i64,
    /// Number dialled, E.164.
    pub phone_e164: String,
    /// 1-based attempt number; 0 for a contact never dialled (DNC).
    pub attempt: u32,
    /// When the attempt was claimed (UTC, RFC 3339); for attempt 0, when the contact was found on a list.
    pub started_at: DateTime<Utc>,
    /// When it ended (UTC), empty while open.
    pub ended_at: Option<DateTime<Utc>>,
    /// Outcome, empty while open.
    pub outcome: Option<String>,
    /// What the attempt decided for the contact, empty while open.
    pub disposition: Option<String>,
    /// Why it ended so, when the trunk said (`twilio 21211: Invalid 'To' Phone Number`).
    pub outcome_reason: Option<String>,
    /// The caller ID the attempt presented, E.164; empty for attempt 0 and for attempts made
    /// before caller IDs were recorded.
    pub caller_id: Option<String>,
}

/// What one engine query pass reads of a campaign for [`Store::campaign_status`]: its row, its
/// counts and its first rejected rows; the rest of the status comes from other [`Store`] methods.
#[derive(Clone, Debug)]
pub(crate) struct CampaignFigures {
    /// Campaign id.
    pub(crate) id: String,
    /// Display name.
    pub(crate) name: String,
    /// `active`, `paused` or `finished`.
    pub(crate) state: String,
    /// Contacts by status.
    pub(crate) contacts: BTreeMap<String, u64>,
    /// Final contacts by disposition.
    pub(crate) dispositions: BTreeMap<String, u64>,
    /// Ended attempts by outcome.
    pub(crate) attempts: BTreeMap<String, u64>,
    /// Attempts not yet ended.
    pub(crate) in_flight: u64,
    /// Rows rejected by the last contact import.
    pub(crate) rejected_rows: u64,
    /// The first rejected rows, by line.
    pub(crate) rejects: Vec<RejectedRow>,
}

impl Store {
    /// Status of every campaign (or only `only`) at `now`, with up to `reject_limit` rejected rows each.
    pub async fn campaign_status(
        &self,
        only: Option<&str>,
        reject_limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<CampaignStatus>, StoreError> {
        let figures = self.campaign_figures(only, reject_limit).await?;
        let mut out = Vec::with_capacity(figures.len());
        for f in figures {
            let CampaignFigures {
                id,
                name,
                state,
                contacts,
                dispositions,
                attempts,
                in_flight,
                rejected_rows,
                rejects,
            } = f;
            let control = self
                .campaign_control(&id)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("campaign `{id}` vanished while read")))?;
            let pacing = self.pacing_snapshot(&id).await?;
            let abandonment_24h = self
                .measured_abandonment(&id, now - chrono::Duration::hours(24))
                .await?;
            let abandonment_30d = self.measured_abandonment(&id, now - chrono::Duration::days(30)).await?;
            let compliance = self
                .compliance_status(&id, pacing.as_ref(), abandonment_24h, abandonment_30d)
                .await?;
            let agent_speech = self.speech_latency(&id, now - chrono::Duration::days(30)).await?;
            let eta = self
                .campaign_eta(&id, super::eta::remaining_contacts(&contacts), now)
                .await?;
            let caller_ids = self.caller_id_health(&id).await?.map(|(n, _)| n).unwrap_or_default();
            out.push(CampaignStatus {
                caller_ids,
                control,
                compliance,
                agent_speech,
                eta,
                pacing,
                abandonment_24h,
                abandonment_30d,
                name,
                state,
                id,
                contacts,
                dispositions,
                attempts,
                in_flight,
                rejected_rows,
                rejects,
            });
        }
        Ok(out)
    }

    /// The row, counts and first `reject_limit` rejected rows of every campaign (or only
    /// `only`), in id order (byte order).
    ///
    /// Errors: [`StoreError::Query`].
    async fn campaign_figures(
        &self,
        only: Option<&str>,
        reject_limit: u32,
    ) -> Result<Vec<CampaignFigures>, StoreError> {
        on_engine!(self, campaign_figures(only, reject_limit))
    }

    /// The cap, its measures now, and the refusal counts of `campaign`.
    async fn compliance_status(
        &self,
        id: &str,
        pacing: Option<&super::PacingSnapshot>,
        day: super::MeasuredAbandonment,
        month: super::MeasuredAbandonment,
    ) -> Result<ComplianceStatus, StoreError> {
        use crate::core::{AbandonCap, AbandonCounts, AbandonPolicy};
        let policy = pacing
            .and_then(|p| AbandonPolicy::parse(&p.abandon_policy))
            .unwrap_or_default();
        let cap = AbandonCap {
            policy,
            cap: pacing.map_or(0.03, |p| p.abandon_cap),
            amd_false_positive_rate: pacing.map_or(0.0, |p| p.amd_false_positive_rate),
        };
        let counts = |m: super::MeasuredAbandonment| AbandonCounts {
            human: m.human,
            abandoned: m.abandoned,
        };
        Ok(ComplianceStatus {
            abandon_policy: policy.as_str().to_string(),
            abandon_cap: cap.cap,
            tsr_30d_rate: policy.tsr().then(|| AbandonCap::tsr(counts(month)).rate()),
            ofcom_24h_rate: policy.ofcom().then(|| cap.ofcom(counts(day)).rate()),
            refusals: self
                .refusal_counts(id)
                .await?
                .into_iter()
                .map(|(r, n)| (r.as_str().to_string(), n))
                .collect(),
        })
    }

    /// Every attempt of `campaign`, in contact then attempt order, and every contact never
    /// dialled because of a do-not-call list or missing consent (attempt 0, disposition `dnc` or
    /// `no_consent`).
    pub async fn export_attempts(&self, campaign: &str) -> Result<Vec<ExportRow>, StoreError> {
        on_engine!(self, export_attempts(campaign))
    }

    /// True when a campaign with this id exists.
    pub async fn campaign_exists(&self, campaign: &str) -> Result<bool, StoreError> {
        on_engine!(self, campaign_exists(campaign))
    }
}

fn join_counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".to_string();
    }
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// One line: the contacts left, the pace and the ETA.
fn eta_text(e: &super::Eta) -> String {
    if e.remaining == 0 {
        return "ETA: list done".to_string();
    }
    let pace = format!(
        "{} contacts left, {:.1} finished a minute over the last {:.0} min",
        e.remaining,
        e.per_minute,
        e.window_secs / 60.0
    );
    match (e.seconds, e.at) {
        (Some(secs), Some(at)) => {
            let d = humantime::format_duration(std::time::Duration::from_secs(secs.round() as u64));
            format!("ETA: {d} (at {} UTC); {pace}", at.format("%Y-%m-%d %H:%M"))
        }
        _ => format!("ETA: unknown, no contact finished lately; {pace}"),
    }
}

/// Human-readable `dialerd status`: a block per campaign.
pub fn status_text(status: &[CampaignStatus]) -> String {
    let mut out = String::new();
    if status.is_empty() {
        out.push_str("No campaigns in this database.\n");
    }
    for s in status {
        let total: u64 = s.contacts.values().sum();
        let _ = writeln!(out, "campaign {} ({}): {}", s.id, s.name, s.state);
        if let (Some(by), Some(at)) = (&s.control.by, s.control.at) {
            let _ = writeln!(
                out,
                "  control: {} by {by} at {}",
                s.control.control.as_str(),
                at.to_rfc3339()
            );
        }
        let _ = writeln!(out, "  contacts ({total}): {}", join_counts(&s.contacts));
        let _ = writeln!(out, "  dispositions: {}", join_counts(&s.dispositions));
        let _ = writeln!(out, "  attempts by outcome: {}", join_counts(&s.attempts));
        let _ = writeln!(out, "  calls in flight: {}", s.in_flight);
        let _ = writeln!(out, "  {}", eta_text(&s.eta));
        if let Some(p) = &s.pacing {
            let _ = writeln!(
                out,
                "  pacing: {}, dial ratio {:.2}; estimated P(human) {:.3}, P(machine) {:.3}, P(no answer) {:.3}, P(busy/failed) {:.3} from {} calls",
                p.mode, p.dial_ratio, p.p_human, p.p_machine, p.p_no_answer, p.p_early, p.calls_observed
            );
        }
        let rate = |m: &super::MeasuredAbandonment| {
            if m.human == 0 {
                0.0
            } else {
                100.0 * m.abandoned as f64 / m.human as f64
            }
        };
        let _ = writeln!(
            out,
            "  abandonment: 24 h {:.2}% ({} / {}), 30 days {:.2}% ({} / {})",
            rate(&s.abandonment_24h),
            s.abandonment_24h.abandoned,
            s.abandonment_24h.human,
            rate(&s.abandonment_30d),
            s.abandonment_30d.abandoned,
            s.abandonment_30d.human
        );
        let c = &s.compliance;
        let pct = |r: Option<f64>| r.map_or_else(|| "not applied".to_string(), |r| format!("{:.2}%", 100.0 * r));
        let _ = writeln!(
            out,
            "  abandonment cap {:.2}% ({}): 30-day TSR {}, 24 h Ofcom (AMD false positives included) {}",
            100.0 * c.abandon_cap,
            c.abandon_policy,
            pct(c.tsr_30d_rate),
            pct(c.ofcom_24h_rate)
        );
        let sp = &s.agent_speech;
        let ms = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| format!("{v} ms"));
        let _ = writeln!(
            out,
            "  answer to first agent speech (30 days, {} calls): p50 {}, p90 {}, p99 {}; over 2 s {}, no speech {}; abandoned for silence {}",
            sp.calls,
            ms(sp.p50_ms),
            ms(sp.p90_ms),
            ms(sp.p99_ms),
            sp.over_2s,
            sp.silent,
            sp.abandoned
        );
        let _ = writeln!(out, "  refused for compliance: {}", join_counts(&c.refusals));
        caller_ids_text(&mut out, &s.caller_ids);
        let _ = writeln!(out, "  rejected rows: {}", s.rejected_rows);
        for r in &s.rejects {
            let _ = writeln!(out, "    line {}: {}", r.line, r.reason);
        }
        if s.rejected_rows as usize > s.rejects.len() {
            let _ = writeln!(out, "    … and {} more", s.rejected_rows as usize - s.rejects.len());
        }
    }
    out
}

/// The caller-ID lines of `dialerd status`: one per pool number, rested ones marked.
fn caller_ids_text(out: &mut String, numbers: &[crate::core::caller_id::NumberStats]) {
    if numbers.is_empty() {
        return;
    }
    let pct = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", 100.0 * r));
    let _ = writeln!(out, "  caller IDs ({}):", numbers.len());
    for n in numbers {
        let rest = n
            .rested_until
            .map_or_else(String::new, |t| format!(", RESTED until {}", t.to_rfc3339()));
        let _ = writeln!(
            out,
            "    {}: {} dials in 24 h, answer rate {} of {} calls, short calls {}{rest}",
            n.number,
            n.dials_24h,
            pct(n.answer_rate),
            n.calls,
            pct(n.short_call_rate)
        );
    }
}
