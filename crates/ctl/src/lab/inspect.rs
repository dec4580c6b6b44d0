//! `lab probe`, `lab matrix` and `lab status`.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result, bail};
use weft_datapath::{Netlink, NetnsFd, named_netns_path};

use super::agents::read_status;
use super::matrix::{Matrix, Source, Target, run_matrix};
use super::probe::{ProbeResult, describe, probe as run_probe};
use super::procs::is_alive;
use super::state::{LabPaths, LabState, PodState, Proto};

/// The bridge weft's plugin makes on each node; its address is the node's pod gateway.
pub const POD_BRIDGE: &str = "weft0";
/// Port of the responder each node runs.
pub const NODE_PORT: u16 = 80;

/// A resolved `namespace/pod` or `node/NAME`.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A pod.
    Pod(PodState),
    /// A node (by name) and its namespace name.
    Node(String, String),
}

impl Endpoint {
    /// Resolves a command-line name.
    pub fn resolve(state: &LabState, text: &str) -> Result<Endpoint> {
        let (first, second) = text
            .split_once('/')
            .with_context(|| format!("{text:?}: expected namespace/pod or node/NAME"))?;
        if first == "node"
            && let Some(node) = state.node(second)
        {
            return Ok(Endpoint::Node(node.name.clone(), node.netns.clone()));
        }
        match state.pod(first, second) {
            Some(pod) => Ok(Endpoint::Pod(pod.clone())),
            None => bail!("no pod {text} and no such node (see `weftctl lab status`)"),
        }
    }

    fn label(&self) -> String {
        match self {
            Endpoint::Pod(p) => p.key(),
            Endpoint::Node(name, _) => format!("node/{name}"),
        }
    }

    fn netns(&self) -> &str {
        match self {
            Endpoint::Pod(p) => &p.netns,
            Endpoint::Node(_, netns) => netns,
        }
    }
}

/// The address a probe aims at: a pod's IP, or a node's `weft0` address, of the family
/// asked for (IPv6 when `v6`).
fn target_ip(target: &Endpoint, v6: bool) -> Result<IpAddr> {
    let family = if v6 { "IPv6" } else { "IPv4" };
    match target {
        Endpoint::Pod(p) => p
            .ips
            .iter()
            .find(|ip| ip.is_ipv6() == v6)
            .copied()
            .with_context(|| format!("pod {} has no {family} address", p.key())),
        Endpoint::Node(name, netns) => {
            let ns = NetnsFd::open(named_netns_path(netns))?;
            let mut nl = Netlink::open_in(&ns)?;
            let bridge = nl
                .link_by_name(POD_BRIDGE)
                .with_context(|| format!("node {name} has no {POD_BRIDGE} yet (no pods?)"))?;
            let addrs = nl.addrs(Some(bridge.index), None)?;
            addrs
                .iter()
                .map(|a| a.addr.addr())
                .find(|ip| ip.is_ipv6() == v6 && !is_link_local(ip))
                .with_context(|| format!("{POD_BRIDGE} on {name} has no {family} address"))
        }
    }
}

/// Port and protocol to probe: as given, else the target's first declared port.
fn target_port(target: &Endpoint, port: Option<u16>, protocol: Option<Proto>) -> (u16, Proto) {
    let declared = match target {
        Endpoint::Pod(p) => p.ports.clone(),
        Endpoint::Node(..) => super::cmd::default_ports(),
    };
    match (port, protocol) {
        (Some(port), Some(proto)) => (port, proto),
        (Some(port), None) => {
            let proto = declared
                .iter()
                .find(|p| p.port == port)
                .map_or(Proto::Tcp, |p| p.protocol);
            (port, proto)
        }
        (None, Some(proto)) => {
            let port = declared
                .iter()
                .find(|p| p.protocol == proto)
                .map_or(NODE_PORT, |p| p.port);
            (port, proto)
        }
        (None, None) => declared
            .first()
            .map_or((NODE_PORT, Proto::Tcp), |p| (p.port, p.protocol)),
    }
}

/// `lab probe FROM TO`: prints the verdict; returns the result.
pub fn probe(
    paths: &LabPaths,
    from: &str,
    to: &str,
    port: Option<u16>,
    protocol: Option<Proto>,
    v6: bool,
) -> Result<ProbeResult> {
    let state = LabState::load(paths)?;
    let from = Endpoint::resolve(&state, from)?;
    let to = Endpoint::resolve(&state, to)?;
    let (port, proto) = target_port(&to, port, protocol);
    let target = SocketAddr::new(target_ip(&to, v6)?, port);
    let result = run_probe(&named_netns_path(from.netns()), target, proto)?;
    println!(
        "{} -> {}: {}",
        from.label(),
        to.label(),
        describe(&result, proto)
    );
    Ok(result)
}

/// `lab matrix`: every pod and node to every pod.
pub fn matrix(
    paths: &LabPaths,
    port: Option<u16>,
    protocol: Option<Proto>,
    v6: bool,
) -> Result<Matrix> {
    let state = LabState::load(paths)?;
    let mut sources: Vec<Source> = state
        .pods
        .iter()
        .map(|p| Source {
            label: p.key(),
            netns: named_netns_path(&p.netns),
        })
        .collect();
    sources.extend(state.nodes.iter().map(|n| Source {
        label: format!("node/{}", n.name),
        netns: named_netns_path(&n.netns),
    }));
    let mut targets = Vec::new();
    for pod in &state.pods {
        let endpoint = Endpoint::Pod(pod.clone());
        let (port, proto) = target_port(&endpoint, port, protocol);
        targets.push(Target {
            label: pod.key(),
            addr: SocketAddr::new(target_ip(&endpoint, v6)?, port),
            protocol: proto,
        });
    }
    Ok(run_matrix(&sources, &targets))
}

/// `lab status` as text.
pub fn status(paths: &LabPaths) -> Result<String> {
    let state = LabState::load(paths)?;
    let mut out = format!(
        "lab {} (prefix {}): backend {:?}, store {:?}, ipv6 {}\n",
        paths.dir.display(),
        state.prefix,
        state.backend,
        state.store,
        state.ipv6
    );
    if let Some(pid) = state.etcd_pid {
        out.push_str(&format!("etcd pid {pid} {}\n", alive_word(pid)));
    }
    out.push_str("NODE      UNDERLAY       WEFTD              HEALTHY  PEERS  SUBNETS\n");
    for node in &state.nodes {
        let status = read_status(paths, &node.name);
        let weftd = node
            .weftd_pid
            .map_or("-".into(), |pid| format!("{pid} {}", alive_word(pid)));
        let (healthy, peers, subnets) = match &status {
            Some(s) => (
                if s.healthy { "yes" } else { "NO" },
                s.peers.to_string(),
                s.subnets.join(","),
            ),
            None => ("?", "-".into(), "-".into()),
        };
        out.push_str(&format!(
            "{:<9} {:<14} {:<18} {:<8} {:<6} {}\n",
            node.name, node.underlay_ip, weftd, healthy, peers, subnets
        ));
        if let Some(p) = status.as_ref().and_then(|s| s.policy.as_ref()) {
            let state = if p.enabled { "on" } else { "off" };
            out.push_str(&format!(
                "          policy: {state}, store revision {} enforced{}\n",
                p.revision,
                p.error
                    .as_ref()
                    .map(|e| format!(", error: {e}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(e) = status.and_then(|s| s.error) {
            out.push_str(&format!("          error: {e}\n"));
        }
    }
    out.push_str("POD                          NODE      IPS                          PORTS\n");
    for pod in &state.pods {
        let ips: Vec<String> = pod.ips.iter().map(ToString::to_string).collect();
        out.push_str(&format!(
            "{:<28} {:<9} {:<28} {}\n",
            pod.key(),
            pod.node,
            ips.join(","),
            super::responder::format_ports(&pod.ports)
        ));
    }
    Ok(out)
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

fn alive_word(pid: u32) -> &'static str {
    if is_alive(pid) { "running" } else { "DEAD" }
}
