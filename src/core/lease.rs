//! Which campaigns a node should hold, when several nodes share one database: the fair share
//! (`ceil(campaigns / live nodes)`), which free or expired leases to take, and which held ones to
//! hand back so a node that joins gets work. Pure: the daemon reads the leases and the live nodes
//! from the store, asks [`plan`], and acts on the answer.
//!
//! The lease protocol itself (owner, fencing token, expiry; every claim and close conditional on
//! the token) lives in the store; this module only decides.

use std::collections::BTreeSet;

/// One campaign's lease as the store last read it, from one node's point of view.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeaseView {
    /// Nobody holds it: never taken, released, or expired.
    Free,
    /// This node holds it.
    Mine,
    /// Another node holds it, and its lease has not expired.
    Theirs,
}

/// What a node should do with its leases now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeasePlan {
    /// Free campaigns to try to take, in id order (a racer may win some of them).
    pub acquire: Vec<String>,
    /// Held campaigns to hand back (stop dialing, let calls end, release), so that every node
    /// holds at most its fair share.
    pub release: Vec<String>,
}

/// The most campaigns one of `live_nodes` nodes should hold: `ceil(campaigns / live_nodes)`
/// (all of them when no node is known to be live, which counts this one).
pub fn fair_share(campaigns: usize, live_nodes: usize) -> usize {
    campaigns.div_ceil(live_nodes.max(1))
}

/// The plan for one node. `campaigns` are the runnable campaigns (valid files, not finished),
/// each with its lease as read; `live_nodes` counts the nodes whose heartbeat is fresh, this one
/// included.
///
/// The node keeps what it holds up to its fair share, takes free campaigns until it holds its
/// share, and hands back the campaigns above its share (the last in id order first). It never
/// takes a campaign another node holds: a lease changes hands only by expiry or release.
pub fn plan(campaigns: &[(String, LeaseView)], live_nodes: usize) -> LeasePlan {
    let share = fair_share(campaigns.len(), live_nodes);
    let mine: BTreeSet<&str> = campaigns
        .iter()
        .filter(|(_, v)| *v == LeaseView::Mine)
        .map(|(id, _)| id.as_str())
        .collect();
    let free: BTreeSet<&str> = campaigns
        .iter()
        .filter(|(_, v)| *v == LeaseView::Free)
        .map(|(id, _)| id.as_str())
        .collect();
    let mut out = LeasePlan::default();
    if mine.len() > share {
        out.release = mine
            .iter()
            .rev()
            .take(mine.len() - share)
            .map(|s| s.to_string())
            .collect();
        out.release.sort();
    } else {
        out.acquire = free.iter().take(share - mine.len()).map(|s| s.to_string()).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(v: &[(&str, LeaseView)]) -> Vec<(String, LeaseView)> {
        v.iter().map(|(id, l)| (id.to_string(), l.clone())).collect()
    }

    #[test]
    fn a_lone_node_takes_everything() {
        let p = plan(&views(&[("a", LeaseView::Free), ("b", LeaseView::Free)]), 1);
        assert_eq!(p.acquire, vec!["a", "b"]);
        assert!(p.release.is_empty());
    }

    #[test]
    fn a_new_node_gets_work_from_one_that_holds_too_much() {
        let all_mine = views(&[
            ("a", LeaseView::Mine),
            ("b", LeaseView::Mine),
            ("c", LeaseView::Mine),
            ("d", LeaseView::Mine),
        ]);
        let p = plan(&all_mine, 2);
        assert_eq!(p.release, vec!["c", "d"]);
        let newcomer = views(&[
            ("a", LeaseView::Theirs),
            ("b", LeaseView::Theirs),
            ("c", LeaseView::Free),
            ("d", LeaseView::Free),
        ]);
        assert_eq!(plan(&newcomer, 2).acquire, vec!["c", "d"]);
    }

    #[test]
    fn shares_round_up() {
        assert_eq!(fair_share(4, 3), 2);
        assert_eq!(fair_share(3, 3), 1);
        assert_eq!(fair_share(0, 3), 0);
        assert_eq!(fair_share(5, 0), 5);
    }
}
