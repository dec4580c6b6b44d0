//! Desired-vs-actual diffs, so the agent reconciles by level instead of replaying events.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::mac::MacAddr;
use crate::plan::{FdbPlan, NeighbourPlan, NodePlan, RoutePlan};

/// Identity of an entry in the kernel: two entries with the same key cannot coexist, so a
/// changed entry is replaced in place rather than removed and re-added.
pub trait Keyed {
    /// The identity type.
    type Key: Ord;
    /// This entry's identity.
    fn key(&self) -> Self::Key;
}

impl Keyed for RoutePlan {
    type Key = IpNet;
    /// One weft route per destination in the main table.
    fn key(&self) -> IpNet {
        self.dst
    }
}

impl Keyed for NeighbourPlan {
    type Key = (String, IpAddr);
    fn key(&self) -> (String, IpAddr) {
        (self.device.clone(), self.ip)
    }
}

impl Keyed for FdbPlan {
    type Key = (String, MacAddr);
    /// weft keeps one underlay destination per remote MAC.
    fn key(&self) -> (String, MacAddr) {
        (self.device.clone(), self.mac)
    }
}

/// What to change to turn the actual entries into the desired ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff<T> {
    /// Entries to add or replace (missing, or present with different attributes).
    pub upsert: Vec<T>,
    /// Entries whose key is not desired at all.
    pub remove: Vec<T>,
}

impl<T> Diff<T> {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.remove.is_empty()
    }
}

impl<T> Default for Diff<T> {
    fn default() -> Self {
        Diff {
            upsert: Vec::new(),
            remove: Vec::new(),
        }
    }
}

/// Compares by [`Keyed::key`]; order of the inputs does not matter, outputs are in key order.
pub fn diff_keyed<T: Keyed + PartialEq + Clone>(desired: &[T], actual: &[T]) -> Diff<T> {
    let actual_by_key: BTreeMap<T::Key, &T> = actual.iter().map(|a| (a.key(), a)).collect();
    let desired_by_key: BTreeMap<T::Key, &T> = desired.iter().map(|d| (d.key(), d)).collect();
    let upsert = desired_by_key
        .iter()
        .filter(|(k, d)| actual_by_key.get(*k) != Some(*d))
        .map(|(_, d)| (*d).clone())
        .collect();
    let remove = actual_by_key
        .iter()
        .filter(|(k, _)| !desired_by_key.contains_key(*k))
        .map(|(_, a)| (*a).clone())
        .collect();
    Diff { upsert, remove }
}

/// Changes for a whole [`NodePlan`].
///
/// Apply in this order so no route ever points at a missing neighbour: upsert FDB, then
/// neighbours, then routes; remove routes, then neighbours, then FDB entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanDiff {
    /// Route changes.
    pub routes: Diff<RoutePlan>,
    /// Neighbour changes.
    pub neighbours: Diff<NeighbourPlan>,
    /// FDB changes.
    pub fdb: Diff<FdbPlan>,
}

impl PlanDiff {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.neighbours.is_empty() && self.fdb.is_empty()
    }
}

impl NodePlan {
    /// What to change so the kernel matches this plan. `actual` must hold only entries
    /// weft owns (e.g. routes with weft's protocol, entries on [`crate::VXLAN_DEVICE`]);
    /// anything in it that this plan does not want is removed.
    pub fn diff(&self, actual: &NodePlan) -> PlanDiff {
        PlanDiff {
            routes: diff_keyed(&self.routes, &actual.routes),
            neighbours: diff_keyed(&self.neighbours, &actual.neighbours),
            fdb: diff_keyed(&self.fdb, &actual.fdb),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, via: &str) -> RoutePlan {
        RoutePlan {
            dst: dst.parse().unwrap(),
            via: via.parse().unwrap(),
            device: None,
            onlink: false,
        }
    }

    #[test]
    fn adds_replaces_and_removes() {
        let desired = [
            route("10.244.1.0/24", "198.18.0.2"),
            route("10.244.2.0/24", "198.18.0.3"),
        ];
        let actual = [
            route("10.244.2.0/24", "198.18.0.9"),
            route("10.244.7.0/24", "198.18.0.7"),
        ];
        let d = diff_keyed(&desired, &actual);
        assert_eq!(d.upsert, desired.to_vec());
        assert_eq!(d.remove, vec![actual[1].clone()]);
    }

    #[test]
    fn same_state_is_empty() {
        let a = [
            route("10.244.1.0/24", "198.18.0.2"),
            route("10.244.2.0/24", "198.18.0.3"),
        ];
        let b = [a[1].clone(), a[0].clone()];
        assert!(diff_keyed(&a, &b).is_empty());
        let plan = NodePlan {
            routes: a.to_vec(),
            ..NodePlan::default()
        };
        assert!(plan.diff(&plan).is_empty());
        assert_eq!(plan.diff(&NodePlan::default()).routes.upsert.len(), 2);
        assert_eq!(NodePlan::default().diff(&plan).routes.remove.len(), 2);
    }
}
