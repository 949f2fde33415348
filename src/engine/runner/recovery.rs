//! Start-up recovery of the attempts an earlier run left open: each is asked of the trunk
//! ([`Trunk::recover`]). A call still live is adopted by the core and followed to its end (its
//! answer and AMD verdict replayed through the core, so a machine still gets its voicemail
//! message); a call that ended meanwhile is closed with its real outcome through the same core
//! path; a call the trunk proves it never created goes back without counting an attempt; only
//! what the trunk cannot tell is closed `unknown`.
//!
//! [`Trunk::recover`]: crate::trunk::Trunk::recover

use super::Runner;
use crate::core::{AnswerKind, AttemptKey, Call, CallEvent, Decision, EndReason, Outcome, VoicemailAction};
use crate::store::{CallWrite, OpenAttempt};
use crate::trunk::{OpenCall, Recovered};
use chrono::{DateTime, Utc};
use tracing::{info, warn};

impl Runner {
    /// Reconciles one attempt left open by an earlier run, at `now`.
    pub(super) async fn recover(
        &mut self,
        open: OpenAttempt,
        now: DateTime<Utc>,
    ) -> Result<(), super::super::EngineError> {
        let render = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| crate::campaign::template::render(t, &open.fields).ok())
        };
        let call = OpenCall {
            campaign: self.campaign.id.clone(),
            key: open.key,
            call_id: open.call_id.clone(),
            to: open.phone_e164.clone(),
            claimed_at: open.started_at,
            voicemail_message: render(&self.campaign.voicemail_message),
            safe_harbor_message: render(&self.campaign.safe_harbor_message),
        };
        let key = open.key;
        let id = self.campaign.id.clone();
        // The number the call presented, for its call record (attempts from before caller-ID
        // pools presented the default).
        let caller = open
            .caller_id
            .clone()
            .unwrap_or_else(|| self.campaign.caller_id.clone());
        self.caller.adopt(key.contact, caller);
        match self.trunk.recover(&call).await {
            Recovered::Live { call_id, answered, amd } => {
                if open.call_id.is_none() {
                    self.store.record_dialed_many(&[(key, call_id.clone())]).await?;
                }
                info!(campaign = %id, contact = key.contact, attempt = key.attempt, call_id = %call_id, answered,
                    "Call still live after restart; followed to its end.");
                self.call_ids.insert(key.contact, call_id.clone());
                self.phones.insert(key.contact, open.phone_e164.clone());
                self.dialer.adopt(key, Call::new(key.attempt, open.started_at));
                if answered {
                    self.writes.push(CallWrite::Answered(key, now));
                    let replay = self.replay(key, amd, open.voicemail_sent, now);
                    for d in replay {
                        self.execute(d, &call_id, now).await;
                    }
                }
            }
            Recovered::Ended {
                call_id,
                reason,
                answered,
                amd,
            } => {
                if let (None, Some(sid)) = (&open.call_id, &call_id) {
                    self.store.record_dialed_many(&[(key, sid.clone())]).await?;
                }
                self.dialer.adopt(key, Call::new(key.attempt, open.started_at));
                let mut reason = reason;
                if answered {
                    self.writes.push(CallWrite::Answered(key, open.started_at));
                    // Actions for a call already over are not carried out.
                    let _ = self.replay(key, amd, open.voicemail_sent, now);
                    // A machine that never got its message was cut short: the core's outcome is
                    // then `machine`, not `voicemail_left`.
                    let wanted_message = self.campaign.rules.policy.voicemail == VoicemailAction::LeaveMessage;
                    if amd == Some(AnswerKind::Machine) && wanted_message && !open.voicemail_sent {
                        reason = EndReason::Failed;
                    }
                }
                for d in self.dialer.on_event(now, key, CallEvent::Ended(reason)) {
                    if let Decision::Finish { key, outcome, step } = d {
                        info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = %outcome,
                            "Call ended while the daemon was down; closed with its real outcome.");
                        self.finish(key, outcome, step, now).await;
                    }
                }
            }
            Recovered::NeverPlaced => {
                self.caller.forget(key.contact);
                self.dialer.cancel(key);
                self.store.release_claim(key, now, now).await?;
                info!(campaign = %id, contact = key.contact, attempt = key.attempt, outcome = "not_placed",
                    "The trunk never created this call; the claim is undone and not counted.");
            }
            Recovered::Unknown => {
                self.caller.forget(key.contact);
                self.close_unknown(key, now).await?
            }
        }
        Ok(())
    }

    /// Replays an answered call's answer and AMD verdict through the core; returns the actions
    /// still to carry out (none for a voicemail message already sent).
    fn replay(
        &mut self,
        key: AttemptKey,
        amd: Option<AnswerKind>,
        voicemail_sent: bool,
        now: DateTime<Utc>,
    ) -> Vec<Decision> {
        let mut out = self.dialer.on_event(now, key, CallEvent::Answered(AnswerKind::Unknown));
        let verdict = if voicemail_sent { Some(AnswerKind::Machine) } else { amd };
        if let Some(kind) = verdict {
            let actions = self.dialer.on_event(now, key, CallEvent::AmdVerdict(kind));
            if !voicemail_sent {
                out.extend(actions);
            }
        }
        out
    }

    async fn close_unknown(&mut self, key: AttemptKey, now: DateTime<Utc>) -> Result<(), super::super::EngineError> {
        let step = self
            .campaign
            .rules
            .policy
            .after_attempt(Outcome::Unknown, key.attempt, now);
        self.store.close_attempt(key, Outcome::Unknown, step, now).await?;
        warn!(campaign = %self.id(), contact = key.contact, attempt = key.attempt, outcome = "unknown",
            disposition = %step.disposition, "Attempt left open by an earlier run closed as unknown.");
        Ok(())
    }
}
