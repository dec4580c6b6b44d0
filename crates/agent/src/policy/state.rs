//! What the policy task knows (pure): the watched objects, the claims, and how far the
//! datastore has been read, turned into the `weft_policy::Cluster` the compiler takes.
//!
//! The revision reported in status.json must mean "every write up to here is in the
//! kernel", across four independent watches. A watch event only proves its own kind is
//! read up to its revision (and the embedded store even delivers one poll's puts out of
//! revision order), so the reported revision is the lowest of the kinds' *listing*
//! revisions. Events raise `newest`; kinds listed below it are listed again (`lagging`),
//! which also resyncs them.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use weft_cluster::NodeRecord;
use weft_policy::k8s::{namespace_from_object, pod_from_object, policy_from_object};
use weft_policy::{Cluster, Namespace, Node, Pod, ValidatedPolicy};
use weft_store::{Entry, Listing, WatchEvent};

use super::cache::KindCache;
use super::claims::{Claim, ClaimTable};
use crate::desired::gateway_address;

/// A watched datastore kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `namespaces`, key `<name>`.
    Namespaces,
    /// `pods`, key `<namespace>/<name>`.
    Pods,
    /// `networkpolicies`, key `<namespace>/<name>`.
    Policies,
    /// `nodes`: weft NodeRecords.
    Nodes,
}

impl Kind {
    /// Every watched kind.
    pub const ALL: [Kind; 4] = [Kind::Namespaces, Kind::Pods, Kind::Policies, Kind::Nodes];

    /// The store's name of the kind.
    pub fn store_kind(self) -> &'static str {
        match self {
            Kind::Namespaces => "namespaces",
            Kind::Pods => "pods",
            Kind::Policies => "networkpolicies",
            Kind::Nodes => weft_store::subnets::KIND_NODES,
        }
    }
}

/// The compiler's input plus what status.json counts.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Inventory and policies, claims applied.
    pub cluster: Cluster,
    /// Addresses claimed by pods not known (yet).
    pub quarantined: Vec<IpAddr>,
    /// Pods on this node.
    pub local_pods: usize,
}

/// The policy task's knowledge.
#[derive(Debug)]
pub struct PolicyState {
    node: String,
    namespaces: KindCache<Namespace>,
    pods: KindCache<Pod>,
    policies: KindCache<ValidatedPolicy>,
    nodes: KindCache<NodeRecord>,
    claims: ClaimTable,
    /// Highest revision any watch event or snapshot showed.
    newest: i64,
}

fn logged<T>(kind: &str, result: Result<T, String>) -> Result<T, String> {
    if let Err(e) = &result {
        tracing::error!(kind, error = %e, "skipping unreadable object");
    }
    result
}

fn parse_namespace(e: &Entry) -> Result<Namespace, String> {
    logged(
        "namespace",
        namespace_from_object(&e.key, &e.value).map_err(|x| x.to_string()),
    )
}

fn parse_pod(e: &Entry) -> Result<Pod, String> {
    logged(
        "pod",
        pod_from_object(&e.key, &e.value).map_err(|x| x.to_string()),
    )
}

fn parse_policy(e: &Entry) -> Result<ValidatedPolicy, String> {
    logged(
        "networkpolicy",
        policy_from_object(&e.key, &e.value).map_err(|x| x.to_string()),
    )
}

fn parse_node(e: &Entry) -> Result<NodeRecord, String> {
    logged(
        "node",
        e.parse::<NodeRecord>()
            .map_err(|x| format!("node {}: {x}", e.key)),
    )
}

/// `(namespace, name)` of a pod that left the cache.
fn pod_identity(key: &str, pod: &Result<Pod, String>) -> Option<(String, String)> {
    match pod {
        Ok(p) => Some((p.namespace.clone(), p.name.clone())),
        Err(_) => key
            .split_once('/')
            .map(|(ns, name)| (ns.to_string(), name.to_string())),
    }
}

impl PolicyState {
    /// Nothing known yet, for node `node`.
    pub fn new(node: &str) -> Self {
        PolicyState {
            node: node.to_string(),
            namespaces: KindCache::default(),
            pods: KindCache::default(),
            policies: KindCache::default(),
            nodes: KindCache::default(),
            claims: ClaimTable::default(),
            newest: 0,
        }
    }

    /// Whether every kind's first snapshot was loaded (claims are answered only then).
    pub fn ready(&self) -> bool {
        self.namespaces.loaded()
            && self.pods.loaded()
            && self.policies.loaded()
            && self.nodes.loaded()
    }

    /// Applies a watch event; true if the inventory changed.
    pub fn apply_event(&mut self, kind: Kind, event: &WatchEvent) -> bool {
        match event {
            WatchEvent::Snapshot(listing) => {
                self.newest = self.newest.max(listing.revision);
                self.apply_listing(kind, listing)
            }
            WatchEvent::Put(entry) => {
                self.newest = self.newest.max(entry.mod_revision);
                self.apply_put(kind, entry)
            }
            WatchEvent::Delete { key, revision } => {
                self.newest = self.newest.max(*revision);
                self.apply_delete(kind, key, *revision)
            }
        }
    }

    /// Applies a listing of `kind` (a watch snapshot, or one taken to confirm the
    /// revision); true if the inventory changed.
    pub fn apply_listing(&mut self, kind: Kind, listing: &Listing) -> bool {
        match kind {
            Kind::Namespaces => {
                self.namespaces
                    .apply_listing(listing, parse_namespace)
                    .changed
            }
            Kind::Policies => self.policies.apply_listing(listing, parse_policy).changed,
            Kind::Nodes => self.nodes.apply_listing(listing, parse_node).changed,
            Kind::Pods => {
                let change = self.pods.apply_listing(listing, parse_pod);
                for (key, pod) in &change.removed {
                    self.forget_claim(key, pod);
                }
                change.changed
            }
        }
    }

    fn apply_put(&mut self, kind: Kind, entry: &Entry) -> bool {
        match kind {
            Kind::Namespaces => self.namespaces.apply_put(entry, parse_namespace),
            Kind::Pods => self.pods.apply_put(entry, parse_pod),
            Kind::Policies => self.policies.apply_put(entry, parse_policy),
            Kind::Nodes => self.nodes.apply_put(entry, parse_node),
        }
    }

    fn apply_delete(&mut self, kind: Kind, key: &str, revision: i64) -> bool {
        match kind {
            Kind::Namespaces => self.namespaces.apply_delete(key, revision).is_some(),
            Kind::Policies => self.policies.apply_delete(key, revision).is_some(),
            Kind::Nodes => self.nodes.apply_delete(key, revision).is_some(),
            Kind::Pods => match self.pods.apply_delete(key, revision) {
                Some(pod) => {
                    self.forget_claim(key, &pod);
                    true
                }
                None => false,
            },
        }
    }

    fn forget_claim(&mut self, key: &str, pod: &Result<Pod, String>) {
        if let Some((ns, name)) = pod_identity(key, pod)
            && self.claims.forget(&ns, &name)
        {
            tracing::info!(pod = %key, "pod deleted: its claim is forgotten");
        }
    }

    /// A pod read directly for a claim. It does not count as a watch event: the revision
    /// it was read at says nothing about the other objects.
    pub fn insert_fetched_pod(&mut self, entry: &Entry) -> bool {
        self.pods.apply_put(entry, parse_pod)
    }

    /// Whether the pod object `namespace/name` is cached (the store key).
    pub fn knows_pod(&self, key: &str) -> bool {
        self.pods.contains(key)
    }

    /// Records a claim (it is authoritative for its addresses on this node).
    pub fn record_claim(&mut self, claim: Claim) {
        self.claims.record(claim);
    }

    /// Every write up to this revision is in the inventory.
    pub fn synced_revision(&self) -> i64 {
        [
            self.namespaces.listed(),
            self.pods.listed(),
            self.policies.listed(),
            self.nodes.listed(),
        ]
        .into_iter()
        .min()
        .unwrap_or(0)
    }

    /// Kinds whose newest listing is older than the newest event: list them again to
    /// confirm a revision.
    pub fn lagging(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| self.listed(*k) < self.newest)
            .collect()
    }

    fn listed(&self, kind: Kind) -> i64 {
        match kind {
            Kind::Namespaces => self.namespaces.listed(),
            Kind::Pods => self.pods.listed(),
            Kind::Policies => self.policies.listed(),
            Kind::Nodes => self.nodes.listed(),
        }
    }

    /// Unreadable objects as `key: reason` lines, invalid policies first.
    pub fn problems(&self) -> Vec<String> {
        let reason = |(_, e): (&str, &str)| e.to_string();
        self.policies
            .invalid()
            .map(reason)
            .chain(self.pods.invalid().map(reason))
            .chain(self.namespaces.invalid().map(reason))
            .chain(self.nodes.invalid().map(reason))
            .collect()
    }

    /// Number of valid policies.
    pub fn policy_count(&self) -> usize {
        self.policies.valid().count()
    }

    /// The compiler's input: claimed addresses belong to their claiming pod (taken away
    /// from any stale object), claims of unknown pods are quarantined.
    pub fn view(&self) -> View {
        let claimed: HashSet<IpAddr> = self
            .claims
            .iter()
            .flat_map(|c| c.ips.iter().copied())
            .collect();
        let mut known: BTreeSet<(&str, &str)> = BTreeSet::new();
        let mut pods = Vec::new();
        for pod in self.pods.valid() {
            known.insert((&pod.namespace, &pod.name));
            let mut pod = pod.clone();
            match self.claims.get(&pod.namespace, &pod.name) {
                Some(claim) => {
                    pod.ips.clone_from(&claim.ips);
                    pod.node.clone_from(&self.node);
                }
                None => pod.ips.retain(|ip| !claimed.contains(ip)),
            }
            pods.push(pod);
        }
        let quarantined = self
            .claims
            .iter()
            .filter(|c| !known.contains(&(c.namespace.as_str(), c.name.as_str())))
            .flat_map(|c| c.ips.iter().copied())
            .collect();
        View {
            local_pods: pods.iter().filter(|p| p.node == self.node).count(),
            cluster: Cluster {
                namespaces: self.namespaces.valid().cloned().collect(),
                pods,
                nodes: self.nodes.valid().map(|r| self.node_of(r)).collect(),
                policies: self.policies.valid().cloned().collect(),
            },
            quarantined,
        }
    }

    /// A node's own addresses: underlay ones, plus (for this node) the gateway addresses
    /// on the bridge, the source of this node's traffic to its pods.
    fn node_of(&self, record: &NodeRecord) -> Node {
        let mut ips = vec![record.underlay_ip];
        ips.extend(record.underlay_secondary.map(|n| n.addr()));
        if record.name == self.node {
            ips.extend(
                record
                    .subnets
                    .iter()
                    .filter_map(gateway_address)
                    .map(|g| g.addr()),
            );
        }
        Node {
            name: record.name.clone(),
            ips,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(key: &str, value: serde_json::Value, rev: i64) -> Entry {
        Entry {
            key: key.into(),
            value,
            mod_revision: rev,
            create_revision: rev,
            lease: None,
        }
    }

    fn pod(key: &str, node: &str, ips: &[&str], rev: i64) -> Entry {
        let (ns, name) = key.split_once('/').unwrap();
        let pod_ips: Vec<_> = ips.iter().map(|i| json!({ "ip": i })).collect();
        entry(
            key,
            json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
                   "spec": {"nodeName": node}, "status": {"podIPs": pod_ips}}),
            rev,
        )
    }

    fn claim(key: &str, ips: &[&str]) -> Claim {
        let (ns, name) = key.split_once('/').unwrap();
        Claim {
            namespace: ns.into(),
            name: name.into(),
            container_id: "c".into(),
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        }
    }

    fn snapshot(entries: Vec<Entry>, revision: i64) -> WatchEvent {
        WatchEvent::Snapshot(Listing { entries, revision })
    }

    fn loaded(node_rev: i64) -> PolicyState {
        let mut s = PolicyState::new("n1");
        let mut record = NodeRecord::new("n1", "198.18.0.10".parse().unwrap());
        record.subnets = vec!["10.244.1.0/24".parse().unwrap()];
        let node = entry("n1", serde_json::to_value(record).unwrap(), 2);
        for kind in Kind::ALL {
            let entries = if kind == Kind::Nodes {
                vec![node.clone()]
            } else {
                vec![]
            };
            assert!(!s.ready());
            s.apply_event(kind, &snapshot(entries, node_rev));
        }
        s
    }

    fn ips(v: &View, name: &str) -> Vec<String> {
        let p = v.cluster.pods.iter().find(|p| p.name == name).unwrap();
        p.ips.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn ready_after_all_snapshots_and_node_addresses() {
        let s = loaded(5);
        assert!(s.ready());
        assert_eq!(s.synced_revision(), 5);
        let v = s.view();
        let node: Vec<String> = v
            .cluster
            .node_ips("n1")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(node, vec!["198.18.0.10", "10.244.1.1"]);
    }

    #[test]
    fn claims_own_addresses_and_unknown_pods_are_quarantined() {
        let mut s = loaded(5);
        s.apply_event(Kind::Pods, &WatchEvent::Put(pod("x/a", "", &[], 6)));
        // A stale object still holds the address the new pod claims.
        s.apply_event(
            Kind::Pods,
            &WatchEvent::Put(pod("x/old", "n1", &["10.244.1.5"], 7)),
        );
        s.record_claim(claim("x/a", &["10.244.1.5"]));
        s.record_claim(claim("x/ghost", &["10.244.1.9"]));
        let v = s.view();
        assert_eq!(ips(&v, "a"), vec!["10.244.1.5"]);
        assert!(ips(&v, "old").is_empty());
        assert_eq!(v.quarantined, vec!["10.244.1.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(v.local_pods, 2, "the claim puts x/a on this node");
        // The ghost's object arrives: quarantine lifted.
        assert!(s.knows_pod("x/a") && !s.knows_pod("x/ghost"));
        s.insert_fetched_pod(&pod("x/ghost", "n1", &[], 8));
        assert!(s.view().quarantined.is_empty());
        assert_eq!(s.synced_revision(), 5, "a direct read proves nothing");
        // Deleting the pod object forgets the claim.
        s.apply_event(
            Kind::Pods,
            &WatchEvent::Delete {
                key: "x/a".into(),
                revision: 9,
            },
        );
        s.apply_event(Kind::Pods, &WatchEvent::Put(pod("x/a", "n1", &[], 10)));
        assert!(ips(&s.view(), "a").is_empty());
    }

    #[test]
    fn revision_is_confirmed_by_listings() {
        let mut s = loaded(5);
        let p = entry(
            "x/deny",
            json!({"metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}}}),
            8,
        );
        assert!(s.apply_event(Kind::Policies, &WatchEvent::Put(p.clone())));
        assert_eq!(s.synced_revision(), 5);
        assert_eq!(s.lagging(), Kind::ALL.to_vec());
        for kind in Kind::ALL {
            let entries = if kind == Kind::Policies {
                vec![p.clone()]
            } else {
                vec![]
            };
            let nodes = kind == Kind::Nodes;
            let changed = s.apply_listing(
                kind,
                &Listing {
                    entries,
                    revision: 9,
                },
            );
            assert_eq!(changed, nodes, "{kind:?}: only the node record vanished");
        }
        assert_eq!(s.synced_revision(), 9);
        assert!(s.lagging().is_empty());
        assert_eq!(s.policy_count(), 1);
    }

    #[test]
    fn invalid_policies_are_skipped_and_reported() {
        let mut s = loaded(5);
        let bad = entry(
            "x/bad",
            json!({"metadata": {"name": "bad", "namespace": "x"},
                   "spec": {"podSelector": {}, "policyTypes": ["Sideways"]}}),
            6,
        );
        s.apply_event(Kind::Policies, &WatchEvent::Put(bad));
        assert_eq!(s.policy_count(), 0);
        let problems = s.problems();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("x/bad"), "{problems:?}");
        assert!(s.view().cluster.policies.is_empty());
    }
}
