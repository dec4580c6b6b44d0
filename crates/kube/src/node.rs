//! Node objects ⇄ weft [`NodeRecord`]s (pure: JSON in, JSON out).
//!
//! Kubernetes owns the facts it already has: the node name, its addresses
//! (`status.addresses`) and its pod subnets (`spec.podCIDRs`, set by kube-controller-manager
//! `--allocate-node-cidrs`). weftd adds what Kubernetes does not know as annotations on the
//! Node: the VXLAN MAC and its underlay as it measured it (with prefix lengths, which host-gw
//! needs). Once those annotations exist they win over `status.addresses`, so a record read
//! back equals the record weftd wrote (weftd republishes when they differ).

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value, json};
use weft_cluster::{MacAddr, NodeRecord};

/// Annotation with the node's VXLAN device MAC (`02:…`).
pub const ANNOTATION_VXLAN_MAC: &str = "weft.dev/vxlan-mac";
/// Annotation with the primary underlay address and prefix length (`198.18.0.11/24`).
pub const ANNOTATION_UNDERLAY: &str = "weft.dev/underlay";
/// Annotation with the underlay address of the other family (`2001:2::11/64`).
pub const ANNOTATION_UNDERLAY_SECONDARY: &str = "weft.dev/underlay-secondary";

/// Every annotation weft writes on a Node.
pub const WEFT_ANNOTATIONS: [&str; 3] = [
    ANNOTATION_VXLAN_MAC,
    ANNOTATION_UNDERLAY,
    ANNOTATION_UNDERLAY_SECONDARY,
];

fn annotation<'a>(node: &'a Value, name: &str) -> Option<&'a str> {
    node.pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

/// The Node's pod subnets: `spec.podCIDRs`, or the older single `spec.podCIDR`.
/// Unparsable entries are skipped.
pub fn pod_cidrs(node: &Value) -> Vec<IpNet> {
    let listed: Vec<&str> = node
        .pointer("/spec/podCIDRs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let texts = if listed.is_empty() {
        node.pointer("/spec/podCIDR")
            .and_then(Value::as_str)
            .into_iter()
            .collect()
    } else {
        listed
    };
    texts.iter().filter_map(|t| t.parse().ok()).collect()
}

/// `status.addresses` of type InternalIP, in the order the kubelet reported them.
fn internal_ips(node: &Value) -> Vec<IpAddr> {
    node.pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
        .filter_map(|a| a.get("address")?.as_str()?.parse().ok())
        .collect()
}

/// Host prefix (/32 or /128): a peer's secondary address is only used as a next hop.
fn host_net(ip: IpAddr) -> Option<IpNet> {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    IpNet::new(ip, len).ok()
}

/// The weft record of a Node object; `None` if it has no name or no usable address.
///
/// Underlay: the `weft.dev/underlay*` annotations when weftd wrote them, else the first
/// IPv4 InternalIP as primary (IPv6 if there is none) and the first InternalIP of the
/// other family as secondary.
pub fn record_from_node(node: &Value) -> Option<NodeRecord> {
    let name = node.pointer("/metadata/name")?.as_str()?;
    let annotated: Option<IpNet> =
        annotation(node, ANNOTATION_UNDERLAY).and_then(|t| t.parse().ok());
    let mut record = match annotated {
        Some(net) => {
            let mut r = NodeRecord::new(name, net.addr());
            r.underlay_prefix_len = Some(net.prefix_len());
            r.underlay_secondary =
                annotation(node, ANNOTATION_UNDERLAY_SECONDARY).and_then(|t| t.parse().ok());
            r
        }
        None => {
            let ips = internal_ips(node);
            let v4 = ips.iter().find(|ip| ip.is_ipv4()).copied();
            let v6 = ips.iter().find(|ip| ip.is_ipv6()).copied();
            let (primary, secondary) = match (v4, v6) {
                (Some(v4), v6) => (v4, v6),
                (None, Some(v6)) => (v6, None),
                (None, None) => return None,
            };
            let mut r = NodeRecord::new(name, primary);
            r.underlay_secondary = secondary.and_then(host_net);
            r
        }
    };
    record.vxlan_mac =
        annotation(node, ANNOTATION_VXLAN_MAC).and_then(|t| t.parse::<MacAddr>().ok());
    record.subnets = pod_cidrs(node);
    Some(record)
}

/// weft's annotations for `record`: what a server-side apply by weft's field manager sets.
/// Facts the record does not have are left out, so the apply removes them from the Node.
pub fn annotations_for(record: &NodeRecord) -> Map<String, Value> {
    let mut annotations = Map::new();
    if let Some(mac) = record.vxlan_mac {
        annotations.insert(ANNOTATION_VXLAN_MAC.into(), json!(mac.to_string()));
    }
    if let Some(len) = record.underlay_prefix_len
        && let Ok(net) = IpNet::new(record.underlay_ip, len)
    {
        annotations.insert(ANNOTATION_UNDERLAY.into(), json!(net.to_string()));
    }
    if let Some(secondary) = record.underlay_secondary {
        annotations.insert(
            ANNOTATION_UNDERLAY_SECONDARY.into(),
            json!(secondary.to_string()),
        );
    }
    annotations
}

/// The server-side apply body for a Node: only `metadata.annotations`, never `spec` or
/// `status` (those belong to the kubelet and kube-controller-manager).
pub fn apply_body(name: &str, annotations: Map<String, Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "annotations": annotations},
    })
}

/// Whether the Node carries any weft annotation.
pub fn has_weft_annotations(node: &Value) -> bool {
    WEFT_ANNOTATIONS
        .iter()
        .any(|a| annotation(node, a).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-a", "resourceVersion": "812"},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
            "status": {"addresses": [
                {"type": "Hostname", "address": "node-a"},
                {"type": "InternalIP", "address": "2001:2::11"},
                {"type": "InternalIP", "address": "198.18.0.11"}]}
        })
    }

    #[test]
    fn unannotated_node_uses_internal_ips_v4_first() {
        let r = record_from_node(&node()).unwrap();
        assert_eq!(r.name, "node-a");
        assert_eq!(r.underlay_ip, "198.18.0.11".parse::<IpAddr>().unwrap());
        assert_eq!(r.underlay_prefix_len, None);
        assert_eq!(
            r.underlay_secondary,
            Some("2001:2::11/128".parse().unwrap())
        );
        assert_eq!(r.vxlan_mac, None);
        assert_eq!(r.subnets.len(), 2);
    }

    #[test]
    fn annotations_round_trip_exactly() {
        let mut record = NodeRecord::new("node-a", "198.18.0.11".parse().unwrap());
        record.underlay_prefix_len = Some(24);
        record.underlay_secondary = Some("2001:2::11/64".parse().unwrap());
        record.vxlan_mac = Some("02:aa:bb:cc:dd:01".parse().unwrap());
        record.subnets = vec![
            "10.244.1.0/24".parse().unwrap(),
            "fd00:10:244:1::/64".parse().unwrap(),
        ];
        let mut object = node();
        object["metadata"]["annotations"] = Value::Object(annotations_for(&record));
        assert!(has_weft_annotations(&object));
        assert_eq!(record_from_node(&object).unwrap(), record);
    }

    #[test]
    fn v6_only_and_legacy_pod_cidr() {
        let object = json!({"metadata": {"name": "n6"},
            "spec": {"podCIDR": "fd00:10:244:2::/64"},
            "status": {"addresses": [{"type": "InternalIP", "address": "2001:2::12"}]}});
        let r = record_from_node(&object).unwrap();
        assert!(r.underlay_ip.is_ipv6());
        assert_eq!(r.underlay_secondary, None);
        assert_eq!(
            r.subnets,
            vec!["fd00:10:244:2::/64".parse::<IpNet>().unwrap()]
        );
        let bare = json!({"metadata": {"name": "x"}, "status": {"addresses": []}});
        assert!(record_from_node(&bare).is_none());
    }

    #[test]
    fn apply_body_touches_only_annotations() {
        let record = NodeRecord::new("n", "198.18.0.11".parse().unwrap());
        let body = apply_body("n", annotations_for(&record));
        assert_eq!(body["metadata"]["annotations"], json!({}));
        assert!(body.get("spec").is_none() && body.get("status").is_none());
    }
}
