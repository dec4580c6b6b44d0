//! The underlay: a fabric namespace with a bridge, and node namespaces attached to it by
//! veth pairs whose node end is created directly in the node namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result};
use ipnet::IpNet;
use weft_datapath::{Netlink, NetnsFd, VethSpec, create_named_netns, named_netns_path, sysctl};

/// Fabric bridge name (inside the fabric namespace).
pub const FABRIC_BRIDGE: &str = "br0";
/// The fabric bridge's address (etcd listens here).
pub const FABRIC_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Underlay prefix length.
pub const UNDERLAY_PREFIX: u8 = 24;
/// The fabric bridge's IPv6 address with `--ipv6` (2001:2::/48 is the IPv6 benchmarking
/// range, RFC 5180, the counterpart of 198.18.0.0/15).
pub const FABRIC_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
/// IPv6 underlay prefix length.
pub const UNDERLAY_PREFIX6: u8 = 64;
/// Underlay interface name inside a node namespace.
pub const UNDERLAY_IFACE: &str = "eth0";

/// Underlay address of node `index` (1-based): 198.18.0.(10+index).
pub fn node_underlay_ip(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 10u8.saturating_add(index))
}

/// IPv6 underlay address of node `index` (1-based): 2001:2::(10+index).
pub fn node_underlay_ip6(index: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 10u16.saturating_add(index.into()))
}

/// Creates the fabric namespace with `lo` up and the bridge carrying 198.18.0.1/24 (and
/// 2001:2::1/64 with `ip6`).
pub fn create_fabric(netns_name: &str, ip6: bool) -> Result<()> {
    let path = create_named_netns(netns_name).with_context(|| format!("create {netns_name}"))?;
    let ns = NetnsFd::open(&path)?;
    let mut nl = Netlink::open_in(&ns)?;
    set_lo_up(&mut nl)?;
    let bridge = nl.create_bridge(FABRIC_BRIDGE, None)?;
    nl.add_addr(bridge.index, host_net(IpAddr::V4(FABRIC_IP))?, false)?;
    if ip6 {
        nl.add_addr(
            bridge.index,
            IpNet::new(FABRIC_IP6.into(), UNDERLAY_PREFIX6)?,
            true,
        )?;
    }
    nl.set_up(bridge.index, true)?;
    // Bridged underlay frames must not be sent through a host firewall (br_netfilter);
    // the key only exists when that module is loaded.
    let _ = sysctl::write_sysctl(Some(&ns), "net/bridge/bridge-nf-call-iptables", "0");
    Ok(())
}

/// Creates a node namespace: `lo` up, `eth0` with its underlay address, plugged into the
/// fabric bridge, forwarding on. `ip6` adds an IPv6 underlay address (host-gw needs one
/// per pod address family).
pub fn create_node(
    fabric_netns: &str,
    node_netns: &str,
    node: &str,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
) -> Result<()> {
    let node_path =
        create_named_netns(node_netns).with_context(|| format!("create {node_netns}"))?;
    let node_ns = NetnsFd::open(&node_path)?;
    let fabric_ns = NetnsFd::open(named_netns_path(fabric_netns))?;
    let mut fabric = Netlink::open_in(&fabric_ns)?;
    let bridge = fabric.link_by_name(FABRIC_BRIDGE)?;
    let port_name = fabric_port_name(node);
    let port = fabric.create_veth(&VethSpec {
        name: &port_name,
        peer_name: UNDERLAY_IFACE,
        peer_netns: Some(&node_ns),
        mtu: None,
        mac: None,
        peer_mac: None,
        group: None,
    })?;
    fabric.set_master(port.index, Some(bridge.index))?;
    fabric.set_up(port.index, true)?;

    let mut nl = Netlink::open_in(&node_ns)?;
    set_lo_up(&mut nl)?;
    let eth0 = nl.link_by_name(UNDERLAY_IFACE)?;
    nl.add_addr(eth0.index, host_net(IpAddr::V4(ip))?, false)?;
    if let Some(ip6) = ip6 {
        // nodad: a tentative address cannot be used for ~1 s, and weftd reads it at start.
        nl.add_addr(eth0.index, IpNet::new(ip6.into(), UNDERLAY_PREFIX6)?, true)?;
    }
    nl.set_up(eth0.index, true)?;
    // A node routes between its pods and the underlay; weftd relies on forwarding being on.
    sysctl::write_sysctl(Some(&node_ns), "net/ipv4/ip_forward", "1")?;
    let _ = sysctl::write_sysctl(Some(&node_ns), "net/ipv6/conf/all/forwarding", "1");
    Ok(())
}

/// Name of a node's veth end on the fabric bridge (≤ 15 bytes).
pub fn fabric_port_name(node: &str) -> String {
    let mut name = format!("v-{node}");
    name.truncate(15);
    name
}

/// Sets `lo` up in the namespace of `nl`.
pub fn set_lo_up(nl: &mut Netlink) -> Result<()> {
    let lo = nl.link_by_name("lo")?;
    nl.set_up(lo.index, true)?;
    Ok(())
}

fn host_net(ip: IpAddr) -> Result<IpNet> {
    Ok(IpNet::new(ip, UNDERLAY_PREFIX)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underlay_plan() {
        assert_eq!(node_underlay_ip(1), Ipv4Addr::new(198, 18, 0, 11));
        assert_eq!(fabric_port_name("node1"), "v-node1");
        assert_eq!(node_underlay_ip6(2).to_string(), "2001:2::c");
        assert!(fabric_port_name("a-very-long-node-name").len() <= 15);
    }
}
