//! The reference path, built by hand through netlink in namespaces of its own: the same
//! underlay as the lab (a fabric bridge, one node namespace per node), a pod behind a veth
//! on a bridge in each node, and between the nodes either a VXLAN device with static FDB +
//! neighbour entries and onlink routes, or plain routes via the peer's underlay address.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use weft_ctl::lab::fabric::{UNDERLAY_IFACE, create_fabric, create_node, node_underlay_ip};
use weft_datapath::{
    Netlink, NetnsFd, RouteSpec, VethSpec, VxlanSpec, create_named_netns, delete_named_netns,
    named_netns_path, run_in_netns,
};

/// Which inter-node path to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// VXLAN with static FDB + neighbour entries.
    Vxlan,
    /// Routes via the peer's underlay address.
    HostGw,
}

impl Backend {
    /// Name as weft spells it.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
        }
    }
}

/// The lab's underlay MTU (veth default).
const UNDERLAY_MTU: u32 = 1500;
/// VXLAN over IPv4 overhead.
const VXLAN_OVERHEAD: u32 = 50;
const VNI: u32 = 1;
const VXLAN_PORT: u16 = 4789;
const POD_BRIDGE: &str = "cni0";
const VXLAN_DEV: &str = "vx0";

/// Pod subnet of node `i` (1-based).
fn pod_subnet(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, i, 0)
}

/// MAC of node `i`'s VXLAN device (locally administered).
fn vtep_mac(i: u8) -> [u8; 6] {
    [0x02, 0x42, 0, 0, 0, i]
}

/// Two nodes with one pod each; every namespace is deleted on drop.
pub struct HandCluster {
    names: Vec<String>,
    /// Pod namespaces and addresses, node 1 then node 2.
    pub pods: Vec<(PathBuf, Ipv4Addr)>,
}

impl HandCluster {
    /// Builds the path; namespaces are named `<prefix>-*`.
    /// With `masquerade`, each node also gets weft's rule (a `nat` postrouting chain that
    /// masquerades pod traffic leaving the cluster CIDR): it never matches pod-to-pod
    /// traffic, but a nat hook makes conntrack track every packet, which is weft's cost.
    pub fn build(prefix: &str, backend: Backend, masquerade: bool) -> Result<HandCluster> {
        let mut cluster = HandCluster {
            names: Vec::new(),
            pods: Vec::new(),
        };
        let fabric = format!("{prefix}-fabric");
        cluster.names.push(fabric.clone());
        create_fabric(&fabric, false).context("hand-built fabric")?;
        let mtu = match backend {
            Backend::Vxlan => UNDERLAY_MTU - VXLAN_OVERHEAD,
            Backend::HostGw => UNDERLAY_MTU,
        };
        for i in 1..=2u8 {
            let node = format!("{prefix}-node{i}");
            cluster.names.push(node.clone());
            create_node(
                &fabric,
                &node,
                &format!("node{i}"),
                node_underlay_ip(i),
                None,
            )
            .with_context(|| format!("hand-built node {i}"))?;
            let pod = format!("{prefix}-pod{i}");
            cluster.names.push(pod.clone());
            let ip = add_pod(&node, &pod, i, mtu)?;
            cluster.pods.push((named_netns_path(&pod), ip));
            let peer = 3 - i;
            let ns = NetnsFd::open(named_netns_path(&node))?;
            let mut nl = Netlink::open_in(&ns)?;
            match backend {
                Backend::Vxlan => vxlan_to_peer(&mut nl, i, peer, mtu)?,
                Backend::HostGw => host_gw_to_peer(&mut nl, peer)?,
            }
            if masquerade {
                add_masquerade(&ns, i)?;
            }
        }
        Ok(cluster)
    }
}

impl Drop for HandCluster {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            if let Err(e) = delete_named_netns(name) {
                eprintln!("warning: delete namespace {name}: {e}");
            }
        }
    }
}

/// A pod namespace behind a veth on the node's bridge, gateway `.1` on the bridge.
fn add_pod(node: &str, pod: &str, i: u8, mtu: u32) -> Result<Ipv4Addr> {
    let node_ns = NetnsFd::open(named_netns_path(node))?;
    let pod_ns = NetnsFd::open(create_named_netns(pod)?)?;
    let mut nl = Netlink::open_in(&node_ns)?;
    let gateway = Ipv4Addr::new(10, 244, i, 1);
    let pod_ip = Ipv4Addr::new(10, 244, i, 2);
    let bridge = nl.create_bridge(POD_BRIDGE, Some(mtu))?;
    nl.add_addr(bridge.index, IpNet::new(gateway.into(), 24)?, false)?;
    nl.set_up(bridge.index, true)?;
    let host = nl.create_veth(&VethSpec {
        name: "vethpod",
        peer_name: "eth0",
        peer_netns: Some(&pod_ns),
        mtu: Some(mtu),
        mac: None,
        peer_mac: None,
        group: None,
    })?;
    nl.set_master(host.index, Some(bridge.index))?;
    nl.set_up(host.index, true)?;

    let mut pnl = Netlink::open_in(&pod_ns)?;
    let lo = pnl.link_by_name("lo")?;
    pnl.set_up(lo.index, true)?;
    let eth0 = pnl.link_by_name("eth0")?;
    pnl.add_addr(eth0.index, IpNet::new(pod_ip.into(), 24)?, false)?;
    pnl.set_up(eth0.index, true)?;
    let mut default = RouteSpec::to(IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0)?);
    default.gateway = Some(gateway.into());
    default.oif = Some(eth0.index);
    pnl.add_route(&default)?;
    // bridge-nf-call-* keeps the namespace default, as in the lab's nodes.
    Ok(pod_ip)
}

/// Flannel-style VXLAN: the device owns `<subnet>.0/32`; the peer subnet is routed onlink
/// via the peer's `.0`, resolved by a static neighbour to the peer VTEP MAC, whose FDB
/// entry points at the peer's underlay address.
fn vxlan_to_peer(nl: &mut Netlink, me: u8, peer: u8, mtu: u32) -> Result<()> {
    let underlay = nl.link_by_name(UNDERLAY_IFACE)?;
    let dev = nl.create_vxlan(&VxlanSpec {
        name: VXLAN_DEV,
        vni: VNI,
        local: Some(node_underlay_ip(me).into()),
        port: VXLAN_PORT,
        learning: false,
        underlay: Some(underlay.index),
        mtu: Some(mtu),
        mac: Some(vtep_mac(me)),
    })?;
    nl.add_addr(dev.index, IpNet::new(pod_subnet(me).into(), 32)?, false)?;
    nl.set_up(dev.index, true)?;
    let peer_vtep: IpAddr = pod_subnet(peer).into();
    nl.add_fdb(dev.index, vtep_mac(peer), node_underlay_ip(peer).into())?;
    nl.add_neighbour(dev.index, peer_vtep, vtep_mac(peer))?;
    let mut route = RouteSpec::to(IpNet::new(pod_subnet(peer).into(), 24)?);
    route.gateway = Some(peer_vtep);
    route.oif = Some(dev.index);
    route.onlink = true;
    nl.add_route(&route)?;
    Ok(())
}

fn host_gw_to_peer(nl: &mut Netlink, peer: u8) -> Result<()> {
    let underlay = nl.link_by_name(UNDERLAY_IFACE)?;
    let mut route = RouteSpec::to(IpNet::new(pod_subnet(peer).into(), 24)?);
    route.gateway = Some(node_underlay_ip(peer).into());
    route.oif = Some(underlay.index);
    nl.add_route(&route)?;
    Ok(())
}

/// The masquerade rule as nft text for node `i`.
pub fn masquerade_ruleset(i: u8) -> String {
    format!(
        "table inet bench_masq {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr {}/24 ip daddr != 10.244.0.0/16 masquerade\n  }}\n}}\n",
        pod_subnet(i)
    )
}

fn add_masquerade(ns: &NetnsFd, i: u8) -> Result<()> {
    let rules = masquerade_ruleset(i);
    let status = run_in_netns(ns, || -> std::io::Result<std::process::ExitStatus> {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(rules.as_bytes())?;
        }
        child.wait()
    })?
    .context("run nft")?;
    if !status.success() {
        bail!("nft -f - failed for the masquerade rule: {status}");
    }
    Ok(())
}
