//! The runner's compliance and bookkeeping edges: the campaign's own do-not-call list, opt-outs
//! onto the global list, refusals from the core (persisted, deferred, counted), the abandonment
//! history that seeds the core at start-up, and the pacing snapshot for `dialerd status`.

use super::Runner;
use crate::core::{AttemptKey, RefusalReason, Refused};
use crate::store::StoreError;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

impl Runner {
    /// Imports the campaign's own do-not-call file (`[compliance] dnc_list`) into its list; an
    /// unchanged file is skipped by SHA-256. A file that cannot be read stops the campaign: dialing
    /// without its list could call a number on it.
    pub(super) async fn refresh_dnc_list(&mut self) -> Result<(), crate::engine::EngineError> {
        let Some(path) = self.campaign.dnc_list.clone() else {
            return Ok(());
        };
        // Hashing a large list every few seconds is wasted work: look again only when its size or
        // modification time changed (the SHA-256 then decides whether anything is imported).
        let seen = crate::campaign::watch::meta_fingerprint(&path);
        if self.dnc_seen.as_ref() == Some(&seen) {
            return Ok(());
        }
        let scope = crate::store::DncScope::Campaign(self.campaign.id.clone());
        let region = self.campaign.contacts.default_region;
        let result = crate::campaign::dnc::import_dnc_file(&self.store, &path, &scope, region, Utc::now()).await;
        if result.is_ok() {
            self.dnc_seen = Some(seen);
        }
        match result {
            Ok(crate::campaign::dnc::DncFileOutcome::Unchanged) => Ok(()),
            Ok(crate::campaign::dnc::DncFileOutcome::Imported { stats, rejects }) => {
                info!(campaign = %self.id(), file = %path.display(), rows = stats.rows, added = stats.added,
                    rejected = stats.rejected, "Campaign do-not-call list imported.");
                for r in rejects {
                    warn!(campaign = %self.id(), file = %path.display(), line = r.line, error = %r.reason, "Do-not-call row skipped.");
                }
                Ok(())
            }
            Err(e) => Err(crate::engine::EngineError::Dnc(e.to_string())),
        }
    }

    /// An opt-out during a call puts the number on the global DNC list at once, with the time and
    /// the call as its source; the call's end then records the contact as `dnc`.
    pub(super) async fn opt_out(&mut self, key: AttemptKey, call_id: &str, at: DateTime<Utc>) {
        let id = self.campaign.id.clone();
        let Some(phone) = self.phones.get(&key.contact).cloned() else {
            warn!(campaign = %id, contact = key.contact, attempt = key.attempt, "Opt-out for a call not in flight; ignored.");
            return;
        };
        let source = format!("opt_out:{}", crate::call::CallRecord::id_for(key.contact, key.attempt));
        let global = crate::store::DncScope::Global;
        let reason = Some("opted out during a call");
        let mut result = self.store.dnc_add(&global, &phone, &source, reason, at).await;
        if result.is_err() {
            // One retry after a short pause: a busy database must not lose an opt-out.
            tokio::time::sleep(Duration::from_millis(100)).await;
            result = self.store.dnc_add(&global, &phone, &source, reason, at).await;
        }
        match result {
            Ok(_) => info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = "opt_out", call_id,
                "Contact opted out; the number is on the global do-not-call list."),
            Err(e) => error!(campaign = %id, contact = key.contact, attempt = key.attempt, error = %e,
                "Could not put an opted-out number on the do-not-call list; the contact still ends as dnc."),
        }
    }

    /// Dials what pacing, the window and the CPS budget allow now; returns when to look again.
    /// Feeds the core the abandonment measured by earlier runs, minute by minute over 30 days, so
    /// a restart keeps its counters and the cap's windows slide exactly as before.
    pub(super) async fn load_history(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let minutes = self
            .store
            .abandon_minutes(&self.campaign.id, now - TimeDelta::days(30))
            .await?;
        let (mut human, mut abandoned) = (0u64, 0u64);
        for m in &minutes {
            self.dialer.record_history(m.minute, m.human, m.abandoned);
            human += u64::from(m.human);
            abandoned += u64::from(m.abandoned);
        }
        self.history_loaded = true;
        if human > 0 {
            let day = self.dialer.abandonment(now, TimeDelta::hours(24));
            info!(campaign = %self.id(), human_24h = day.human, abandoned_24h = day.abandoned, human_30d = human,
                abandoned_30d = abandoned, "Abandonment history loaded.");
        }
        Ok(())
    }

    /// Writes the pacing snapshot for `dialerd status`, at most every 5 seconds.
    pub(super) async fn publish_pacing(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        if self.last_snapshot.is_some_and(|t| t.elapsed() < Duration::from_secs(5)) {
            return Ok(());
        }
        self.last_snapshot = Some(Instant::now());
        self.flush_refusals(now).await?;
        self.review_caller_ids(now).await;
        if let Err(e) = self.refresh_dnc_list().await {
            error!(campaign = %self.id(), error = %e, "Campaign do-not-call list could not be read; the campaign is paused.");
            self.paused = true;
        }
        let est = self.dialer.estimates();
        let p = est.outcomes.probs();
        let snapshot = crate::store::PacingSnapshot {
            mode: self.campaign.rules.pacing.mode.as_str().to_string(),
            dial_ratio: self.dialer.counts().dial_ratio(),
            p_human: p.human,
            p_machine: p.machine,
            p_no_answer: p.no_answer,
            p_early: p.early,
            calls_observed: est.outcomes.observed(),
            abandon_policy: self.campaign.rules.cap.policy.as_str().to_string(),
            abandon_cap: self.campaign.rules.cap.cap,
            amd_false_positive_rate: self.campaign.rules.cap.amd_false_positive_rate,
        };
        if let Some(l) = &self.live {
            l.send(super::super::live::LiveEvent::Pacing {
                campaign: self.campaign.id.clone(),
                mode: snapshot.mode.clone(),
                dial_ratio: snapshot.dial_ratio,
                in_flight: self.dialer.in_flight(),
                slots: self.campaign.rules.slots,
                p_human: snapshot.p_human,
                at: now,
            });
        }
        self.store.record_pacing(&self.campaign.id, &snapshot, now).await
    }

    /// Adds the refusals counted since the last flush to the audit table.
    pub(super) async fn flush_refusals(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let delta: BTreeMap<RefusalReason, u64> = self
            .dialer
            .refusal_counts()
            .iter()
            .map(|(r, n)| (*r, n - self.refusals_flushed.get(r).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        if delta.is_empty() {
            return Ok(());
        }
        self.store.add_refusals(&self.campaign.id, &delta, now).await?;
        self.refusals_flushed = self.dialer.refusal_counts().clone();
        Ok(())
    }

    /// Persists what the core refused for compliance: DNC contacts are marked `dnc`, the others
    /// deferred to when their rule allows them. Each refusal is logged at debug level.
    pub(super) async fn apply_refusals(&mut self, refused: Vec<Refused>, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut dnc = Vec::new();
        let mut no_consent = Vec::new();
        let mut later = Vec::new();
        for r in &refused {
            debug!(campaign = %self.id(), contact = r.contact, reason = %r.reason,
                until = %r.until.map_or_else(|| "-".to_string(), |t| t.to_rfc3339()), "Dial refused for compliance.");
            match (r.reason, r.until) {
                (RefusalReason::Dnc, _) => dnc.push(r.contact),
                (RefusalReason::NoConsent, _) => no_consent.push(r.contact),
                (_, Some(t)) => later.push((r.contact, t)),
                // No instant allows it (the campaign period is over): leave it; the window search says so.
                (_, None) => {}
            }
        }
        if !dnc.is_empty() {
            let n = self.store.mark_dnc(&dnc, now).await?;
            info!(campaign = %self.id(), contacts = n, outcome = "dnc", "Contacts on a do-not-call list are never dialled.");
        }
        if !no_consent.is_empty() {
            let n = self.store.mark_no_consent(&no_consent, now).await?;
            info!(campaign = %self.id(), contacts = n, outcome = "no_consent",
                "Contacts without the consent the campaign requires are never dialled.");
        }
        self.store.defer_contacts(&later, now).await
    }
}
