//! The runner's dialing step: ask the core how many calls to start, take candidates from the
//! hopper, let the core plan and refuse, claim in one transaction, check DNC a last time, dial,
//! and record the trunk's call ids in one transaction. When nothing can be dialled, work out
//! when the earliest zone opens.

use super::{DECIDE_EVERY, MAX_SLEEP, Runner};
use crate::campaign::contact_signals;
use crate::core::zones::zones_or;
use crate::core::{AttemptKey, Candidate, ContactId, RefusalReason};
use crate::store::{CampaignState, DueContact, StoreError};
use crate::trunk::{DialRequest, TrunkError};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// The first hold after the trunk said "not now" without a `Retry-After`.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest hold.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Runner {
    /// One pacing decision: dials what pacing, the windows and the CPS budget allow now; returns
    /// when to look again.
    pub(super) async fn tick(&mut self) -> Result<Instant, StoreError> {
        let now = Utc::now();
        let soon = Instant::now() + MAX_SLEEP;
        self.no_work = false;
        self.publish_pacing(now).await?;
        if self.dialing_stopped() {
            return Ok(soon);
        }
        if let Some(until) = self.dial_hold {
            if Instant::now() < until {
                return Ok(until);
            }
            self.dial_hold = None;
        }
        if let Some((_, hold)) = &mut self.account
            && let Some(until) = *hold
        {
            if Instant::now() < until {
                return Ok(until);
            }
            *hold = None;
        }
        // Pacing decides first, and again at least every second; no store query when it wants nothing.
        let wanted = self.dialer.wanted(now);
        if wanted == 0 {
            return Ok(Instant::now() + DECIDE_EVERY);
        }
        let default_zone = self.campaign.contacts.default_timezone;
        let parse = |s: &str| zones_or(s, default_zone);
        // The CPS budget is taken before anything is read, as in the simulator, so the core only
        // ever hears of dials that are placed, and only that many candidates leave the hopper.
        let budget = self.cps.take(wanted, self.started.elapsed());
        if budget == 0 {
            let wait = self.cps.wait(self.started.elapsed()).max(Duration::from_millis(1));
            return Ok(Instant::now() + wait.min(DECIDE_EVERY));
        }
        // A few spare candidates for the ones the core refuses.
        let want = (budget as usize).saturating_mul(2).max(8);
        if self.hopper.len() < want || self.hopper.zones().is_empty() {
            self.hopper
                .refill(
                    &self.store,
                    &self.campaign.id,
                    &self.campaign.rules.window,
                    parse,
                    now,
                    want,
                )
                .await?;
        }
        let due = self.hopper.take(want, now, &self.campaign.rules.window, parse);
        let placed = if due.is_empty() {
            0
        } else {
            self.dial_from(due, budget, now).await?
        };
        self.cps
            .give_back(budget.saturating_sub(u32::try_from(placed).unwrap_or(u32::MAX)));
        if placed > 0 {
            self.announced_sleep = None;
            // Look again when the CPS window has room, at most 1/cps from now.
            let period = Duration::from_secs(1) / self.campaign.dialer.calls_per_second.max(1);
            let wait = self.cps.wait(self.started.elapsed()).max(period);
            return Ok(Instant::now() + wait.min(DECIDE_EVERY));
        }
        if self.hopper.len() > 0 {
            return Ok(Instant::now() + Duration::from_millis(50));
        }
        // Nothing to dial now: sleep until the earliest zone is both due and inside its window.
        let window = &self.campaign.rules.window;
        let zones = self.hopper.zones();
        let next = zones
            .iter()
            .filter_map(|z| window.next_open_all(z.due.max(now), &z.zones))
            .min();
        match next {
            Some(t) => {
                let opens_later = zones.iter().any(|z| z.due <= now && !window.is_open_all(now, &z.zones));
                if opens_later && self.announced_sleep != Some(t) && t > now + TimeDelta::seconds(1) {
                    info!(campaign = %self.id(), until = %t.to_rfc3339(), "Outside every calling window; sleeping until it opens.");
                    self.announced_sleep = Some(t);
                }
                let wait = (t - now).to_std().unwrap_or_default().min(MAX_SLEEP);
                Ok(Instant::now() + wait.max(Duration::from_millis(50)))
            }
            None => {
                let idle = self.dialer.in_flight() == 0;
                let max = self.campaign.rules.policy.retry.max_attempts;
                if idle && !self.finished {
                    self.finished = true;
                    let remaining = self.store.remaining_contacts(&self.campaign.id, max).await?;
                    if remaining == 0 {
                        self.store
                            .set_campaign_state(&self.campaign.id, CampaignState::Finished, now)
                            .await?;
                        info!(campaign = %self.id(), "Campaign finished: every contact is accounted for.");
                        self.live_state("finished", None);
                    } else {
                        info!(campaign = %self.id(), remaining, "No calling window opens again for the remaining contacts.");
                    }
                }
                self.no_work = true;
                Ok(soon)
            }
        }
    }

    /// Plans at most `budget` dials from `due`, claims and dials them; returns how many dials were
    /// placed. Candidates the core neither planned nor refused go back to the front of the hopper.
    async fn dial_from(
        &mut self,
        due: Vec<(Instant, DueContact)>,
        budget: u32,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let candidates: Vec<Candidate> = due
            .iter()
            .map(|(_, d)| Candidate {
                jurisdictions: contact_signals::jurisdictions(
                    &self.campaign.contacts.columns,
                    &d.phone_e164,
                    &d.fields,
                ),
                consent: contact_signals::consent(&self.campaign.contacts.columns, &d.fields).map(|e| e.core()),
                dnc: d.dnc,
                recent_attempts: d.recent_attempts.clone(),
                last_attempt_at: d.last_attempt_at,
                last_abandoned_at: d.last_abandoned_at,
                ..Candidate::new(
                    d.id,
                    d.attempts,
                    d.status,
                    d.next_attempt_at,
                    zones_or(&d.timezone, self.campaign.contacts.default_timezone),
                )
            })
            .collect();
        let keys = self.dialer.plan(now, &candidates, budget);
        let refused = self.dialer.take_refused();
        let settled: HashSet<ContactId> = keys
            .iter()
            .map(|k| k.contact)
            .chain(refused.iter().map(|r| r.contact))
            .collect();
        self.apply_refusals(refused, now).await?;
        let (used, unused): (Vec<_>, Vec<_>) = due.into_iter().partition(|(_, d)| settled.contains(&d.id));
        self.hopper.put_back(unused);
        let read_at: HashMap<ContactId, Instant> = used.iter().map(|(t, d)| (d.id, *t)).collect();
        let by_id: HashMap<ContactId, DueContact> = used.into_iter().map(|(_, d)| (d.id, d)).collect();
        let (claims, waits) = self.pick_caller_ids(&keys, &by_id, now);
        self.apply_refusals(waits, now).await?;
        let max = self.campaign.rules.policy.retry.max_attempts;
        if !self.lease_valid() {
            // The lease was not renewed in time: another node may own the campaign by now.
            for claim in &claims {
                self.dialer.cancel(claim.key);
                self.caller.forget(claim.key.contact);
            }
            return Ok(0);
        }
        let (claimed, considered) = match &self.account {
            None => {
                let keys = self.store.claim_attempts(&self.campaign.id, &claims, max, now).await?;
                (keys, claims.len())
            }
            Some((limit, _)) => {
                let limited = self
                    .store
                    .claim_attempts_limited(&self.campaign.id, &claims, max, now, limit)
                    .await?;
                if let (Some(wait), Some((_, hold))) = (limited.retry_after, self.account.as_mut()) {
                    *hold = Some(Instant::now() + wait);
                }
                (limited.keys, limited.considered)
            }
        };
        // Claims the account's limits held back were never looked at: back to the hopper.
        let held_back: Vec<(Instant, DueContact)> = claims[considered..]
            .iter()
            .filter_map(|c| {
                self.dialer.cancel(c.key);
                self.caller.forget(c.key.contact);
                let read = read_at.get(&c.key.contact).copied().unwrap_or_else(Instant::now);
                by_id.get(&c.key.contact).map(|d| (read, d.clone()))
            })
            .collect();
        self.hopper.put_back(held_back);
        let claims = &claims[..considered];
        if claimed.len() < claims.len() {
            // Perhaps paused or cancelled by another process: the claim refuses every contact then.
            self.read_operator().await?;
        }
        let claimed_set: HashSet<AttemptKey> = claimed.iter().copied().collect();
        for claim in claims.iter().filter(|c| !claimed_set.contains(&c.key)) {
            self.dialer.cancel(claim.key);
            self.caller.forget(claim.key.contact);
        }
        // The last DNC check, immediately before the dial: a number listed since the claim
        // (an opt-out on another campaign, `dialerd dnc add`, a dropped file) is not called.
        let phones: Vec<String> = claimed
            .iter()
            .filter_map(|k| by_id.get(&k.contact).map(|d| d.phone_e164.clone()))
            .collect();
        let blocked = self.store.dnc_blocked(&self.campaign.id, &phones).await?;
        let mut placed = Vec::with_capacity(claimed.len());
        for key in &claimed {
            let Some(contact) = by_id.get(&key.contact) else {
                continue;
            };
            if self.dial_hold.is_some() {
                // The trunk said "not now" to an earlier dial of this batch: the rest wait too.
                self.dialer.cancel(*key);
                self.caller.forget(key.contact);
                self.store.release_claim(*key, now, now).await?;
                continue;
            }
            if blocked.contains(&contact.phone_e164) {
                self.dialer.cancel(*key);
                self.caller.forget(key.contact);
                self.dialer.count_refusal(RefusalReason::Dnc, 1);
                self.store.release_claim_dnc(*key, now).await?;
                info!(campaign = %self.id(), contact = key.contact, attempt = key.attempt, outcome = "dnc",
                    "Number went on a do-not-call list just before the dial; not dialled.");
                continue;
            }
            if !self.lease_valid() {
                // Left open on purpose: the next owner reconciles it (never placed: released).
                warn!(campaign = %self.id(), contact = key.contact, attempt = key.attempt, outcome = "not_dialled",
                    "Lease deadline passed between the claim and the dial; not dialled.");
                break;
            }
            if let Some(call_id) = self.dial(*key, contact, now).await {
                placed.push((*key, call_id));
            }
        }
        if let Err(e) = self.store.record_dialed_many(&placed).await {
            warn!(campaign = %self.id(), calls = placed.len(), error = %e, "Could not record the call ids.");
        }
        Ok(placed.len())
    }

    /// Places one claimed call; returns the trunk's call id, or `None` when the dial failed (the
    /// attempt is then closed as failed).
    async fn dial(&mut self, key: AttemptKey, contact: &DueContact, now: DateTime<Utc>) -> Option<String> {
        let id = self.campaign.id.clone();
        let voicemail_message = self.campaign.voicemail_message.as_deref().and_then(|t| {
            crate::campaign::template::render(t, &contact.fields)
                .map_err(|e| warn!(campaign = %id, contact = key.contact, error = %e, "Voicemail message could not be rendered; a machine will be hung up on."))
                .ok()
        });
        let safe_harbor_message = self.campaign.safe_harbor_message.as_deref().and_then(|t| {
            crate::campaign::template::render(t, &contact.fields)
                .map_err(|e| warn!(campaign = %id, contact = key.contact, error = %e, "Safe-harbor message could not be rendered; the unrendered text is sent."))
                .ok()
                .or_else(|| Some(t.to_string()))
        });
        self.phones.insert(key.contact, contact.phone_e164.clone());
        let from = self
            .caller
            .number(key.contact)
            .unwrap_or(&self.campaign.caller_id)
            .to_string();
        let req = DialRequest {
            campaign: id.clone(),
            key,
            to: contact.phone_e164.clone(),
            from: from.clone(),
            agent_id: self.campaign.agent_id.clone(),
            ring_timeout: self.campaign.dialer.ring_timeout,
            voicemail_message,
            safe_harbor_message,
        };
        match self.trunk.dial(req).await {
            Ok(call_id) => {
                self.backoff = FIRST_BACKOFF;
                crate::telemetry::dial(&id);
                info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = %"dialing", call_id = %call_id, caller_id = %from, "Dialing.");
                self.live_call(key, "dialing", None, None);
                self.call_ids.insert(key.contact, call_id.clone());
                Some(call_id)
            }
            Err(e) => {
                self.dial_failed(key, e, now).await;
                None
            }
        }
    }

    /// Acts on a refused dial by its class: a call provably never created goes back without
    /// counting the attempt and holds dialing (`Retry-After`, else a doubling backoff); a
    /// number the trunk will never call ends the contact `invalid_number` with the trunk's
    /// reason; anything else closes the attempt `failed` with the reason (retried per policy).
    async fn dial_failed(&mut self, key: AttemptKey, e: TrunkError, now: DateTime<Utc>) {
        let id = self.campaign.id.clone();
        let decisions = match &e {
            TrunkError::NotPlaced { retry_after, .. } => {
                let hold = retry_after.unwrap_or(self.backoff).min(MAX_BACKOFF);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                self.dial_hold = Some(Instant::now() + hold);
                self.dialer.cancel(key);
                self.phones.remove(&key.contact);
                self.caller.forget(key.contact);
                if let Err(err) = self.store.release_claim(key, now, now).await {
                    error!(campaign = %id, contact = key.contact, attempt = key.attempt, error = %err,
                        "Could not undo the claim; the attempt is reconciled at next start.");
                }
                info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = "not_placed", error = %e,
                    hold_ms = hold.as_millis() as u64, "Trunk did not place the call; not counted as an attempt, dialing held.");
                return;
            }
            TrunkError::Permanent { reason, .. } => {
                warn!(campaign = %id, contact = key.contact, attempt = key.attempt, error = %e, "Trunk will never call this number.");
                self.record_reason(key, reason).await;
                self.dialer.reject(key)
            }
            TrunkError::Unavailable(_) | TrunkError::Rejected(_) => {
                warn!(campaign = %id, contact = key.contact, attempt = key.attempt, error = %e, "Dial failed.");
                self.record_reason(key, &e.to_string()).await;
                self.dialer
                    .on_event(now, key, crate::core::CallEvent::Ended(crate::core::EndReason::Failed))
            }
        };
        for d in decisions {
            self.execute(d, "", now).await;
        }
    }

    async fn record_reason(&self, key: AttemptKey, reason: &str) {
        if let Err(e) = self.store.set_outcome_reason(key, reason).await {
            warn!(campaign = %self.id(), contact = key.contact, attempt = key.attempt, error = %e, "Could not record the outcome reason.");
        }
    }
}
