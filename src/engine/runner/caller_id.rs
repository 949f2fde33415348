//! The runner's caller IDs: the core picks the number for each planned dial (local presence,
//! the contact's earlier number on a retry, a wait when that number is at its cap), the runner
//! remembers it for the call's life (the dial's `From`, the call record's `caller_number`), feeds
//! every dial and every end to the pool's health, logs and stores each rest, and publishes the
//! per-number figures for `dialerd status`. At start it checks the pool with the trunk and reads
//! the health history back from the attempts.

use super::Runner;
use crate::campaign::contact_signals;
use crate::core::caller_id::{self, HealthChange, Pick, PoolHealth};
use crate::core::{AttemptKey, ContactId, RefusalReason, Refused};
use crate::store::{Claim, DueContact, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use tracing::{debug, info, warn};

/// The number a call presents, and when it was answered.
#[derive(Clone, Debug)]
struct CallerUse {
    number: String,
    answered_at: Option<DateTime<Utc>>,
}

/// A campaign's pool health and the caller ID of each call in flight.
pub(super) struct CallerIds {
    health: PoolHealth,
    calls: HashMap<ContactId, CallerUse>,
    loaded: bool,
}

impl CallerIds {
    pub(super) fn new(pool: &crate::core::CallerIdPool) -> CallerIds {
        CallerIds {
            health: PoolHealth::new(pool.health.clone()),
            calls: HashMap::new(),
            loaded: false,
        }
    }

    /// The caller ID of `contact`'s call in flight.
    pub(super) fn number(&self, contact: ContactId) -> Option<&str> {
        self.calls.get(&contact).map(|c| c.number.as_str())
    }

    /// `contact`'s call was answered at `at`.
    pub(super) fn answered(&mut self, contact: ContactId, at: DateTime<Utc>) {
        if let Some(c) = self.calls.get_mut(&contact)
            && c.answered_at.is_none()
        {
            c.answered_at = Some(at);
        }
    }

    /// Forgets `contact`'s number without counting an end (a claim undone before the dial).
    pub(super) fn forget(&mut self, contact: ContactId) {
        self.calls.remove(&contact);
    }

    /// Follows a call found live after a restart.
    pub(super) fn adopt(&mut self, contact: ContactId, number: String) {
        self.calls.insert(
            contact,
            CallerUse {
                number,
                answered_at: None,
            },
        );
    }
}

impl Runner {
    /// Picks the caller ID of every planned dial: returns the claims to make, and a refusal for
    /// each retry whose number is at its cap (its planned attempt is cancelled).
    pub(super) fn pick_caller_ids(
        &mut self,
        keys: &[AttemptKey],
        by_id: &HashMap<ContactId, DueContact>,
        now: DateTime<Utc>,
    ) -> (Vec<Claim>, Vec<Refused>) {
        let pool = &self.campaign.caller_ids;
        let mut claims = Vec::with_capacity(keys.len());
        let mut waits = Vec::new();
        for key in keys {
            let Some(d) = by_id.get(&key.contact) else { continue };
            if pool.numbers.is_empty() {
                // One caller ID: nothing to pick, no health to keep.
                self.caller.adopt(key.contact, pool.default.clone());
                claims.push(Claim {
                    key: *key,
                    phone: d.phone_e164.clone(),
                    caller_id: Some(pool.default.clone()),
                });
                continue;
            }
            let jurisdictions =
                contact_signals::jurisdictions(&self.campaign.contacts.columns, &d.phone_e164, &d.fields);
            let pick = caller_id::pick(
                pool,
                &self.caller.health,
                key.contact,
                &d.phone_e164,
                &jurisdictions,
                d.caller_id.as_deref(),
                now,
            );
            match pick {
                Pick::Use { number, reason } => {
                    debug!(campaign = %self.campaign.id, contact = key.contact, attempt = key.attempt,
                        caller_id = %number, reason = ?reason, "Caller ID picked.");
                    // Counted at the pick, so one batch cannot take a number over its cap.
                    self.caller.health.record_dial(&number, now);
                    self.caller.adopt(key.contact, number.clone());
                    claims.push(Claim {
                        key: *key,
                        phone: d.phone_e164.clone(),
                        caller_id: Some(number),
                    });
                }
                Pick::Wait { number, until } => {
                    debug!(campaign = %self.campaign.id, contact = key.contact, attempt = key.attempt,
                        caller_id = %number, until = %until.to_rfc3339(), "Caller ID at its daily cap; the retry waits for it.");
                    self.dialer.cancel(*key);
                    waits.push(Refused {
                        contact: key.contact,
                        reason: RefusalReason::CallerIdCap,
                        until: Some(until),
                    });
                }
            }
        }
        if !waits.is_empty() {
            self.dialer
                .count_refusal(RefusalReason::CallerIdCap, waits.len() as u64);
        }
        (claims, waits)
    }

    /// The caller ID `key`'s call presents, taken out of the calls in flight, with its end fed
    /// to the pool's health (answered or not, and when).
    pub(super) fn caller_ended(&mut self, key: AttemptKey, now: DateTime<Utc>) -> String {
        let Some(c) = self.caller.calls.remove(&key.contact) else {
            return self.campaign.caller_id.clone();
        };
        if self.campaign.caller_ids.numbers.is_empty() {
            return c.number;
        }
        self.caller.health.record_end(&c.number, now, c.answered_at);
        c.number
    }

    /// Rests and resumes numbers by their health, logs what changed, and writes the per-number
    /// figures for `dialerd status`. Runs with the pacing snapshot (every 5 s).
    pub(super) async fn review_caller_ids(&mut self, now: DateTime<Utc>) {
        if self.campaign.caller_ids.numbers.is_empty() {
            return;
        }
        let changes = self.caller.health.review(&self.campaign.caller_ids, now);
        for c in &changes {
            match c {
                HealthChange::Rested {
                    number,
                    until,
                    answer_rate,
                    pool_rate,
                    calls,
                } => {
                    warn!(campaign = %self.campaign.id, caller_id = %number, answer_rate = format!("{answer_rate:.3}"),
                    pool_answer_rate = format!("{pool_rate:.3}"), calls, until = %until.to_rfc3339(),
                    "Caller ID rested: its answer rate is far below the rest of the pool's (a spam label?).")
                }
                HealthChange::Resumed { number } => {
                    info!(campaign = %self.campaign.id, caller_id = %number, "Caller ID rest over; it takes new contacts again.")
                }
            }
        }
        let stats = self.caller.health.stats(&self.campaign.caller_ids, now);
        if let Err(e) = self.store.record_caller_id_health(&self.campaign.id, &stats, now).await {
            warn!(campaign = %self.campaign.id, error = %e, "Could not write the caller-ID figures.");
        }
    }

    /// At start: refuses a pool the trunk says holds numbers the account does not own, then
    /// rebuilds the pool's health from the attempts of the last day (and the health window) and
    /// the rests the last run published.
    ///
    /// Errors: [`super::super::EngineError::CallerId`] naming the numbers not owned;
    /// [`StoreError`].
    pub(super) async fn prepare_caller_ids(&mut self, now: DateTime<Utc>) -> Result<(), super::super::EngineError> {
        if self.caller.health.policy() != &self.campaign.caller_ids.health {
            // New rules (a reloaded file): the history is read again under them, since what is
            // kept of it (the last `daily_cap` dials, the window's minutes) depends on them.
            self.caller.health = PoolHealth::new(self.campaign.caller_ids.health.clone());
            self.caller.loaded = false;
        }
        let pool = &self.campaign.caller_ids;
        if !pool.numbers.is_empty() {
            let numbers: Vec<String> = pool.all().map(str::to_string).collect();
            match self.trunk.unowned_caller_ids(&numbers).await {
                Ok(Some(unowned)) if !unowned.is_empty() => {
                    return Err(super::super::EngineError::CallerId(format!(
                        "the trunk account does not own {} (an account may present only its own or verified numbers)",
                        unowned.join(", ")
                    )));
                }
                Ok(Some(_)) => {
                    info!(campaign = %self.campaign.id, numbers = numbers.len(), "Every caller ID of the pool is owned by the trunk account.")
                }
                Ok(None) => {}
                Err(e) => warn!(campaign = %self.campaign.id, error = %e,
                    "Could not check the pool's caller IDs with the trunk; dialing with them unchecked."),
            }
        }
        if self.caller.loaded || pool.numbers.is_empty() {
            return Ok(());
        }
        self.load_caller_history(now).await?;
        self.caller.loaded = true;
        Ok(())
    }

    async fn load_caller_history(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let since = now - self.caller.health.policy().window.max(TimeDelta::hours(24));
        let history = self.store.caller_id_history(&self.campaign.id, since).await?;
        for s in &history {
            self.caller.health.record_dial(&s.number, s.started_at);
            if let Some(end) = s.ended_at {
                self.caller.health.record_end(&s.number, end, s.answered_at);
            }
        }
        if let Some((stats, _)) = self.store.caller_id_health(&self.campaign.id).await? {
            for s in stats {
                if let Some(until) = s.rested_until.filter(|t| *t > now) {
                    self.caller.health.restore_rest(&s.number, until);
                }
            }
        }
        Ok(())
    }
}
