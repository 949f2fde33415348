//! The daemon's side of campaign leases: every tick it beats for this node, renews the leases it
//! holds, stops a runner at once when its lease is lost, and takes or hands back campaigns as
//! [`crate::core::lease::plan`] says. A runner starts only after its lease is taken, with the
//! store fenced on that lease's token, and stops placing calls by itself once the lease's local
//! deadline passes without a renewal (a node paused or cut off from the database).

use super::{Daemon, Running};
use crate::campaign::Campaign;
use crate::campaign::watch::Fingerprint;
use crate::core::lease::{LeaseView, plan};
use crate::store::{Fence, Lease};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// This node, as the other nodes sharing the database see it.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The node id (`node_id` in the settings; the host name by default).
    pub id: String,
    /// The host name, shown by `dialerd status`.
    pub host: String,
    /// How long a lease lasts unless renewed; renewed every third of it.
    pub lease_ttl: Duration,
    /// When this process started (UTC).
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl NodeOptions {
    /// Node `id` with leases of `lease_ttl` (at least 1 s), started now.
    pub fn new(id: String, lease_ttl: Duration) -> NodeOptions {
        NodeOptions {
            id,
            host: crate::settings::host_name(),
            lease_ttl: lease_ttl.max(Duration::from_secs(1)),
            started_at: chrono::Utc::now(),
        }
    }

    /// How often the daemon checks its leases: every second, or a third of the lease if shorter,
    /// so a lease that a dead node leaves is taken within about a second of its expiry.
    pub fn tick(&self) -> Duration {
        (self.lease_ttl / 3).min(Duration::from_secs(1))
    }

    /// The local deadline a renewal sent at `sent` buys: four fifths of the lease, so the runner
    /// stops placing calls before the database could consider the lease expired.
    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.lease_ttl * 4 / 5
    }
}

/// The local deadline of a runner's lease, shared between the daemon (which extends it on every
/// renewal) and the runner (which places no call after it). Monotonic, so a node paused with
/// SIGSTOP finds its deadline passed when it resumes.
#[derive(Clone, Debug)]
pub(crate) struct LeaseClock(Arc<Mutex<Instant>>);

impl LeaseClock {
    fn new(deadline: Instant) -> LeaseClock {
        LeaseClock(Arc::new(Mutex::new(deadline)))
    }

    fn extend(&self, deadline: Instant) {
        let mut d = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *d = (*d).max(deadline);
    }

    /// Whether the lease may still be written under, by this node's clock.
    pub(crate) fn valid(&self) -> bool {
        Instant::now() < *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One lease this node holds.
pub(super) struct Held {
    lease: Lease,
    clock: LeaseClock,
    renewed: Instant,
    /// Being handed back: the runner was asked to stop; the lease goes once it has.
    draining: bool,
}

/// A valid campaign this node could run once it holds the lease.
pub(super) struct Waiting {
    campaign: Campaign,
    pub(super) fingerprint: Fingerprint,
    contacts: (PathBuf, Fingerprint),
}

/// The daemon's lease state.
#[derive(Default)]
pub(super) struct Leases {
    pub(super) held: HashMap<String, Held>,
    pub(super) waiting: HashMap<String, Waiting>,
}

impl Leases {
    /// Queues a valid campaign until its lease is taken.
    pub(super) fn wait(&mut self, campaign: Campaign, fingerprint: Fingerprint, contacts: (PathBuf, Fingerprint)) {
        self.waiting.insert(
            campaign.id.clone(),
            Waiting {
                campaign,
                fingerprint,
                contacts,
            },
        );
    }
}

impl Daemon {
    /// One round of the lease protocol: heartbeat, renewals, losses, hand-backs, acquisitions.
    /// Store errors are logged and retried at the next tick; a runner whose lease cannot be
    /// renewed stops dialing by itself at its local deadline.
    pub(super) async fn lease_tick(&mut self) {
        let node = self.opts.node.clone();
        if let Err(e) = self
            .store
            .node_heartbeat(&node.id, &node.host, std::process::id(), node.started_at)
            .await
        {
            warn!(node = %node.id, error = %e, "Node heartbeat not written; retrying.");
        }
        self.renew_leases(&node).await;
        self.finish_hand_backs(&node).await;
        self.plan_leases(&node).await;
    }

    async fn renew_leases(&mut self, node: &NodeOptions) {
        let mut lost = Vec::new();
        for (id, held) in self.leases.held.iter_mut() {
            if held.renewed.elapsed() < node.lease_ttl / 3 {
                continue;
            }
            let sent = Instant::now();
            match self.store.renew_lease(&held.lease, &node.id, node.lease_ttl).await {
                Ok(Some(expires_at)) => {
                    held.lease.expires_at = expires_at;
                    held.renewed = sent;
                    held.clock.extend(node.deadline(sent));
                }
                Ok(None) => lost.push(id.clone()),
                Err(e) => {
                    warn!(campaign = %id, node = %node.id, error = %e,
                        "Lease not renewed; the campaign stops dialing at its deadline unless a renewal succeeds.")
                }
            }
        }
        for id in lost {
            self.lose_lease(&id);
        }
    }

    /// Stops `id`'s runner at once, without hanging up or writing anything: another node holds
    /// the lease now and reconciles the calls this one left.
    fn lose_lease(&mut self, id: &str) {
        let Some(held) = self.leases.held.remove(id) else {
            return;
        };
        self.store.set_fence(id, None);
        if let Some(r) = self.running.remove(id) {
            r.join.abort();
        }
        self.beats.remove(&format!("campaign {id}"));
        error!(campaign = %id, token = held.lease.token, node = %self.opts.node.id,
            "Campaign lease lost (taken over by another node, or expired); stopped dialing it at once. Its calls are now the new owner's.");
    }

    /// Releases the leases of runners that were handed back and have now stopped.
    async fn finish_hand_backs(&mut self, node: &NodeOptions) {
        let done: Vec<String> = self
            .leases
            .held
            .iter()
            .filter(|(id, h)| h.draining && self.running.get(*id).is_none_or(|r| r.join.is_finished()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            if let Some(r) = self.running.remove(&id) {
                let _ = r.join.await;
            }
            self.beats.remove(&format!("campaign {id}"));
            if let Some(held) = self.leases.held.remove(&id) {
                self.store.set_fence(&id, None);
                match self.store.release_lease(&held.lease, &node.id).await {
                    Ok(_) => {
                        info!(campaign = %id, token = held.lease.token, node = %node.id, "Campaign handed back to share the work with another node.")
                    }
                    Err(e) => {
                        warn!(campaign = %id, error = %e, "Lease not released; it expires by itself.")
                    }
                }
            }
        }
    }

    async fn plan_leases(&mut self, node: &NodeOptions) {
        let live = match self.store.live_nodes(node.lease_ttl).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "Cannot read the live nodes; retrying.");
                return;
            }
        };
        let rows = match self.store.leases().await {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "Cannot read the campaign leases; retrying.");
                return;
            }
        };
        let others: HashMap<&str, bool> = rows
            .iter()
            .map(|r| {
                (
                    r.campaign.as_str(),
                    r.live && r.owner.as_deref() != Some(node.id.as_str()),
                )
            })
            .collect();
        let mut views: Vec<(String, LeaseView)> = Vec::new();
        for (id, h) in &self.leases.held {
            if !h.draining {
                views.push((id.clone(), LeaseView::Mine));
            }
        }
        for id in self.leases.waiting.keys() {
            let theirs = others.get(id.as_str()).copied().unwrap_or(false);
            views.push((id.clone(), if theirs { LeaseView::Theirs } else { LeaseView::Free }));
        }
        views.sort();
        let decided = plan(&views, live);
        for id in decided.release {
            if let (Some(h), Some(r)) = (self.leases.held.get_mut(&id), self.running.get(&id)) {
                h.draining = true;
                let _ = r.control.send(super::Control::Shutdown).await;
            }
        }
        for id in decided.acquire {
            let sent = Instant::now();
            match self.store.acquire_lease(&id, &node.id, node.lease_ttl).await {
                Ok(Some(lease)) => {
                    let Some(w) = self.leases.waiting.remove(&id) else {
                        continue;
                    };
                    info!(campaign = %id, token = lease.token, node = %node.id, "Campaign lease taken; reconciling its open attempts, then dialing.");
                    self.store.set_fence(
                        &id,
                        Some(Fence {
                            node: node.id.clone(),
                            token: lease.token,
                        }),
                    );
                    let clock = LeaseClock::new(node.deadline(sent));
                    self.leases.held.insert(
                        id.clone(),
                        Held {
                            lease,
                            clock: clock.clone(),
                            renewed: sent,
                            draining: false,
                        },
                    );
                    self.start(w.campaign, w.fingerprint, w.contacts, Some(clock));
                    if !self.running.contains_key(&id) {
                        // Refused at start (its trunk could not be built): give the lease back.
                        self.give_back(&id).await;
                    }
                }
                Ok(None) => {}
                Err(e) => warn!(campaign = %id, error = %e, "Cannot take the campaign lease; retrying."),
            }
        }
    }

    /// Releases `id`'s lease now, without a runner to stop.
    async fn give_back(&mut self, id: &str) {
        if let Some(held) = self.leases.held.remove(id) {
            self.store.set_fence(id, None);
            if let Err(e) = self.store.release_lease(&held.lease, &self.opts.node.id).await {
                warn!(campaign = %id, error = %e, "Lease not released; it expires by itself.");
            }
        }
    }

    /// At a clean stop, after the runners have stopped: marks the node stopped and releases
    /// every lease it holds, so other nodes take its campaigns at once.
    pub(super) async fn release_all_leases(&mut self) {
        for id in self.leases.held.keys() {
            self.store.set_fence(id, None);
        }
        self.leases.held.clear();
        match self.store.node_stopped(&self.opts.node.id).await {
            Ok(n) if n > 0 => info!(node = %self.opts.node.id, leases = n, "Campaign leases released."),
            Ok(_) => {}
            Err(e) => warn!(node = %self.opts.node.id, error = %e, "Leases not released; they expire by themselves."),
        }
    }

    /// Whether `id` is running or waiting for its lease here.
    pub(super) fn knows(&self, id: &str) -> Option<&Fingerprint> {
        self.running
            .get(id)
            .map(|r: &Running| &r.fingerprint)
            .or(self.leases.waiting.get(id).map(|w| &w.fingerprint))
    }
}
