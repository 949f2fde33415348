//! Where verified Twilio callbacks go: the hub routes each one to its campaign by the
//! callback URL's `campaign`, keeps one [`CallTrack`] per `CallSid`, and sends the core events
//! a callback adds on that campaign's trunk channel, in order (one lock per campaign, held
//! while sending, so two callbacks of one campaign never overtake each other). Ended calls are
//! remembered for [`ENDED_MEMORY`], so a late duplicate cannot start a new track.

use super::callbacks::{AmdCallback, AmdVerdict, CallTrack, CallbackTarget, StatusCallback};
use crate::core::AttemptKey;
use crate::trunk::TrunkEvent;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// How long an ended call's track is kept to drop its late callbacks (Twilio retries a
/// callback for minutes at most).
pub const ENDED_MEMORY: TimeDelta = TimeDelta::hours(1);

/// Why a callback was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// No running campaign has that id.
    #[error("no running campaign `{0}`")]
    UnknownCampaign(String),
    /// The campaign's runner has stopped.
    #[error("campaign `{0}` is stopping")]
    Stopped(String),
}

/// One call as the hub knows it.
#[derive(Debug)]
struct HubCall {
    key: AttemptKey,
    track: CallTrack,
    amd: Option<AmdVerdict>,
}

/// One campaign's calls.
#[derive(Debug, Default)]
struct Calls {
    by_sid: HashMap<String, HubCall>,
    ended: VecDeque<(DateTime<Utc>, String)>,
}

impl Calls {
    fn entry(&mut self, sid: &str, key: AttemptKey) -> &mut HubCall {
        self.by_sid.entry(sid.to_string()).or_insert_with(|| HubCall {
            key,
            track: CallTrack::new(),
            amd: None,
        })
    }

    fn forget_before(&mut self, cutoff: DateTime<Utc>) {
        while let Some((at, _)) = self.ended.front()
            && *at < cutoff
        {
            if let Some((_, sid)) = self.ended.pop_front() {
                self.by_sid.remove(&sid);
            }
        }
    }
}

struct CampaignHub {
    generation: u64,
    events: mpsc::Sender<TrunkEvent>,
    calls: tokio::sync::Mutex<Calls>,
}

/// Routes verified callbacks to the campaigns' Twilio trunks, and counts the account's calls in
/// progress (placed or followed, final callback not yet seen) for its concurrency limit.
#[derive(Default)]
pub struct TwilioHub {
    campaigns: Mutex<HashMap<String, Arc<CampaignHub>>>,
    generations: std::sync::atomic::AtomicU64,
    live: Mutex<HashMap<String, std::time::Instant>>,
}

impl TwilioHub {
    /// A hub with no campaign.
    pub fn new() -> TwilioHub {
        TwilioHub::default()
    }

    /// Routes `campaign`'s callbacks to `events` (replacing an earlier registration); returns
    /// the registration's number for [`TwilioHub::unregister_generation`].
    pub fn register(&self, campaign: &str, events: mpsc::Sender<TrunkEvent>) -> u64 {
        let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let calls = tokio::sync::Mutex::new(Calls::default());
        let hub = Arc::new(CampaignHub {
            generation,
            events,
            calls,
        });
        if let Ok(mut c) = self.campaigns.lock() {
            c.insert(campaign.to_string(), hub);
        }
        generation
    }

    /// Stops routing `campaign`'s callbacks if `generation` is still its registration, so an
    /// old trunk never unregisters a reloaded campaign's new one.
    pub fn unregister_generation(&self, campaign: &str, generation: u64) {
        if let Ok(mut c) = self.campaigns.lock()
            && c.get(campaign).is_some_and(|h| h.generation == generation)
        {
            c.remove(campaign);
        }
    }

    /// Stops routing `campaign`'s callbacks, whoever registered them.
    pub fn unregister(&self, campaign: &str) {
        if let Ok(mut c) = self.campaigns.lock() {
            c.remove(campaign);
        }
    }

    /// Counts call `sid` as in progress on the account until its final callback (or, if that
    /// never comes, for `CALL_MEMORY`: Twilio ends every call within its `TimeLimit`).
    pub fn placed(&self, sid: &str) {
        if let Ok(mut live) = self.live.lock() {
            let now = std::time::Instant::now();
            live.retain(|_, at| now.duration_since(*at) < super::trunk::CALL_MEMORY);
            live.insert(sid.to_string(), now);
        }
    }

    /// Calls in progress on the account.
    pub fn live_calls(&self) -> usize {
        self.live.lock().map_or(0, |l| l.len())
    }

    fn ended(&self, sid: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(sid);
        }
    }

    fn campaign(&self, id: &str) -> Result<Arc<CampaignHub>, HubError> {
        self.campaigns
            .lock()
            .ok()
            .and_then(|c| c.get(id).cloned())
            .ok_or_else(|| HubError::UnknownCampaign(id.to_string()))
    }

    /// Delivers a status callback received at `received`; returns how many core events it added
    /// (0 for a duplicate, a late callback, or one after the end).
    ///
    /// Errors: [`HubError`] when the campaign is not running.
    pub async fn status(
        &self,
        target: &CallbackTarget,
        cb: &StatusCallback,
        received: DateTime<Utc>,
    ) -> Result<usize, HubError> {
        let hub = self.campaign(&target.campaign)?;
        let mut calls = hub.calls.lock().await;
        calls.forget_before(received - ENDED_MEMORY);
        let call = calls.entry(&cb.call_sid, target.key());
        let key = call.key;
        let was_ended = call.track.is_ended();
        let events = call
            .track
            .apply(cb.call_status, cb.sequence_number, cb.sip_response_code);
        if !was_ended && call.track.is_ended() {
            calls.ended.push_back((received, cb.call_sid.clone()));
            self.ended(&cb.call_sid);
        }
        let n = events.len();
        send_all(&hub, &target.campaign, key, &cb.call_sid, cb.at(received), events).await?;
        Ok(n)
    }

    /// Records an AMD verdict received at `received` and sends the core its `AmdVerdict` (after
    /// the answer it implies, if that callback is still on its way); returns the verdict when
    /// it is the call's first (a repeat, or one after the call ended, returns `None` and sends
    /// nothing more).
    ///
    /// Errors: [`HubError`] when the campaign is not running.
    pub async fn amd(
        &self,
        target: &CallbackTarget,
        cb: &AmdCallback,
        received: DateTime<Utc>,
    ) -> Result<Option<AmdVerdict>, HubError> {
        let hub = self.campaign(&target.campaign)?;
        let mut calls = hub.calls.lock().await;
        let call = calls.entry(&cb.call_sid, target.key());
        if call.amd.is_some() {
            return Ok(None);
        }
        call.amd = Some(cb.answered_by);
        let key = call.key;
        let events = call.track.verdict(cb.answered_by.answer_kind());
        let first = (!events.is_empty()).then_some(cb.answered_by);
        send_all(&hub, &target.campaign, key, &cb.call_sid, received, events).await?;
        Ok(first)
    }

    /// Starts following a call placed before a restart (found at Twilio still live): its
    /// callbacks from now on are routed to `campaign` as if it had been placed by this run,
    /// with the status it had when it was looked up (`answered` when it was in progress).
    ///
    /// Errors: [`HubError::UnknownCampaign`] when the campaign is not registered.
    pub async fn follow(
        &self,
        campaign: &str,
        sid: &str,
        key: AttemptKey,
        answered: bool,
        verdict: Option<AmdVerdict>,
    ) -> Result<(), HubError> {
        let hub = self.campaign(campaign)?;
        self.placed(sid);
        let mut calls = hub.calls.lock().await;
        let call = calls.entry(sid, key);
        call.key = key;
        if answered {
            let _ = call.track.apply(super::CallStatus::InProgress, None, None);
        }
        if let Some(v) = verdict {
            call.amd = Some(v);
            let _ = call.track.verdict(v.answer_kind());
        }
        Ok(())
    }

    /// Records that `call_sid`'s voicemail message was replaced by a hang-up (see
    /// [`CallTrack::message_refused`]).
    pub async fn message_refused(&self, campaign: &str, call_sid: &str) {
        if let Ok(hub) = self.campaign(campaign) {
            let mut calls = hub.calls.lock().await;
            if let Some(c) = calls.by_sid.get_mut(call_sid) {
                c.track.message_refused();
            }
        }
    }

    /// The AMD verdict of `call_sid` in `campaign`, once it has arrived.
    pub async fn amd_verdict(&self, campaign: &str, call_sid: &str) -> Option<AmdVerdict> {
        let hub = self.campaign(campaign).ok()?;
        let calls = hub.calls.lock().await;
        calls.by_sid.get(call_sid).and_then(|c| c.amd)
    }
}

/// Sends `events` of call `sid` on the campaign's channel, in order (the caller holds the
/// campaign's call lock, so no other callback's events come between them).
async fn send_all(
    hub: &CampaignHub,
    campaign: &str,
    key: AttemptKey,
    sid: &str,
    at: DateTime<Utc>,
    events: Vec<crate::core::CallEvent>,
) -> Result<(), HubError> {
    for event in events {
        let ev = TrunkEvent {
            key,
            call_id: sid.to_string(),
            at,
            event,
            detail: None,
        };
        hub.events
            .send(ev)
            .await
            .map_err(|_| HubError::Stopped(campaign.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{AnswerKind, CallEvent, EndReason};
    use crate::trunk::twilio::CallStatus;

    fn target(contact: i64) -> CallbackTarget {
        CallbackTarget {
            campaign: "spring".into(),
            contact,
            attempt: 1,
        }
    }

    fn status(sid: &str, s: CallStatus, seq: u32) -> StatusCallback {
        StatusCallback {
            call_sid: sid.into(),
            call_status: s,
            sequence_number: Some(seq),
            sip_response_code: None,
            answered_by: None,
            call_duration: None,
            duration: None,
            timestamp: None,
        }
    }

    #[tokio::test]
    async fn callbacks_reach_their_campaign_in_one_forward_path() {
        let hub = TwilioHub::new();
        let (tx, mut rx) = mpsc::channel(16);
        hub.register("spring", tx);
        let now = Utc::now();
        let t = target(7);
        assert_eq!(
            hub.status(&t, &status("CA1", CallStatus::InProgress, 2), now)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            hub.status(&t, &status("CA1", CallStatus::InProgress, 2), now)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            hub.status(&t, &status("CA1", CallStatus::Ringing, 1), now)
                .await
                .unwrap(),
            0
        );
        // A second call of another contact has its own track.
        assert_eq!(
            hub.status(&target(8), &status("CA2", CallStatus::Busy, 1), now)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            hub.status(&t, &status("CA1", CallStatus::Completed, 3), now)
                .await
                .unwrap(),
            1
        );
        let mut got = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            got.push((ev.key.contact, ev.call_id, ev.event));
        }
        assert_eq!(
            got,
            vec![
                (7, "CA1".to_string(), CallEvent::Ringing),
                (7, "CA1".to_string(), CallEvent::Answered(AnswerKind::Unknown)),
                (8, "CA2".to_string(), CallEvent::Ended(EndReason::Busy)),
                (7, "CA1".to_string(), CallEvent::Ended(EndReason::Hangup)),
            ]
        );
    }

    #[tokio::test]
    async fn ended_calls_are_remembered_then_forgotten() {
        let hub = TwilioHub::new();
        let (tx, mut rx) = mpsc::channel(16);
        hub.register("spring", tx);
        let t0 = Utc::now();
        hub.status(&target(7), &status("CA1", CallStatus::NoAnswer, 2), t0)
            .await
            .unwrap();
        // A late duplicate within the memory adds nothing.
        let late = t0 + ENDED_MEMORY - TimeDelta::seconds(1);
        assert_eq!(
            hub.status(&target(7), &status("CA1", CallStatus::Ringing, 1), late)
                .await
                .unwrap(),
            0
        );
        // Past the memory the track is gone (the runner drops events of attempts it no longer holds).
        let much_later = t0 + ENDED_MEMORY + TimeDelta::seconds(1);
        hub.status(&target(9), &status("CA9", CallStatus::Ringing, 1), much_later)
            .await
            .unwrap();
        let calls = hub.campaign("spring").unwrap();
        assert!(!calls.calls.lock().await.by_sid.contains_key("CA1"));
        assert_eq!(rx.try_recv().unwrap().event, CallEvent::Ended(EndReason::NoAnswer));
    }

    #[tokio::test]
    async fn unknown_or_stopped_campaigns_are_errors_and_amd_counts_once() {
        let hub = TwilioHub::new();
        let now = Utc::now();
        let e = hub
            .status(&target(7), &status("CA1", CallStatus::Ringing, 1), now)
            .await
            .unwrap_err();
        assert!(matches!(e, HubError::UnknownCampaign(_)));
        let (tx, mut rx) = mpsc::channel(16);
        hub.register("spring", tx);
        let amd = AmdCallback {
            call_sid: "CA1".into(),
            answered_by: AmdVerdict::MachineEndBeep,
            machine_detection_duration: None,
        };
        assert_eq!(
            hub.amd(&target(7), &amd, now).await.unwrap(),
            Some(AmdVerdict::MachineEndBeep)
        );
        assert_eq!(hub.amd(&target(7), &amd, now).await.unwrap(), None);
        assert_eq!(hub.amd_verdict("spring", "CA1").await, Some(AmdVerdict::MachineEndBeep));
        // The verdict implied the answer: the core heard ringing, the answer, then the verdict.
        let mut heard = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            heard.push(ev.event);
        }
        assert_eq!(
            heard,
            [
                CallEvent::Ringing,
                CallEvent::Answered(AnswerKind::Unknown),
                CallEvent::AmdVerdict(AnswerKind::Machine)
            ]
        );
        // A late `in-progress` adds nothing.
        assert_eq!(
            hub.status(&target(7), &status("CA1", CallStatus::InProgress, 2), now)
                .await
                .unwrap(),
            0
        );
        drop(rx);
        let e = hub
            .status(&target(8), &status("CA2", CallStatus::Ringing, 1), now)
            .await
            .unwrap_err();
        assert!(matches!(e, HubError::Stopped(_)));
        hub.unregister("spring");
        assert_eq!(hub.amd_verdict("spring", "CA1").await, None);
    }
}
