//! What a node publishes so the others can reach its pods.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;

/// One node as seen by the cluster: published by its agent, read by every other agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// Node name (Kubernetes node name or lab node name).
    pub name: String,
    /// Primary underlay address: the VXLAN tunnel endpoint and host-gw next hop.
    pub underlay_ip: IpAddr,
    /// Prefix length of the underlay network of `underlay_ip`; host-gw needs it to check
    /// that peers share the L2 segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay_prefix_len: Option<u8>,
    /// Underlay address of the other family (with its prefix length), used by host-gw
    /// as the next hop for subnets of that family in dual-stack clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay_secondary: Option<IpNet>,
    /// MAC address of the node's VXLAN device (vxlan backend only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mac: Option<MacAddr>,
    /// Pod subnets leased to this node (one per family).
    #[serde(default)]
    pub subnets: Vec<IpNet>,
    /// Fields written by newer agents survive a read-modify-write by older ones.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl NodeRecord {
    /// A record with just a name and underlay address.
    pub fn new(name: impl Into<String>, underlay_ip: IpAddr) -> Self {
        NodeRecord {
            name: name.into(),
            underlay_ip,
            underlay_prefix_len: None,
            underlay_secondary: None,
            vxlan_mac: None,
            subnets: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }

    /// The underlay network of the primary address, if its prefix length is known.
    pub fn underlay_net(&self) -> Option<IpNet> {
        let len = self.underlay_prefix_len?;
        IpNet::new(self.underlay_ip, len).ok().map(|n| n.trunc())
    }

    /// Underlay address and network (if known) of the given family (`v6` true for IPv6).
    pub(crate) fn underlay_of_family(&self, v6: bool) -> Option<(IpAddr, Option<IpNet>)> {
        if self.underlay_ip.is_ipv6() == v6 {
            return Some((self.underlay_ip, self.underlay_net()));
        }
        self.underlay_secondary
            .filter(|n| n.addr().is_ipv6() == v6)
            .map(|n| (n.addr(), Some(n.trunc())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_unknown_fields() {
        let j = r#"{"name":"n1","underlayIp":"198.18.0.2","underlayPrefixLen":15,
            "vxlanMac":"02:00:00:00:00:01","subnets":["10.244.1.0/24"],"zone":"a"}"#;
        let r: NodeRecord = serde_json::from_str(j).unwrap();
        assert_eq!(r.underlay_net(), Some("198.18.0.0/15".parse().unwrap()));
        assert_eq!(r.extra.get("zone").unwrap(), "a");
        let back: NodeRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn minimal_record() {
        let r: NodeRecord = serde_json::from_str(r#"{"name":"n","underlayIp":"fd00::1"}"#).unwrap();
        assert_eq!(r, NodeRecord::new("n", "fd00::1".parse().unwrap()));
        assert_eq!(r.underlay_of_family(false), None);
        assert_eq!(
            r.underlay_of_family(true).unwrap().0,
            "fd00::1".parse::<IpAddr>().unwrap()
        );
    }
}
