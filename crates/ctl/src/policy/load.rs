//! The datastore's `namespaces`, `pods`, `networkpolicies` and `nodes` into a [`Cluster`],
//! read with the same `weft_policy::k8s` functions weftd uses, so a trace sees exactly what
//! the agents enforce. Objects that cannot be read are skipped and reported, as weftd skips
//! them.

use std::net::IpAddr;

use anyhow::{Context, Result};
use ipnet::IpNet;
use serde_json::Value;
use weft_cluster::NodeRecord;
use weft_policy::k8s::{namespace_from_object, pod_from_object, policy_from_object};
use weft_policy::{Cluster, Node};
use weft_store::Datastore;

/// Datastore kind of Namespace objects.
pub const KIND_NAMESPACES: &str = "namespaces";
/// Datastore kind of Pod objects.
pub const KIND_PODS: &str = "pods";
/// Datastore kind of NetworkPolicy objects.
pub const KIND_POLICIES: &str = "networkpolicies";
/// Datastore kind of weft NodeRecords.
pub const KIND_NODES: &str = "nodes";

/// Raw objects per kind, as `(key, JSON)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreObjects {
    /// `namespaces`.
    pub namespaces: Vec<(String, Value)>,
    /// `pods`.
    pub pods: Vec<(String, Value)>,
    /// `networkpolicies`.
    pub policies: Vec<(String, Value)>,
    /// `nodes` (NodeRecords).
    pub nodes: Vec<(String, Value)>,
    /// Highest store revision among the listings.
    pub revision: i64,
}

/// The cluster plus what could not be read.
#[derive(Debug, Clone, Default)]
pub struct LoadedCluster {
    /// Namespaces, pods, nodes and valid policies.
    pub cluster: Cluster,
    /// One line per skipped object (`pods x/a: ...`).
    pub skipped: Vec<String>,
    /// Store revision the objects were read at.
    pub revision: i64,
}

/// Lists the four kinds from `store`.
pub async fn list_objects(store: &dyn Datastore) -> Result<StoreObjects> {
    let mut objects = StoreObjects::default();
    for (kind, slot) in [
        (KIND_NAMESPACES, &mut objects.namespaces),
        (KIND_PODS, &mut objects.pods),
        (KIND_POLICIES, &mut objects.policies),
        (KIND_NODES, &mut objects.nodes),
    ] {
        let listing = store
            .list(kind)
            .await
            .with_context(|| format!("list {kind} from the datastore"))?;
        objects.revision = objects.revision.max(listing.revision);
        *slot = listing
            .entries
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
    }
    Ok(objects)
}

/// Lists the four kinds and builds the cluster.
pub async fn load_cluster(store: &dyn Datastore) -> Result<LoadedCluster> {
    Ok(cluster_from_objects(&list_objects(store).await?))
}

/// Builds the cluster from raw objects (pure).
pub fn cluster_from_objects(objects: &StoreObjects) -> LoadedCluster {
    let mut loaded = LoadedCluster {
        revision: objects.revision,
        ..LoadedCluster::default()
    };
    let mut skip = |kind: &str, key: &str, error: &dyn std::fmt::Display| {
        loaded.skipped.push(format!("{kind} {key}: {error}"));
    };
    let mut cluster = Cluster::default();
    for (key, value) in &objects.namespaces {
        match namespace_from_object(key, value) {
            Ok(ns) => cluster.namespaces.push(ns),
            Err(e) => skip(KIND_NAMESPACES, key, &e),
        }
    }
    for (key, value) in &objects.pods {
        match pod_from_object(key, value) {
            Ok(pod) => cluster.pods.push(pod),
            Err(e) => skip(KIND_PODS, key, &e),
        }
    }
    for (key, value) in &objects.policies {
        match policy_from_object(key, value) {
            Ok(policy) => cluster.policies.push(policy),
            Err(e) => skip(KIND_POLICIES, key, &e),
        }
    }
    for (key, value) in &objects.nodes {
        match serde_json::from_value::<NodeRecord>(value.clone()) {
            Ok(record) => cluster.nodes.push(node_from_record(&record)),
            Err(e) => skip(KIND_NODES, key, &e),
        }
    }
    loaded.cluster = cluster;
    loaded
}

/// A node's own addresses: its underlay addresses and the pod gateway (first host) of each
/// of its subnets, which is the source of node-to-pod traffic on the pod bridge.
pub fn node_from_record(record: &NodeRecord) -> Node {
    let mut ips = vec![record.underlay_ip];
    ips.extend(record.underlay_secondary.map(|n| n.addr()));
    ips.extend(record.subnets.iter().filter_map(gateway_of));
    ips.dedup();
    Node {
        name: record.name.clone(),
        ips,
    }
}

fn gateway_of(subnet: &IpNet) -> Option<IpAddr> {
    match subnet {
        IpNet::V4(n) => {
            let bits = u32::from(n.network()).checked_add(1)?;
            Some(IpAddr::V4(bits.into()))
        }
        IpNet::V6(n) => {
            let bits = u128::from(n.network()).checked_add(1)?;
            Some(IpAddr::V6(bits.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn objects() -> StoreObjects {
        StoreObjects {
            namespaces: vec![(
                "x".into(),
                json!({"metadata": {"name": "x", "labels": {"ns": "x"}}}),
            )],
            pods: vec![
                (
                    "x/a".into(),
                    json!({"metadata": {"name": "a", "namespace": "x", "labels": {"pod": "a"}},
                           "spec": {"nodeName": "node1"},
                           "status": {"podIPs": [{"ip": "10.244.1.2"}]}}),
                ),
                ("x/bad".into(), json!({"metadata": {}})),
            ],
            policies: vec![
                (
                    "x/deny".into(),
                    json!({"metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}}}),
                ),
                (
                    "x/broken".into(),
                    json!({"metadata": {"name": "broken", "namespace": "x"},
                           "spec": {"podSelector": {}, "policyTypes": ["Sideways"]}}),
                ),
            ],
            nodes: vec![(
                "node1".into(),
                json!({"name": "node1", "underlayIp": "198.18.0.11",
                       "subnets": ["10.244.1.0/24", "fd00:10:244:1::/64"]}),
            )],
            revision: 7,
        }
    }

    #[test]
    fn builds_cluster_and_reports_skipped_objects() {
        let loaded = cluster_from_objects(&objects());
        assert_eq!(loaded.revision, 7);
        assert_eq!(loaded.cluster.namespaces.len(), 1);
        assert_eq!(loaded.cluster.pods.len(), 1);
        assert_eq!(loaded.cluster.policies.len(), 1);
        assert_eq!(loaded.skipped.len(), 2, "{:?}", loaded.skipped);
        assert!(
            loaded.skipped[0].starts_with("pods x/bad"),
            "{:?}",
            loaded.skipped
        );
        assert!(loaded.skipped[1].starts_with("networkpolicies x/broken"));
    }

    #[test]
    fn node_addresses_include_underlay_and_gateways() {
        let loaded = cluster_from_objects(&objects());
        let ips: Vec<String> = loaded.cluster.nodes[0]
            .ips
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ips, ["198.18.0.11", "10.244.1.1", "fd00:10:244:1::1"]);
    }
}
