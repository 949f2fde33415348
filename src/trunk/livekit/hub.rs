//! Where a LiveKit call's events meet: the trunk's dial task reports the answer or the SIP failure
//! of `CreateSIPParticipant`, the listener reports verified webhooks (`participant_left` of the
//! callee, `room_finished`), and the hub turns both into the core's events on the campaign's
//! channel, once each and in order (one lock per campaign, held while sending). A webhook is
//! routed by its room name (`{room_prefix}{campaign}-{contact}-{attempt}`), so calls adopted after
//! a restart are ended too; rooms of the project that are not a campaign's are ignored. Webhooks
//! are deduplicated by event id for [`SEEN_MEMORY`] (LiveKit retries a webhook it could not deliver).

use super::calls::{CALLEE_IDENTITY, parse_room};
use crate::core::{AnswerKind, AttemptKey, CallEvent, EndReason};
use crate::trunk::TrunkEvent;
use chrono::{DateTime, TimeDelta, Utc};
use livekit_protocol::WebhookEvent;
use livekit_protocol::participant_info::Kind as ParticipantKind;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// How long a webhook's event id, and an ended call, are remembered to drop repeats.
pub const SEEN_MEMORY: TimeDelta = TimeDelta::hours(1);

/// Why an event was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// No running campaign has that id.
    #[error("no running campaign `{0}`")]
    UnknownCampaign(String),
    /// The campaign's runner has stopped.
    #[error("campaign `{0}` is stopping")]
    Stopped(String),
}

/// What a verified webhook did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// An event id already seen: nothing happened.
    Duplicate,
    /// Not about a running campaign's call, or an event dialerd does not act on.
    Ignored,
    /// Delivered to `campaign`'s call `key`, adding `events` core events (0 when the call had
    /// already ended or is still dialing).
    Delivered {
        /// Campaign id.
        campaign: String,
        /// The attempt.
        key: AttemptKey,
        /// Core events sent.
        events: usize,
    },
}

/// How a dial ended, as the trunk's dial task saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialResult {
    /// `CreateSIPParticipant` with `wait_until_answered` returned: the callee picked up.
    Answered,
    /// It failed with this reason (SIP status, ringing timeout, error).
    Ended(EndReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Dialing { left: bool },
    Answered,
    Ended,
}

#[derive(Debug)]
struct Track {
    phase: Phase,
}

#[derive(Debug, Default)]
struct Calls {
    by_room: HashMap<String, Track>,
    ended: VecDeque<(DateTime<Utc>, String)>,
}

impl Calls {
    fn forget_before(&mut self, cutoff: DateTime<Utc>) {
        while let Some((at, _)) = self.ended.front()
            && *at < cutoff
        {
            if let Some((_, room)) = self.ended.pop_front() {
                self.by_room.remove(&room);
            }
        }
    }

    /// Moves `room` to `phase` and returns the events that adds.
    fn advance(&mut self, room: &str, to: DialResult, at: DateTime<Utc>) -> Vec<CallEvent> {
        let track = self.by_room.entry(room.to_string()).or_insert(Track {
            phase: Phase::Dialing { left: false },
        });
        let (phase, events) = match (track.phase, to) {
            (Phase::Dialing { left: false }, DialResult::Answered) => {
                (Phase::Answered, vec![CallEvent::Answered(AnswerKind::Unknown)])
            }
            // The callee hung up before the answer reached dialerd: it was answered, then ended.
            (Phase::Dialing { left: true }, DialResult::Answered) => (
                Phase::Ended,
                vec![
                    CallEvent::Answered(AnswerKind::Unknown),
                    CallEvent::Ended(EndReason::Hangup),
                ],
            ),
            (Phase::Dialing { .. }, DialResult::Ended(r)) => (Phase::Ended, vec![CallEvent::Ended(r)]),
            (Phase::Answered, DialResult::Ended(r)) => (Phase::Ended, vec![CallEvent::Ended(r)]),
            (p, _) => (p, Vec::new()),
        };
        track.phase = phase;
        if phase == Phase::Ended && !events.is_empty() {
            self.ended.push_back((at, room.to_string()));
        }
        events
    }

    /// The callee left or the room finished.
    fn left(&mut self, room: &str, at: DateTime<Utc>) -> Vec<CallEvent> {
        match self.by_room.get_mut(room) {
            Some(t) if matches!(t.phase, Phase::Dialing { .. }) => {
                // The dial task's result says how: busy, declined, or answered then gone.
                t.phase = Phase::Dialing { left: true };
                Vec::new()
            }
            Some(_) => self.advance(room, DialResult::Ended(EndReason::Hangup), at),
            None => {
                // A call adopted after a restart: it was answered before.
                self.by_room.insert(room.to_string(), Track { phase: Phase::Answered });
                self.advance(room, DialResult::Ended(EndReason::Hangup), at)
            }
        }
    }
}

struct CampaignHub {
    generation: u64,
    prefix: String,
    events: mpsc::Sender<TrunkEvent>,
    calls: tokio::sync::Mutex<Calls>,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<(DateTime<Utc>, String)>,
}

/// Routes LiveKit call events to the campaigns' trunk channels.
#[derive(Default)]
pub struct LivekitHub {
    campaigns: Mutex<HashMap<String, Arc<CampaignHub>>>,
    seen: Mutex<Seen>,
    generations: std::sync::atomic::AtomicU64,
}

impl LivekitHub {
    /// A hub with no campaign.
    pub fn new() -> LivekitHub {
        LivekitHub::default()
    }

    /// Routes the events of `campaign`'s rooms (named with `room_prefix`) to `events`, replacing
    /// an earlier registration; returns its number for [`LivekitHub::unregister_generation`].
    pub fn register(&self, campaign: &str, room_prefix: &str, events: mpsc::Sender<TrunkEvent>) -> u64 {
        let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let hub = Arc::new(CampaignHub {
            generation,
            prefix: format!("{room_prefix}{campaign}-"),
            events,
            calls: tokio::sync::Mutex::new(Calls::default()),
        });
        if let Ok(mut c) = self.campaigns.lock() {
            c.insert(campaign.to_string(), hub);
        }
        generation
    }

    /// Stops routing `campaign` if `generation` is still its registration.
    pub fn unregister_generation(&self, campaign: &str, generation: u64) {
        if let Ok(mut c) = self.campaigns.lock()
            && c.get(campaign).is_some_and(|h| h.generation == generation)
        {
            c.remove(campaign);
        }
    }

    fn campaign(&self, id: &str) -> Result<Arc<CampaignHub>, HubError> {
        self.campaigns
            .lock()
            .ok()
            .and_then(|c| c.get(id).cloned())
            .ok_or_else(|| HubError::UnknownCampaign(id.to_string()))
    }

    /// The campaign whose rooms `room` belongs to (the longest matching prefix) and the attempt.
    fn owner(&self, room: &str) -> Option<(String, Arc<CampaignHub>, AttemptKey)> {
        let campaigns = self.campaigns.lock().ok()?;
        campaigns
            .iter()
            .filter_map(|(id, h)| parse_room(room, &h.prefix).map(|k| (id.clone(), Arc::clone(h), k)))
            .max_by_key(|(_, h, _)| h.prefix.len())
    }

    async fn send(
        hub: &CampaignHub,
        campaign: &str,
        room: &str,
        key: AttemptKey,
        at: DateTime<Utc>,
        events: &[CallEvent],
    ) -> Result<(), HubError> {
        for event in events {
            let ev = TrunkEvent {
                key,
                call_id: room.to_string(),
                at,
                event: *event,
                detail: None,
            };
            hub.events
                .send(ev)
                .await
                .map_err(|_| HubError::Stopped(campaign.to_string()))?;
        }
        Ok(())
    }

    /// Reports how `campaign`'s dial of `room` for `key` ended; returns the core events added.
    ///
    /// Errors: [`HubError`] when the campaign is not running.
    pub async fn dial_result(
        &self,
        campaign: &str,
        room: &str,
        key: AttemptKey,
        result: DialResult,
        at: DateTime<Utc>,
    ) -> Result<usize, HubError> {
        let hub = self.campaign(campaign)?;
        let mut calls = hub.calls.lock().await;
        calls.forget_before(at - SEEN_MEMORY);
        let events = calls.advance(room, result, at);
        Self::send(&hub, campaign, room, key, at, &events).await?;
        Ok(events.len())
    }

    /// Starts tracking `campaign`'s call in `room` (before its dial is sent).
    ///
    /// Errors: [`HubError::UnknownCampaign`].
    pub async fn dialing(&self, campaign: &str, room: &str) -> Result<(), HubError> {
        let hub = self.campaign(campaign)?;
        hub.calls.lock().await.by_room.insert(
            room.to_string(),
            Track {
                phase: Phase::Dialing { left: false },
            },
        );
        Ok(())
    }

    /// Forgets a call whose dial was refused (the runner closes that attempt itself).
    pub async fn forget(&self, campaign: &str, room: &str) {
        if let Ok(hub) = self.campaign(campaign) {
            hub.calls.lock().await.by_room.remove(room);
        }
    }

    /// Delivers a verified webhook received at `received`.
    ///
    /// Errors: [`HubError::Stopped`] when the room's campaign is stopping (the webhook is not
    /// marked seen, so LiveKit's retry is delivered).
    pub async fn webhook(&self, ev: &WebhookEvent, received: DateTime<Utc>) -> Result<WebhookOutcome, HubError> {
        if !ev.id.is_empty() {
            let mut seen = self
                .seen
                .lock()
                .map_err(|_| HubError::Stopped("webhook memory".into()))?;
            while let Some((at, _)) = seen.order.front()
                && *at < received - SEEN_MEMORY
            {
                if let Some((_, id)) = seen.order.pop_front() {
                    seen.ids.remove(&id);
                }
            }
            if !seen.ids.insert(ev.id.clone()) {
                return Ok(WebhookOutcome::Duplicate);
            }
            seen.order.push_back((received, ev.id.clone()));
        }
        let result = self.route(ev, received).await;
        if result.is_err()
            && let Ok(mut seen) = self.seen.lock()
        {
            seen.ids.remove(&ev.id);
        }
        result
    }

    async fn route(&self, ev: &WebhookEvent, received: DateTime<Utc>) -> Result<WebhookOutcome, HubError> {
        let Some(room) = ev.room.as_ref().map(|r| r.name.as_str()) else {
            return Ok(WebhookOutcome::Ignored);
        };
        let ends = match ev.event.as_str() {
            "room_finished" => true,
            "participant_left" => ev.participant.as_ref().is_some_and(|p| {
                p.identity == CALLEE_IDENTITY || (p.identity.is_empty() && p.kind == ParticipantKind::Sip as i32)
            }),
            _ => false,
        };
        let Some((campaign, hub, key)) = self.owner(room) else {
            return Ok(WebhookOutcome::Ignored);
        };
        if !ends {
            return Ok(WebhookOutcome::Ignored);
        }
        let at = DateTime::from_timestamp(ev.created_at, 0).unwrap_or(received);
        let mut calls = hub.calls.lock().await;
        calls.forget_before(received - SEEN_MEMORY);
        let events = calls.left(room, received);
        Self::send(&hub, &campaign, room, key, at, &events).await?;
        Ok(WebhookOutcome::Delivered {
            campaign,
            key,
            events: events.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_protocol::{ParticipantInfo, Room};

    fn webhook(id: &str, event: &str, room: &str, identity: Option<&str>) -> WebhookEvent {
        WebhookEvent {
            id: id.into(),
            event: event.into(),
            room: Some(Room {
                name: room.into(),
                ..Default::default()
            }),
            participant: identity.map(|i| ParticipantInfo {
                identity: i.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const K: AttemptKey = AttemptKey { contact: 7, attempt: 1 };

    #[tokio::test]
    async fn answer_then_webhooks_end_the_call_once() {
        let hub = LivekitHub::new();
        let (tx, mut rx) = mpsc::channel(16);
        hub.register("spring", "dialerd-", tx);
        let now = Utc::now();
        let room = "dialerd-spring-7-1";
        hub.dialing("spring", room).await.unwrap();
        assert_eq!(
            hub.dial_result("spring", room, K, DialResult::Answered, now)
                .await
                .unwrap(),
            1
        );
        // The agent leaving does not end the call; the callee leaving does, once.
        let agent = webhook("EV1", "participant_left", room, Some("agent-xyz"));
        assert_eq!(hub.webhook(&agent, now).await.unwrap(), WebhookOutcome::Ignored);
        let left = webhook("EV2", "participant_left", room, Some(CALLEE_IDENTITY));
        assert!(matches!(
            hub.webhook(&left, now).await.unwrap(),
            WebhookOutcome::Delivered { events: 1, .. }
        ));
        assert_eq!(hub.webhook(&left, now).await.unwrap(), WebhookOutcome::Duplicate);
        let finished = webhook("EV3", "room_finished", room, None);
        assert!(matches!(
            hub.webhook(&finished, now).await.unwrap(),
            WebhookOutcome::Delivered { events: 0, .. }
        ));
        // Other rooms of the project are not ours.
        let other = webhook("EV4", "room_finished", "support-42", None);
        assert_eq!(hub.webhook(&other, now).await.unwrap(), WebhookOutcome::Ignored);
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).map(|e| e.event).collect();
        assert_eq!(
            got,
            [
                CallEvent::Answered(AnswerKind::Unknown),
                CallEvent::Ended(EndReason::Hangup)
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_dial_wins_over_the_webhook_and_adopted_calls_end() {
        let hub = LivekitHub::new();
        let (tx, mut rx) = mpsc::channel(16);
        hub.register("spring", "dialerd-", tx);
        let now = Utc::now();
        let room = "dialerd-spring-7-1";
        hub.dialing("spring", room).await.unwrap();
        let left = webhook("EV1", "participant_left", room, Some(CALLEE_IDENTITY));
        assert!(matches!(
            hub.webhook(&left, now).await.unwrap(),
            WebhookOutcome::Delivered { events: 0, .. }
        ));
        hub.dial_result("spring", room, K, DialResult::Ended(EndReason::Busy), now)
            .await
            .unwrap();
        // A call the trunk never placed in this run (adopted after a restart) ends on its webhook.
        let adopted = webhook("EV2", "room_finished", "dialerd-spring-9-2", None);
        assert!(matches!(
            hub.webhook(&adopted, now).await.unwrap(),
            WebhookOutcome::Delivered { events: 1, .. }
        ));
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| (e.key.contact, e.event))
            .collect();
        assert_eq!(
            got,
            [
                (7, CallEvent::Ended(EndReason::Busy)),
                (9, CallEvent::Ended(EndReason::Hangup))
            ]
        );
    }

    #[tokio::test]
    async fn a_stopped_campaign_is_an_error_and_the_retry_is_not_a_duplicate() {
        let hub = LivekitHub::new();
        let (tx, rx) = mpsc::channel(16);
        hub.register("spring", "dialerd-", tx);
        drop(rx);
        let ev = webhook("EV1", "room_finished", "dialerd-spring-7-1", None);
        assert!(matches!(hub.webhook(&ev, Utc::now()).await, Err(HubError::Stopped(_))));
        assert!(!matches!(
            hub.webhook(&ev, Utc::now()).await,
            Ok(WebhookOutcome::Duplicate)
        ));
    }
}
