//! Properties of the lease plan (`core::lease::plan`): nodes that each act on their own plan,
//! in any order, over a shared lease table, never hold one campaign twice, settle with every
//! campaign held and no node above `ceil(campaigns / nodes)`, and a node that joins gets work.

use dialerd::core::lease::{LeaseView, fair_share, plan};
use proptest::prelude::*;

/// Runs `rounds` ticks; at each, the node `order[i % len]` plans over the table and acts.
/// `owner[c]` is the node holding campaign `c`, if any.
fn settle(campaigns: usize, nodes: usize, order: &[usize], owner: &mut [Option<usize>]) {
    for &n in order {
        let n = n % nodes;
        let views: Vec<(String, LeaseView)> = (0..campaigns)
            .map(|c| {
                let v = match owner[c] {
                    None => LeaseView::Free,
                    Some(o) if o == n => LeaseView::Mine,
                    Some(_) => LeaseView::Theirs,
                };
                (format!("c{c:03}"), v)
            })
            .collect();
        let p = plan(&views, nodes);
        for id in p.release {
            let c: usize = id[1..].parse().unwrap();
            assert_eq!(owner[c], Some(n), "node {n} released {id}, which it did not hold");
            owner[c] = None;
        }
        for id in p.acquire {
            let c: usize = id[1..].parse().unwrap();
            assert_eq!(owner[c], None, "node {n} was told to take {id}, which is held");
            owner[c] = Some(n);
        }
    }
}

proptest! {
    #[test]
    fn nodes_settle_on_a_fair_share_of_every_campaign(
        campaigns in 0usize..12,
        nodes in 1usize..5,
        order in proptest::collection::vec(0usize..5, 0..40),
    ) {
        let mut owner = vec![None; campaigns];
        settle(campaigns, nodes, &order, &mut owner);
        // Then every node ticks twice in turn: the table must settle.
        let rounds: Vec<usize> = (0..nodes).chain(0..nodes).collect();
        settle(campaigns, nodes, &rounds, &mut owner);
        let share = fair_share(campaigns, nodes);
        prop_assert!(owner.iter().all(Option::is_some), "a campaign is left unheld: {owner:?}");
        for n in 0..nodes {
            let held = owner.iter().filter(|o| **o == Some(n)).count();
            prop_assert!(held <= share, "node {n} holds {held} > share {share}");
        }
    }

    #[test]
    fn a_node_that_joins_gets_work(campaigns in 2usize..12) {
        // One node holds everything; a second joins.
        let mut owner = vec![Some(0); campaigns];
        settle(campaigns, 2, &[0, 1, 0, 1], &mut owner);
        let second = owner.iter().filter(|o| **o == Some(1)).count();
        prop_assert!(second >= campaigns / 2, "the new node holds {second} of {campaigns}");
        prop_assert!(owner.iter().all(Option::is_some));
    }
}
