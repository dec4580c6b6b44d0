//! ADD: validate everything, reserve addresses, plan, apply; undo on failure.

use weft_datapath::netlink::{LinkInfo, Netlink, format_mac};
use weft_proto::{CniResult, Interface, IpConfig, Route};

use super::{open_pod_netns, requested_mac, who};
use crate::apply::{Wired, apply, undo};
use crate::conf::{MainConf, Mode};
use crate::error::PluginError;
use crate::ipam::{IpamBackend, IpamOutcome};
use crate::macspoof;
use crate::masq;
use crate::plan::{AttachmentPlan, plan_attachment};
use crate::policy_claim::{self, Claim};
use crate::skel::Request;
use crate::sysctl;

pub(super) fn add(req: &Request) -> Result<CniResult, PluginError> {
    // Everything that can be rejected is rejected before the first change.
    let conf = MainConf::from_value(&req.raw)?;
    let backend = IpamBackend::from_request(req)?;
    let mac = requested_mac(req)?;
    let pod_ns = open_pod_netns(req)?;
    let mut node = Netlink::open().map_err(|e| PluginError::datapath("open netlink", e))?;
    let mut pod =
        Netlink::open_in(&pod_ns).map_err(|e| PluginError::datapath("open pod netlink", e))?;

    let outcome = backend.add(req)?;
    let plan = match plan_attachment(&conf, who(req), &outcome.addrs, &outcome.routes) {
        Ok(p) => p,
        Err(e) => {
            let _ = backend.del(req);
            return Err(e);
        }
    };
    if let Err(e) = claim_for_policy(req, &conf, &outcome) {
        let _ = backend.del(req);
        return Err(e);
    }
    match wire(&plan, &mut node, &mut pod, &pod_ns, mac) {
        Ok(wired) => Ok(result(req, &conf, &plan, &wired, &outcome)),
        Err(e) => {
            // Nothing may leak: undo in reverse order, IPAM last (the spec's delegation rule).
            if let Some((addrs, _)) = &plan.masq {
                let _ = masq::apply_del(&crate::apply::ips_of(addrs));
            }
            if let Some(tag) = &plan.macspoof {
                let _ = macspoof::remove_tagged(|t| t == tag);
            }
            let _ = undo(&mut node, &plan);
            let _ = backend.del(req);
            Err(e)
        }
    }
}

/// The addresses are chosen but not yet reachable: weftd must have the pod's rules in the
/// kernel before the first interface exists. Only Kubernetes pods are claimed (weftd maps
/// addresses to pod objects).
fn claim_for_policy(
    req: &Request,
    conf: &MainConf,
    outcome: &IpamOutcome,
) -> Result<(), PluginError> {
    let args = &req.env.args;
    let (Some(target), Some(namespace), Some(name)) = (
        &conf.policy,
        args.k8s_pod_namespace.as_deref(),
        args.k8s_pod_name.as_deref(),
    ) else {
        return Ok(());
    };
    let claim = Claim {
        namespace,
        name,
        container_id: req.container_id(),
        ips: outcome.addrs.iter().map(|a| a.address.addr()).collect(),
    };
    policy_claim::send(target, &claim).map_err(|e| policy_claim::to_plugin_error(target, &e))
}

fn wire(
    plan: &AttachmentPlan,
    node: &mut Netlink,
    pod: &mut Netlink,
    pod_ns: &weft_datapath::NetnsFd,
    mac: Option<[u8; 6]>,
) -> Result<Wired, PluginError> {
    let (v4, v6) = plan.forwarding;
    sysctl::enable_forwarding(v4, v6)?;
    let wired = apply(plan, node, pod, pod_ns, mac)?;
    if let Some((addrs, tag)) = &plan.masq {
        masq::apply_add(addrs, tag)?;
    }
    if let (Some(tag), Some(mac)) = (&plan.macspoof, &wired.pod.mac) {
        macspoof::apply_add(&wired.host.name, mac, tag)?;
    }
    Ok(wired)
}

fn iface(link: &LinkInfo, sandbox: Option<String>, mtu: Option<u32>) -> Interface {
    Interface {
        name: link.name.clone(),
        mac: link.mac.as_ref().map(format_mac),
        sandbox,
        mtu,
        socket_path: None,
        pci_id: None,
    }
}

/// The ADD result: interfaces `[bridge, host veth, pod]` (bridge) or `[host veth, pod]`
/// (ptp), every address pointing at the pod interface.
fn result(
    req: &Request,
    conf: &MainConf,
    plan: &AttachmentPlan,
    wired: &Wired,
    outcome: &IpamOutcome,
) -> CniResult {
    let sandbox = req
        .env
        .netns
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let mut interfaces = Vec::new();
    if let (Mode::Bridge, Some(b)) = (conf.mode, &wired.bridge) {
        interfaces.push(iface(b, None, conf.mtu));
    }
    interfaces.push(iface(&wired.host, None, conf.mtu));
    let pod_index = interfaces.len();
    interfaces.push(iface(&wired.pod, sandbox, conf.mtu));
    let ips = outcome
        .addrs
        .iter()
        .map(|a| IpConfig {
            address: a.address,
            gateway: plan
                .bridge
                .as_ref()
                .and_then(|b| {
                    b.gateway_addrs
                        .iter()
                        .find(|g| g.contains(&a.address.addr()))
                })
                .map(|g| g.addr())
                .or(a.gateway),
            interface: Some(pod_index),
        })
        .collect();
    let routes = plan
        .pod_routes
        .iter()
        .filter(|r| r.in_result)
        .map(|r| Route::new(r.dst, r.via))
        .collect();
    // A top-level `dns` with any field set replaces what IPAM returned (reference rule).
    let dns = match &req.conf.dns {
        Some(d) if !d.is_empty() => d.clone(),
        _ => outcome.dns.clone(),
    };
    CniResult {
        interfaces,
        ips,
        routes,
        dns,
    }
}
