//! Nodes and campaign leases, for several dialerd nodes on one database. A node beats in the
//! `nodes` table; a campaign is run by the node holding its lease, an owner plus a fencing token
//! that grows on every acquisition plus an expiry read on the database's clock (so nodes whose
//! clocks disagree still agree on who holds what). While a campaign has a [`Fence`] set on the
//! store, every claim and close of its attempts is conditional on that token still being current
//! and unexpired, which is what stops a node that lost its lease (paused, partitioned, slow) from
//! writing for it; see ARCHITECTURE.md, "Leases and fencing".

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One node as it last beat.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeInfo {
    /// The node id (`node_id` in the settings, the host name by default).
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started (UTC).
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (UTC, the database's clock).
    pub heartbeat_at: DateTime<Utc>,
    /// When it stopped cleanly (UTC), if it did since it last started.
    pub stopped_at: Option<DateTime<Utc>>,
}

/// One campaign's lease as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRow {
    /// The campaign id.
    pub campaign: String,
    /// The node holding it; `None` once released.
    pub owner: Option<String>,
    /// The fencing token of the latest acquisition (1 for the first).
    pub token: i64,
    /// When the latest acquisition happened (UTC, the database's clock).
    pub acquired_at: DateTime<Utc>,
    /// When it expires unless renewed (UTC, the database's clock).
    pub expires_at: DateTime<Utc>,
    /// Whether it is held now: an owner and an expiry in the future.
    pub live: bool,
}

/// A lease this node holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The campaign id.
    pub campaign: String,
    /// The fencing token this node writes under.
    pub token: i64,
    /// When it expires unless renewed (UTC, the database's clock).
    pub expires_at: DateTime<Utc>,
}

/// What a campaign's writes are conditional on: the node and the token of its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The node id.
    pub node: String,
    /// The fencing token.
    pub token: i64,
}

/// Milliseconds in `d`, saturating, for the SQL that adds a time-to-live to the clock.
pub(crate) fn ttl_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Records a heartbeat of node `id` (on `host`, process `pid`, started at `started_at` UTC)
    /// at the database's clock, creating its row the first time and clearing `stopped_at`.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn node_heartbeat(
        &self,
        id: &str,
        host: &str,
        pid: u32,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_engine!(self, node_heartbeat(id, host, pid, started_at))
    }

    /// Marks node `id` stopped cleanly and releases every lease it holds at once (its campaigns
    /// can be taken by another node without waiting for expiry). Returns the leases released.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn node_stopped(&self, id: &str) -> Result<u64, StoreError> {
        on_engine!(self, node_stopped(id))
    }

    /// Every node that ever beat, by id.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        on_engine!(self, nodes())
    }

    /// How many nodes beat within the last `within` (database clock) and have not stopped.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn live_nodes(&self, within: Duration) -> Result<usize, StoreError> {
        on_engine!(self, live_nodes(within))
    }

    /// Every campaign's lease, by campaign id.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        on_engine!(self, leases())
    }

    /// Takes `campaign`'s lease for `node` for `ttl`, if nobody holds it (never taken, released
    /// or expired) or `node` itself does (a restarted node). Every acquisition gets the next
    /// fencing token and a `lease_history` row, in one statement that a racing node cannot
    /// interleave with: of two nodes acquiring at once, one gets `Some`.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn acquire_lease(&self, campaign: &str, node: &str, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        on_engine!(self, acquire_lease(campaign, node, ttl))
    }

    /// Extends `lease` by `ttl` from now (database clock) if `node` still holds it under the
    /// same token; returns the new expiry, or `None` when the lease is lost (taken by another
    /// node, or released).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn renew_lease(
        &self,
        lease: &Lease,
        node: &str,
        ttl: Duration,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        on_engine!(self, renew_lease(lease, node, ttl))
    }

    /// Gives `lease` back at once (another node may take it immediately); returns whether it
    /// was still held.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn release_lease(&self, lease: &Lease, node: &str) -> Result<bool, StoreError> {
        on_engine!(self, release_lease(lease, node))
    }

    /// Makes every later claim and close of `campaign`'s attempts through this store (and its
    /// clones) conditional on `fence` (`None` removes the condition). The condition is checked
    /// in the write's own transaction against the lease row, so it holds even if this node is
    /// paused between deciding and writing.
    pub fn set_fence(&self, campaign: &str, fence: Option<Fence>) {
        let mut fences = self.fences.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        match fence {
            Some(f) => fences.insert(campaign.to_string(), f),
            None => fences.remove(campaign),
        };
    }

    /// Every fence set, by campaign id (a copy).
    pub(crate) fn fences_snapshot(&self) -> std::collections::HashMap<String, Fence> {
        self.fences
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The fence set for `campaign`, if any.
    pub fn fence(&self, campaign: &str) -> Option<Fence> {
        let fences = self.fences.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        fences.get(campaign).cloned()
    }
}

/// The `Nodes` section of `dialerd status`: each node (id, host, pid, last heartbeat, how long
/// ago at `now` UTC, stopped or not) with the campaigns it holds, then each campaign's owner and
/// fencing token. Empty when no node ever beat (a database no daemon has run on).
pub fn nodes_text(nodes: &[NodeInfo], leases: &[LeaseRow], now: DateTime<Utc>) -> String {
    use std::fmt::Write;
    if nodes.is_empty() && leases.is_empty() {
        return String::new();
    }
    let mut out = String::from("Nodes:\n");
    for n in nodes {
        let held: Vec<&str> = leases
            .iter()
            .filter(|l| l.live && l.owner.as_deref() == Some(n.id.as_str()))
            .map(|l| l.campaign.as_str())
            .collect();
        let ago = (now - n.heartbeat_at).num_milliseconds().max(0) as f64 / 1000.0;
        let state = if n.stopped_at.is_some() { "stopped" } else { "running" };
        let _ = writeln!(
            out,
            "  {}  host {}  pid {}  {state}  last heartbeat {} ({ago:.1} s ago)  campaigns held: {}",
            n.id,
            n.host,
            n.pid,
            n.heartbeat_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            if held.is_empty() {
                "none".to_string()
            } else {
                held.join(", ")
            }
        );
    }
    out.push_str("Campaign owners:\n");
    for l in leases {
        let owner = match (&l.owner, l.live) {
            (Some(o), true) => format!(
                "{o} (token {}, lease until {})",
                l.token,
                l.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            (Some(o), false) => format!("none (lease of {o}, token {}, expired)", l.token),
            (None, _) => format!("none (released after token {})", l.token),
        };
        let _ = writeln!(out, "  {}: {owner}", l.campaign);
    }
    out
}
