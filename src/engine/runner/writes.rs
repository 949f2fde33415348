//! The runner's write-behind of call events: ends, answers and queued events are collected while
//! a burst of trunk events is handled, then written in their order in one transaction (the answer
//! actions themselves went to the trunk at once, before anything is written). The "Call ended."
//! line is logged once its write is durable.

use super::Runner;
use crate::core::{AttemptKey, Outcome};
use crate::store::CallWrite;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tracing::{error, info, warn};

impl Runner {
    pub(super) async fn finish(
        &mut self,
        key: AttemptKey,
        outcome: Outcome,
        step: crate::core::NextStep,
        now: DateTime<Utc>,
    ) {
        self.finish_with(key, outcome, step, now, None).await;
    }

    /// Queues the attempt's close and, for the same transaction, its call record and its first
    /// outbox jobs (message events, the analyze job, `contact.exhausted`).
    pub(super) async fn finish_with(
        &mut self,
        key: AttemptKey,
        outcome: Outcome,
        step: crate::core::NextStep,
        now: DateTime<Utc>,
        detail: Option<crate::call::CallDetail>,
    ) {
        use crate::analysis::events;
        let caller_number = self.caller_ended(key, now);
        let id = &self.campaign.id;
        let cfg = &self.campaign.analysis;
        let post = crate::store::PostCall {
            agent_id: self.campaign.agent_id.clone(),
            call_jobs: events::at_call_end(cfg, id, &caller_number, key, detail.as_ref(), now),
            caller_number,
            detail,
            jobs: (step.disposition == crate::core::Disposition::Exhausted)
                .then(|| events::contact_exhausted(cfg, id, key, now))
                .flatten()
                .into_iter()
                .collect(),
        };
        self.writes.push(CallWrite::Close {
            key,
            outcome,
            step,
            ended_at: now,
            post: Some(Box::new(post)),
        });
    }

    /// Writes what the events handled since the last flush produced, in one transaction (tried
    /// twice), then logs each call's end and queues `campaign.completed` when nothing is left.
    pub(super) async fn flush_writes(&mut self) {
        if self.writes.is_empty() {
            return;
        }
        let writes = std::mem::take(&mut self.writes);
        let mut result = self.store.apply_call_writes(&writes).await;
        if result.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            result = self.store.apply_call_writes(&writes).await;
        }
        let id = &self.campaign.id;
        let mut closed = false;
        for w in &writes {
            match (w, &result) {
                (CallWrite::Close { key, outcome, step, .. }, Ok(_)) => {
                    closed = true;
                    crate::telemetry::outcome(id, outcome.as_str());
                    info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = %outcome,
                        disposition = %step.disposition,
                        next_attempt_at = %step.next_attempt_at.map_or_else(|| "-".to_string(), |t| t.to_rfc3339()),
                        "Call ended.");
                    self.live_call(
                        *key,
                        "ended",
                        Some(outcome.to_string()),
                        Some(step.disposition.to_string()),
                    );
                }
                (CallWrite::Close { key, outcome, .. }, Err(e)) => {
                    error!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = %outcome, error = %e,
                        "Could not record the end of the call; it is reconciled at next start.");
                }
                (CallWrite::Answered(key, _), Err(e)) => {
                    error!(campaign = %id, contact = key.contact, attempt = key.attempt, error = %e, "Could not record the answer.");
                }
                (CallWrite::Jobs(..), Err(e)) => {
                    warn!(campaign = %id, error = %e, "Could not queue call events.");
                }
                _ => {}
            }
        }
        let cfg = &self.campaign.analysis;
        let now = Utc::now();
        if closed
            && cfg.webhooks.wants("campaign.completed")
            && let Ok(false) = self
                .store
                .has_remaining_contacts(id, self.campaign.rules.policy.retry.max_attempts)
                .await
            && let Some(job) =
                crate::analysis::events::campaign_event(cfg, id, &self.campaign.name, "campaign.completed", now)
            && let Err(e) = self.store.enqueue_jobs(&[job], now).await
        {
            warn!(campaign = %id, error = %e, "Could not queue campaign.completed.");
        }
    }
}
