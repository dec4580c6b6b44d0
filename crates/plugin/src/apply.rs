//! The executor: carries an `AttachmentPlan` out through netlink, and undoes it.
//!
//! Each step is an `ensure`: it tolerates finding its work already done (EEXIST), so a
//! repeated ADD converges on the same state instead of failing halfway.

use std::net::IpAddr;

use ipnet::IpNet;
use weft_datapath::netlink::{
    BridgePortFlags, LinkInfo, Mac, Netlink, RouteScopeKind, RouteSpec, VethSpec, VethStart,
};
use weft_datapath::{DatapathError, NetnsFd};

use crate::error::PluginError;
use crate::naming::{self, HOST_VETH_GROUP};
use crate::plan::{AttachmentPlan, BridgePlan, PlannedRoute};

/// The links an applied plan produced, for the result.
#[derive(Debug, Clone)]
pub struct Wired {
    /// The bridge (bridge mode).
    pub bridge: Option<LinkInfo>,
    /// The host end of the veth.
    pub host: LinkInfo,
    /// The pod end of the veth (in the pod namespace).
    pub pod: LinkInfo,
}

fn dp(context: impl Into<String>) -> impl FnOnce(DatapathError) -> PluginError {
    let context = context.into();
    move |e| PluginError::datapath(context, e)
}

/// Tolerates "already exists" for idempotent creates.
fn ensure(r: Result<(), DatapathError>) -> Result<(), DatapathError> {
    match r {
        Err(e) if e.is_exists() => Ok(()),
        other => other,
    }
}

/// Makes sure the bridge exists, is up, and carries the gateway addresses.
pub fn ensure_bridge(node: &mut Netlink, b: &BridgePlan) -> Result<LinkInfo, PluginError> {
    let link = match node
        .find_link(&b.name)
        .map_err(dp(format!("look up bridge {}", b.name)))?
    {
        Some(l) if l.kind.as_deref() != Some("bridge") => {
            return Err(PluginError::config(format!(
                "{} exists but is not a bridge (kind {:?})",
                b.name, l.kind
            )));
        }
        Some(l) => l,
        None => match node.create_bridge(&b.name, b.mtu) {
            Ok(l) => l,
            // Another ADD created it in the meantime.
            Err(e) if e.is_exists() => node.link_by_name(&b.name).map_err(dp("look up bridge"))?,
            Err(e) => {
                return Err(PluginError::datapath(
                    format!("create bridge {}", b.name),
                    e,
                ));
            }
        },
    };
    if !link.up {
        node.set_up(link.index, true).map_err(dp("set bridge up"))?;
    }
    if b.promisc && !link.promisc {
        node.set_promisc(link.index, true)
            .map_err(dp("set bridge promisc"))?;
    }
    for gw in &b.gateway_addrs {
        ensure_gateway_addr(node, &link, *gw, b.force_address)?;
    }
    Ok(link)
}

/// The reference rule: a bridge may carry many IPv6 addresses, but an IPv4 address in the
/// gateway's subnet that is not the gateway is a conflict unless `forceAddress`.
fn ensure_gateway_addr(
    node: &mut Netlink,
    bridge: &LinkInfo,
    gw: IpNet,
    force: bool,
) -> Result<(), PluginError> {
    let existing = node
        .addrs(Some(bridge.index), None)
        .map_err(dp("list bridge addresses"))?;
    if existing.iter().any(|a| a.addr == gw) {
        return Ok(());
    }
    if gw.addr().is_ipv4() {
        for a in existing.iter().filter(|a| a.addr.addr().is_ipv4()) {
            if a.addr.contains(&gw.addr()) || gw.contains(&a.addr.addr()) {
                if !force {
                    return Err(PluginError::config(format!(
                        "bridge {} already has IPv4 address {} (wanted {gw}); set forceAddress to replace it",
                        bridge.name, a.addr
                    )));
                }
                node.delete_addr(bridge.index, a.addr)
                    .map_err(dp("remove old bridge address"))?;
            }
        }
    }
    ensure(node.add_addr(bridge.index, gw, true)).map_err(dp(format!("add {gw} to bridge")))
}

/// A veth pair ready for the rest of the plan.
#[derive(Debug)]
pub struct VethPair {
    /// The host end.
    pub host: LinkInfo,
    /// The pod end.
    pub pod: LinkInfo,
    /// Created by this call with [`VethStart`] applied (else adopted from an earlier ADD).
    pub fresh: bool,
}

/// Creates the veth pair with its peer directly in the pod namespace, or adopts the pair a
/// previous ADD of the same attachment made.
///
/// Creation is tried first: a new pod is the common case, and looking both names up
/// before creating costs two round trips per pod. "Exists" falls back to the lookups.
pub fn ensure_veth(
    node: &mut Netlink,
    pod: &mut Netlink,
    pod_ns: &NetnsFd,
    plan: &AttachmentPlan,
    mac: Option<Mac>,
    start: VethStart,
) -> Result<VethPair, PluginError> {
    let spec = VethSpec {
        name: &plan.host_veth,
        peer_name: &plan.pod_ifname,
        peer_netns: Some(pod_ns),
        mtu: plan.mtu,
        mac: None,
        peer_mac: mac,
        group: Some(HOST_VETH_GROUP),
    };
    let create = |node: &mut Netlink| {
        node.create_veth_started(&spec, start)
            .map_err(dp(format!("create veth {}", plan.host_veth)))
    };
    match node.create_veth_started(&spec, start) {
        Ok(()) => {}
        Err(e) if e.is_exists() => {
            if let Some(adopted) = adopt_existing(node, pod, plan)? {
                return Ok(adopted);
            }
            create(node)?;
        }
        Err(e) => {
            return Err(PluginError::datapath(
                format!("create veth {}", plan.host_veth),
                e,
            ));
        }
    }
    let mut host = node
        .link_by_name(&plan.host_veth)
        .map_err(dp("look up new host veth"))?;
    node.set_alias(host.index, &plan.alias)
        .map_err(dp("set host veth alias"))?;
    host.alias = Some(plan.alias.clone());
    let pod_link = pod
        .link_by_name(&plan.pod_ifname)
        .map_err(dp("look up new pod interface"))?;
    Ok(VethPair {
        host,
        pod: pod_link,
        fresh: true,
    })
}

/// A name was taken: this attachment's pair from an earlier ADD (adopted), a stale host end
/// whose namespace is gone (removed, `None`: create again), or someone else's interface.
fn adopt_existing(
    node: &mut Netlink,
    pod: &mut Netlink,
    plan: &AttachmentPlan,
) -> Result<Option<VethPair>, PluginError> {
    let existing_pod = pod
        .find_link(&plan.pod_ifname)
        .map_err(dp("look up pod interface"))?;
    let existing_host = node
        .find_link(&plan.host_veth)
        .map_err(dp("look up host veth"))?;
    let adopted = |host, pod| {
        Ok(Some(VethPair {
            host,
            pod,
            fresh: false,
        }))
    };
    match (existing_host, existing_pod) {
        (Some(h), Some(p))
            if h.alias.as_deref() == Some(plan.alias.as_str()) && p.link == Some(h.index) =>
        {
            adopted(h, p)
        }
        // Our pair from an ADD killed before it wrote the alias: finish it.
        (Some(mut h), Some(p))
            if h.alias.is_none() && h.group == HOST_VETH_GROUP && p.link == Some(h.index) =>
        {
            node.set_alias(h.index, &plan.alias)
                .map_err(dp("set host veth alias"))?;
            h.alias = Some(plan.alias.clone());
            adopted(h, p)
        }
        // A pair a DEL of this attachment retired and whose detached delete has not run
        // yet: delete it now rather than fail or adopt a dying pair.
        (Some(h), _)
            if h.alias.as_deref() == Some(naming::retired_alias_of(&plan.alias).as_str()) =>
        {
            node.delete_link(h.index)
                .map_err(dp("remove retired host veth"))?;
            Ok(None)
        }
        // The pod end of another attachment's retired pair (a DEL then an ADD with another
        // container id into the same namespace, faster than the detached delete).
        (_, Some(p)) if retired_peer(node, &p)? => Ok(None),
        (_, Some(p)) => Err(PluginError::InterfaceExists(format!(
            "interface {} already exists in the pod namespace (index {}) and is not this attachment's",
            plan.pod_ifname, p.index
        ))),
        // A host end left from an attachment whose namespace is gone: replace it.
        (Some(h), None) => {
            node.delete_link(h.index)
                .map_err(dp("remove stale host veth"))?;
            Ok(None)
        }
        // Gone in the meantime (a concurrent DEL): create again.
        (None, None) => Ok(None),
    }
}

/// Deletes the pair of `pod_end` when its host end is a retired weft veth (found by the
/// peer index, and only if that link points back at `pod_end`).
fn retired_peer(node: &mut Netlink, pod_end: &LinkInfo) -> Result<bool, PluginError> {
    let Some(peer) = pod_end.link else {
        return Ok(false);
    };
    let host = match node.link_by_index(peer) {
        Ok(h) => h,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(PluginError::datapath("look up pod interface's peer", e)),
    };
    let retired = host
        .alias
        .as_deref()
        .is_some_and(|a| a.starts_with(naming::RETIRED_ALIAS_PREFIX));
    if !retired || host.group != HOST_VETH_GROUP || host.link != Some(pod_end.index) {
        return Ok(false);
    }
    node.delete_link(host.index)
        .map_err(dp("remove retired host veth"))?;
    Ok(true)
}

/// The kernel route for a planned pod route on interface `oif`.
pub(crate) fn route_spec(r: &PlannedRoute, oif: u32) -> RouteSpec {
    let mut spec = RouteSpec::to(r.dst);
    spec.gateway = r.via;
    spec.oif = Some(oif);
    if r.via.is_none() {
        spec.scope = RouteScopeKind::Link;
    }
    spec
}

/// A link-scoped route to `dst` on interface `oif` (ptp host routes).
pub(crate) fn host_route(dst: IpNet, oif: u32) -> RouteSpec {
    let mut spec = RouteSpec::to(dst);
    spec.oif = Some(oif);
    spec.scope = RouteScopeKind::Link;
    spec
}

/// Carries the whole plan out. The caller undoes it with [`undo`] on error.
///
/// A fresh pair is created enslaved and up (the kernel's defaults cover the rest of the
/// bridge port), so the common ADD makes no follow-up link changes and reads nothing back:
/// the MACs and indexes read right after creation do not change.
pub fn apply(
    plan: &AttachmentPlan,
    node: &mut Netlink,
    pod: &mut Netlink,
    pod_ns: &NetnsFd,
    mac: Option<Mac>,
) -> Result<Wired, PluginError> {
    let bridge = plan
        .bridge
        .as_ref()
        .map(|b| ensure_bridge(node, b))
        .transpose()?;
    let has_v6 = plan.pod_addrs.iter().any(|a| a.addr().is_ipv6());
    let start = VethStart {
        master: bridge.as_ref().map(|b| b.index),
        // DAD must be off on the host end before it comes up (see `sysctl::disable_dad`).
        up: !has_v6,
    };
    let VethPair {
        mut host,
        pod: mut pod_link,
        fresh,
    } = ensure_veth(node, pod, pod_ns, plan, mac, start)?;
    if let Some(b) = &bridge {
        if host.master != Some(b.index) {
            node.set_master(host.index, Some(b.index))
                .map_err(dp("attach veth to bridge"))?;
            host.master = Some(b.index);
        }
        // A new port starts with hairpin off; an adopted one may differ.
        if plan.hairpin || !fresh {
            let flags = BridgePortFlags {
                hairpin: Some(plan.hairpin),
                learning: None,
            };
            node.set_bridge_port(host.index, flags)
                .map_err(dp("set bridge port flags"))?;
        }
    }
    for a in &plan.host_addrs {
        ensure(node.add_addr(host.index, *a, true)).map_err(dp(format!("add {a} to host veth")))?;
    }
    if has_v6 {
        crate::sysctl::disable_dad(&host.name)?;
    }
    if !host.up {
        node.set_up(host.index, true)
            .map_err(dp("set host veth up"))?;
        host.up = true;
    }

    for a in &plan.pod_addrs {
        ensure(pod.add_addr(pod_link.index, *a, true)).map_err(dp(format!("add {a} in pod")))?;
    }
    if !pod_link.up {
        pod.set_up(pod_link.index, true)
            .map_err(dp("set pod interface up"))?;
        pod_link.up = true;
    }
    if plan.bridge.is_none() {
        // ptp: the pod reaches its subnet through the gateway, not on the link, so the
        // kernel's automatic prefix route must go (the plan adds `subnet via gw` instead).
        for a in &plan.pod_addrs {
            pod.delete_route(&host_route(a.trunc(), pod_link.index))
                .map_err(dp("remove prefix route"))?;
        }
    }
    for r in &plan.pod_routes {
        ensure(pod.add_route(&route_spec(r, pod_link.index)))
            .map_err(dp(format!("add route {} in pod", r.dst)))?;
    }
    for dst in &plan.host_routes {
        ensure(node.add_route(&host_route(*dst, host.index)))
            .map_err(dp(format!("add host route {dst}")))?;
    }
    Ok(Wired {
        bridge,
        host,
        pod: pod_link,
    })
}

/// Removes the pair (deleting either end deletes both). Missing is success.
pub fn undo(node: &mut Netlink, plan: &AttachmentPlan) -> Result<(), PluginError> {
    match node
        .find_link(&plan.host_veth)
        .map_err(dp("look up host veth"))?
    {
        Some(h) if h.alias.as_deref().is_none_or(|a| a == plan.alias) => {
            node.delete_link(h.index).map_err(dp("delete host veth"))?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Addresses as plain IPs (for masquerade cleanup).
pub fn ips_of(nets: &[IpNet]) -> Vec<IpAddr> {
    nets.iter().map(IpNet::addr).collect()
}
