//! Live events for `GET /v1/events` (Server-Sent Events) and the status page: every call
//! transition, every change of a campaign's state, and each runner's pacing snapshot, sent on
//! a bounded broadcast channel. Sending never waits: a subscriber that falls behind loses the
//! oldest events and is told how many (`lagged`), and the runners never slow down for it.

use crate::core::ContactId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Events a slow subscriber may fall behind by before it loses the oldest.
pub const LIVE_BUFFER: usize = 4096;

/// One live event, serialised as JSON with a `type` field (`call`, `campaign`, `pacing`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A call changed state: `dialing`, `answered` (with the answer's action as `outcome`:
    /// `connected`, `abandoned`, `leaving_voicemail`, `machine_hangup`) or `ended` (with the
    /// attempt's outcome and the contact's disposition).
    Call {
        /// Campaign id.
        campaign: String,
        /// Contact id.
        contact: ContactId,
        /// Attempt number, from 1.
        attempt: u32,
        /// `dialing`, `answered` or `ended`.
        state: &'static str,
        /// What the transition says, when it says something (see above).
        outcome: Option<String>,
        /// The disposition, on `ended`.
        disposition: Option<String>,
        /// When (UTC).
        at: DateTime<Utc>,
    },
    /// A campaign's state changed: `started`, `paused`, `resumed`, `cancelled`, `finished`,
    /// `stopped`.
    Campaign {
        /// Campaign id.
        campaign: String,
        /// The new state.
        state: &'static str,
        /// Who changed it (`cli:<user>`, `api:<token>`), for an operator's change.
        by: Option<String>,
        /// When (UTC).
        at: DateTime<Utc>,
    },
    /// The runner's pacing snapshot (at most every 5 s while it dials).
    Pacing {
        /// Campaign id.
        campaign: String,
        /// Pacing mode.
        mode: String,
        /// (dialing + talking) / agent slots, at the snapshot.
        dial_ratio: f64,
        /// Calls in flight.
        in_flight: usize,
        /// Agent slots of the campaign.
        slots: u32,
        /// Estimated P(person answers), 0..1.
        p_human: f64,
        /// When (UTC).
        at: DateTime<Utc>,
    },
}

impl LiveEvent {
    /// The SSE `event:` name: the `type` field.
    pub fn kind(&self) -> &'static str {
        match self {
            LiveEvent::Call { .. } => "call",
            LiveEvent::Campaign { .. } => "campaign",
            LiveEvent::Pacing { .. } => "pacing",
        }
    }

    /// The campaign it is about.
    pub fn campaign(&self) -> &str {
        match self {
            LiveEvent::Call { campaign, .. }
            | LiveEvent::Campaign { campaign, .. }
            | LiveEvent::Pacing { campaign, .. } => campaign,
        }
    }
}

/// The sending side, cloned into every runner; [`LiveEvents::subscribe`] for each listener.
#[derive(Clone, Debug)]
pub struct LiveEvents {
    tx: broadcast::Sender<LiveEvent>,
    closed: Arc<watch::Sender<bool>>,
}

impl Default for LiveEvents {
    fn default() -> Self {
        LiveEvents::new()
    }
}

impl LiveEvents {
    /// A channel holding up to [`LIVE_BUFFER`] events per subscriber.
    pub fn new() -> LiveEvents {
        LiveEvents {
            tx: broadcast::channel(LIVE_BUFFER).0,
            closed: Arc::new(watch::channel(false).0),
        }
    }

    /// Ends every stream: the daemon is stopping (so open `GET /v1/events` connections close
    /// and the listener's graceful shutdown is not held by them).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Completes once [`LiveEvents::close`] was called.
    pub async fn closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Sends `event` to every subscriber; nothing happens when there is none.
    pub fn send(&self, event: LiveEvent) {
        let _ = self.tx.send(event);
    }

    /// A new subscriber, receiving the events sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_subscriber_loses_the_oldest_and_is_told() {
        let live = LiveEvents::new();
        let mut rx = live.subscribe();
        for i in 0..(LIVE_BUFFER as i64 + 10) {
            live.send(LiveEvent::Call {
                campaign: "c".into(),
                contact: i,
                attempt: 1,
                state: "dialing",
                outcome: None,
                disposition: None,
                at: Utc::now(),
            });
        }
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(10))));
        match rx.try_recv() {
            Ok(LiveEvent::Call { contact, .. }) => assert_eq!(contact, 10),
            other => panic!("{other:?}"),
        }
        let json = serde_json::to_value(LiveEvent::Campaign {
            campaign: "c".into(),
            state: "paused",
            by: Some("api:ops".into()),
            at: Utc::now(),
        })
        .unwrap();
        assert_eq!(
            (json["type"].as_str(), json["state"].as_str()),
            (Some("campaign"), Some("paused"))
        );
    }
}
