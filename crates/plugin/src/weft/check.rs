//! CHECK: the attachment still looks the way ADD left it (per `prevResult`): pod interface,
//! addresses, routes, host veth and its bridge, the gateway, the reservation, masquerade.
//! Later chained plugins may change MACs or add routes; only what weft made is compared.

use std::net::IpAddr;

use ipnet::IpNet;
use weft_datapath::netlink::{IpFamily, LinkInfo, Netlink, RouteScopeKind, RouteSpec};
use weft_proto::CniResult;

use super::{open_pod_netns, who};
use crate::apply::{host_route, route_spec};
use crate::conf::{MainConf, Mode};
use crate::error::PluginError;
use crate::ipam::IpamBackend;
use crate::masq;
use crate::naming;
use crate::plan::{AttachmentPlan, PodAddress, Who, plan_attachment};
use crate::skel::Request;

fn mismatch(msg: impl Into<String>) -> PluginError {
    PluginError::Check(msg.into())
}

pub(super) fn check(req: &Request) -> Result<(), PluginError> {
    let conf = MainConf::from_value(&req.raw)?;
    let backend = IpamBackend::from_request(req)?;
    let prev = req
        .conf
        .prev_result(req.version)?
        .ok_or_else(|| PluginError::config("CHECK needs prevResult (the ADD result)"))?;
    let pod_ns = open_pod_netns(req)?;
    let mut node = Netlink::open().map_err(|e| PluginError::datapath("open netlink", e))?;
    let mut pod =
        Netlink::open_in(&pod_ns).map_err(|e| PluginError::datapath("open pod netlink", e))?;

    let ifname = req.ifname();
    let pod_link = pod
        .find_link(ifname)
        .map_err(|e| PluginError::datapath("look up pod interface", e))?
        .ok_or_else(|| {
            mismatch(format!(
                "interface {ifname} is missing from the pod namespace"
            ))
        })?;
    if !pod_link.up {
        return Err(mismatch(format!("interface {ifname} in the pod is down")));
    }
    check_pod_state(&mut pod, &pod_link, &prev, req)?;

    let w = who(req);
    let host_name = naming::host_veth_name(w.network, w.container_id, w.ifname);
    let host = node
        .find_link(&host_name)
        .map_err(|e| PluginError::datapath("look up host veth", e))?
        .ok_or_else(|| mismatch(format!("host veth {host_name} is missing")))?;
    if pod_link.link != Some(host.index) {
        return Err(mismatch(format!(
            "{ifname} in the pod is not peered with host veth {host_name}"
        )));
    }
    if conf.mode == Mode::Bridge {
        check_bridge(&mut node, &conf, &host, &prev)?;
    }
    let plan = plan_from_result(&conf, w, &prev)?;
    check_planned(&mut node, &mut pod, &host, &pod_link, &plan)?;
    let expected: Vec<IpAddr> = prev.ips.iter().map(|ip| ip.address.addr()).collect();
    backend.check(req, &expected)?;
    if conf.ip_masq {
        let tag = naming::nft_tag(w.network, w.container_id, w.ifname);
        let tagged = masq::tagged_elements(None)?;
        for ip in prev.ips.iter().map(|i| i.address.addr()) {
            if !tagged.iter().any(|(e, t)| *e == ip && *t == tag) {
                return Err(mismatch(format!("masquerade entry for {ip} is missing")));
            }
        }
    }
    Ok(())
}

/// The pod's addresses and routes listed in the result are present.
fn check_pod_state(
    pod: &mut Netlink,
    link: &LinkInfo,
    prev: &CniResult,
    req: &Request,
) -> Result<(), PluginError> {
    let sandbox = req
        .env
        .netns
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let pod_if_index = prev
        .interfaces
        .iter()
        .position(|i| i.name == link.name && i.sandbox.is_some() && i.sandbox == sandbox);
    let addrs = pod
        .addrs(Some(link.index), None)
        .map_err(|e| PluginError::datapath("list pod addresses", e))?;
    for ip in &prev.ips {
        if ip.interface.is_some() && ip.interface != pod_if_index {
            continue;
        }
        if !addrs.iter().any(|a| a.addr == ip.address) {
            return Err(mismatch(format!(
                "address {} is missing from {}",
                ip.address, link.name
            )));
        }
    }
    let mut routes = pod
        .routes(IpFamily::V4, None)
        .map_err(|e| PluginError::datapath("list pod routes", e))?;
    routes.extend(
        pod.routes(IpFamily::V6, None)
            .map_err(|e| PluginError::datapath("list pod routes", e))?,
    );
    for r in &prev.routes {
        let found = routes
            .iter()
            .any(|k| k.dst == r.dst && (r.gw.is_none() || k.gateway == r.gw));
        if !found {
            let via = r.gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(mismatch(format!(
                "route {}{via} is missing in the pod",
                r.dst
            )));
        }
    }
    Ok(())
}

/// The plan ADD carried out, rebuilt from the addresses in `prevResult`: CHECK compares the
/// kernel with the same plan the executor applied, including what the result does not
/// list (ptp's link route to the gateway, the node's host routes and gateway addresses).
fn plan_from_result(
    conf: &MainConf,
    who: Who<'_>,
    prev: &CniResult,
) -> Result<AttachmentPlan, PluginError> {
    let addrs: Vec<PodAddress> = prev
        .ips
        .iter()
        .map(|ip| PodAddress {
            address: ip.address,
            gateway: ip.gateway,
        })
        .collect();
    plan_attachment(conf, who, &addrs, &[])
}

/// Planned routes in the pod, and (ptp) the node's gateway addresses and host routes.
fn check_planned(
    node: &mut Netlink,
    pod: &mut Netlink,
    host: &LinkInfo,
    pod_link: &LinkInfo,
    plan: &AttachmentPlan,
) -> Result<(), PluginError> {
    let pod_routes = all_routes(pod, "pod")?;
    for r in &plan.pod_routes {
        let want = as_reported(route_spec(r, pod_link.index));
        if !pod_routes.iter().any(|got| want.is_satisfied_by(got)) {
            let via = r.via.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(mismatch(format!(
                "route {}{via} is missing in the pod",
                r.dst
            )));
        }
    }
    let host_addrs = node
        .addrs(Some(host.index), None)
        .map_err(|e| PluginError::datapath("list host veth addresses", e))?;
    for a in &plan.host_addrs {
        if !host_addrs.iter().any(|got| got.addr == *a) {
            return Err(mismatch(format!(
                "gateway address {a} is missing from host veth {}",
                host.name
            )));
        }
    }
    let node_routes = all_routes(node, "node")?;
    for dst in &plan.host_routes {
        let want = as_reported(host_route(*dst, host.index));
        if !node_routes.iter().any(|got| want.is_satisfied_by(got)) {
            return Err(mismatch(format!(
                "host route {dst} dev {} is missing on the node",
                host.name
            )));
        }
    }
    Ok(())
}

/// IPv6 has no route scopes: the kernel reports every IPv6 route as `universe`.
fn as_reported(mut spec: RouteSpec) -> RouteSpec {
    if spec.dst.addr().is_ipv6() {
        spec.scope = RouteScopeKind::Universe;
    }
    spec
}

fn all_routes(nl: &mut Netlink, what: &str) -> Result<Vec<RouteSpec>, PluginError> {
    let mut routes = nl
        .routes(IpFamily::V4, None)
        .map_err(|e| PluginError::datapath(format!("list {what} routes"), e))?;
    routes.extend(
        nl.routes(IpFamily::V6, None)
            .map_err(|e| PluginError::datapath(format!("list {what} routes"), e))?,
    );
    Ok(routes)
}

/// The bridge exists, the host veth is its port, the gateway addresses are on it.
fn check_bridge(
    node: &mut Netlink,
    conf: &MainConf,
    host: &LinkInfo,
    prev: &CniResult,
) -> Result<(), PluginError> {
    let bridge = node
        .find_link(&conf.bridge)
        .map_err(|e| PluginError::datapath("look up bridge", e))?
        .ok_or_else(|| mismatch(format!("bridge {} is missing", conf.bridge)))?;
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(mismatch(format!("{} is not a bridge", conf.bridge)));
    }
    if conf.promisc_mode && !bridge.promisc {
        return Err(mismatch(format!(
            "bridge {} is not promiscuous",
            conf.bridge
        )));
    }
    if host.master != Some(bridge.index) {
        return Err(mismatch(format!(
            "{} is not attached to bridge {}",
            host.name, conf.bridge
        )));
    }
    if conf.is_gateway {
        let addrs = node
            .addrs(Some(bridge.index), None)
            .map_err(|e| PluginError::datapath("list bridge addresses", e))?;
        for ip in &prev.ips {
            let Some(gw) = ip.gateway else { continue };
            let want = IpNet::new(gw, ip.address.prefix_len()).ok();
            if !addrs.iter().any(|a| Some(a.addr) == want) {
                return Err(mismatch(format!(
                    "gateway {gw} is missing from bridge {}",
                    conf.bridge
                )));
            }
        }
    }
    Ok(())
}
