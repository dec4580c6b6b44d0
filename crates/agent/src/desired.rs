//! Pure desired-state computation: what the node should look like, given the cluster
//! config, this node's facts and the peers read from the datastore. No I/O here.

use std::net::IpAddr;

use ipnet::IpNet;
use weft_cluster::{ClusterConfig, NodePlan, NodeRecord, PlanError, VxlanDevicePlan, plan_routes};

/// The bridge pods are attached to (the plugin's `bridge` in the conflist).
pub const BRIDGE: &str = "weft0";
/// The nftables table weftd owns (family `inet`).
pub const NFT_TABLE: &str = "weft_cluster";
/// Route protocol number marking routes weftd programmed (unused by iproute2's list), so
/// only those are adopted, compared and removed.
pub const ROUTE_PROTO: u8 = 87;

/// Everything local to this node that does not depend on peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSetup {
    /// Gateway addresses on [`BRIDGE`]: the first host of each pod subnet.
    pub bridge_addresses: Vec<IpNet>,
    /// MTU of the bridge at creation (the pod MTU).
    pub pod_mtu: u32,
    /// The VXLAN device (vxlan backend only).
    pub vxlan: Option<VxlanDevicePlan>,
    /// Underlay interface index (VXLAN `dev`).
    pub underlay_index: u32,
    /// Enable IPv6 forwarding: only for clusters with an IPv6 CIDR, because forwarding
    /// makes the kernel ignore router advertisements (accept_ra=1) on every interface.
    pub forward_v6: bool,
    /// The nft script replacing the masquerade table.
    pub masquerade_script: String,
}

/// The gateway address of a pod subnet: its first host, with the subnet's prefix length.
pub fn gateway_address(subnet: &IpNet) -> Option<IpNet> {
    let next = match subnet.network() {
        IpAddr::V4(a) => IpAddr::from(u32::from(a).checked_add(1)?.to_be_bytes()),
        IpAddr::V6(a) => IpAddr::from(u128::from(a).checked_add(1)?.to_be_bytes()),
    };
    let gw = IpNet::new(next, subnet.prefix_len()).ok()?;
    subnet.contains(&next).then_some(gw)
}

/// The node's local setup for its subnets.
pub fn local_setup(
    cfg: &ClusterConfig,
    local: &NodeRecord,
    pod_mtu: u32,
    underlay_index: u32,
) -> Result<LocalSetup, PlanError> {
    // Planning without peers yields just the local VXLAN device (validates the config too).
    let alone = plan_routes(local, &[], cfg)?;
    Ok(LocalSetup {
        bridge_addresses: local.subnets.iter().filter_map(gateway_address).collect(),
        pod_mtu,
        vxlan: alone.vxlan_device,
        underlay_index,
        forward_v6: cfg.cluster_cidrs.iter().any(|c| c.addr().is_ipv6()),
        masquerade_script: masquerade_ruleset(cfg, &local.subnets),
    })
}

/// What the VXLAN device was created with, kept in its alias: the kernel does not report
/// VNI, port or local address back through the datapath crate, so a changed config is
/// detected by comparing this text.
pub fn vxlan_identity(dev: &VxlanDevicePlan) -> String {
    format!("weft vni={} port={} local={}", dev.vni, dev.port, dev.local)
}

/// Routes, neighbours and FDB entries towards `peers`, plus human-readable rejections.
pub fn peer_plan(
    cfg: &ClusterConfig,
    local: &NodeRecord,
    peers: &[NodeRecord],
) -> Result<(NodePlan, Vec<String>), PlanError> {
    let plan = plan_routes(local, peers, cfg)?;
    let rejected = plan
        .rejected
        .iter()
        .map(|r| format!("peer {} refused: {}", r.node, r.error))
        .collect();
    Ok((plan, rejected))
}

/// The whole `inet weft_cluster` table as one nft script that replaces any previous
/// version atomically (the empty `table` line makes the `delete` valid on first use).
///
/// Only traffic from this node's pod subnets to destinations outside every cluster CIDR
/// is masqueraded, so pod↔pod (any node) keeps its source address and node→pod traffic
/// (source: a node address) is never touched.
pub fn masquerade_ruleset(cfg: &ClusterConfig, local_subnets: &[IpNet]) -> String {
    let mut rules = Vec::new();
    for subnet in local_subnets {
        let (family, v6) = match subnet {
            IpNet::V4(_) => ("ip", false),
            IpNet::V6(_) => ("ip6", true),
        };
        let cluster: Vec<String> = cfg
            .cluster_cidrs
            .iter()
            .filter(|c| c.addr().is_ipv6() == v6)
            .map(|c| c.trunc().to_string())
            .collect();
        if cluster.is_empty() {
            continue;
        }
        rules.push(format!(
            "\t\t{family} saddr {} {family} daddr != {{ {} }} masquerade",
            subnet.trunc(),
            cluster.join(", ")
        ));
    }
    let mut script = format!("table inet {NFT_TABLE} {{}}\ndelete table inet {NFT_TABLE}\n");
    script.push_str(&format!("table inet {NFT_TABLE} {{\n"));
    script.push_str("\tchain weft_postrouting {\n");
    script.push_str("\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
    for rule in rules {
        script.push_str(&rule);
        script.push('\n');
    }
    script.push_str("\t}\n}\n");
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_cluster::{Backend, MacAddr};

    fn cfg(json: &str) -> ClusterConfig {
        serde_json::from_str(json).unwrap()
    }

    fn node(name: &str, ip: &str, subnets: &[&str], mac: u8) -> NodeRecord {
        let mut r = NodeRecord::new(name, ip.parse().unwrap());
        r.underlay_prefix_len = Some(24);
        r.vxlan_mac = Some(MacAddr([2, 0, 0, 0, 0, mac]));
        r.subnets = subnets.iter().map(|s| s.parse().unwrap()).collect();
        r
    }

    #[test]
    fn gateway_is_first_host() {
        let gw = |s: &str| gateway_address(&s.parse().unwrap()).map(|g| g.to_string());
        assert_eq!(gw("10.244.3.0/24").unwrap(), "10.244.3.1/24");
        assert_eq!(gw("fd00:10:244:3::/64").unwrap(), "fd00:10:244:3::1/64");
        assert_eq!(gw("10.0.0.0/32"), None);
    }

    #[test]
    fn masquerade_only_leaving_cluster() {
        let c = cfg(r#"{"clusterCidrs":["10.244.0.0/16","fd00:10:244::/56"]}"#);
        let s = masquerade_ruleset(
            &c,
            &[
                "10.244.1.0/24".parse().unwrap(),
                "fd00:10:244:1::/64".parse().unwrap(),
            ],
        );
        assert!(s.starts_with("table inet weft_cluster {}\ndelete table inet weft_cluster\n"));
        assert!(s.contains("ip saddr 10.244.1.0/24 ip daddr != { 10.244.0.0/16 } masquerade"));
        assert!(
            s.contains("ip6 saddr fd00:10:244:1::/64 ip6 daddr != { fd00:10:244::/56 } masquerade")
        );
        assert_eq!(s.matches("masquerade").count(), 2);
    }

    #[test]
    fn local_setup_vxlan_and_host_gw() {
        let local = node("a", "198.18.0.10", &["10.244.0.0/24"], 1);
        let vx = cfg(r#"{"clusterCidrs":["10.244.0.0/16"]}"#);
        let setup = local_setup(&vx, &local, 1450, 2).unwrap();
        assert_eq!(
            setup.bridge_addresses,
            vec!["10.244.0.1/24".parse().unwrap()]
        );
        let dev = setup.vxlan.unwrap();
        assert_eq!(dev.addresses, vec!["10.244.0.0/32".parse().unwrap()]);
        assert_eq!((dev.vni, dev.port), (1, 4789));
        assert_eq!(
            vxlan_identity(&dev),
            "weft vni=1 port=4789 local=198.18.0.10"
        );
        let gw = cfg(r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"host-gw"}}"#);
        assert_eq!(gw.backend, Backend::HostGw);
        assert!(local_setup(&gw, &local, 1500, 2).unwrap().vxlan.is_none());
    }

    #[test]
    fn host_gw_refuses_other_segment() {
        let c = cfg(r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"host-gw"}}"#);
        let local = node("a", "198.18.0.10", &["10.244.0.0/24"], 1);
        let near = node("b", "198.18.0.11", &["10.244.1.0/24"], 2);
        let far = node("c", "198.19.5.1", &["10.244.2.0/24"], 3);
        let (plan, rejected) = peer_plan(&c, &local, &[near, far]).unwrap();
        assert_eq!(plan.routes.len(), 1);
        assert_eq!(plan.routes[0].via, "198.18.0.11".parse::<IpAddr>().unwrap());
        assert_eq!(rejected.len(), 1);
        assert!(rejected[0].starts_with("peer c refused"), "{rejected:?}");
    }
}
