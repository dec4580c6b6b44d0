//! `weft-bandwidth`: the reference `bandwidth` plugin's shaping through netlink. Traffic
//! into the pod is limited by a tbf as root qdisc of the node-side veth; traffic out of
//! the pod is redirected from that veth's ingress to an `ifb` device (`bwp` + 12 hex of
//! a hash of network name and container id) whose root qdisc is a tbf. The ifb is listed
//! in the result, as the reference does.
//!
//! Beyond the reference: DEL also removes the qdiscs it put on the veth; the ifb's alias
//! records the owner, so GC removes ifbs of attachments the runtime no longer lists.

pub mod conf;

use weft_datapath::netlink::{LinkInfo, Netlink, format_mac};
use weft_plugin::{Plugin, PluginError, Request};
use weft_proto::{CniError, CniResult, CniVersion, Interface, ValidAttachments};

use crate::common::{fnv64, open_pod_ns, open_pod_ns_if_any, required_prev_result};
use conf::{Limits, limits, tbf};

/// The bandwidth plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bandwidth;

/// Alias prefix on the ifb devices this plugin creates.
const ALIAS_PREFIX: &str = "weft-bandwidth";

fn dp(context: &str) -> impl FnOnce(weft_datapath::DatapathError) -> PluginError + '_ {
    move |e| PluginError::datapath(context, e)
}

/// `bwp` + 12 hex digits: 15 bytes, the longest interface name Linux allows.
pub fn ifb_name(network: &str, container_id: &str) -> String {
    format!("bwp{:012x}", fnv64(&[network, container_id]) >> 16)
}

fn alias(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{ALIAS_PREFIX} {network} {container_id} {ifname}")
}

fn request_limits(req: &Request) -> Result<Limits, PluginError> {
    limits(&req.raw, req.conf.runtime_config.bandwidth.as_ref()).map_err(PluginError::config)
}

/// The node-side peer of the pod interface, found through the veth's peer index.
fn host_veth(req: &Request, prev: Option<&CniResult>) -> Result<(Netlink, LinkInfo), PluginError> {
    let ns = open_pod_ns(req)?;
    let pod_if = Netlink::open_in(&ns)
        .and_then(|mut nl| nl.link_by_name(req.ifname()))
        .map_err(dp("look up pod interface"))?;
    let peer = pod_if.link.ok_or_else(|| {
        PluginError::config(format!(
            "{} is not a veth: no peer to shape on",
            req.ifname()
        ))
    })?;
    let mut nl = Netlink::open().map_err(dp("open node netlink"))?;
    let host = nl
        .link_by_index(peer)
        .map_err(dp("look up node-side veth"))?;
    if let Some(prev) = prev {
        let listed = prev
            .interfaces
            .iter()
            .any(|i| i.name == host.name && i.sandbox.as_deref().is_none_or(str::is_empty));
        if !listed {
            return Err(PluginError::config(format!(
                "node-side veth {} of {} is not in prevResult",
                host.name,
                req.ifname()
            )));
        }
    }
    Ok((nl, host))
}

fn ensure_ifb(nl: &mut Netlink, req: &Request, mtu: u32) -> Result<LinkInfo, PluginError> {
    let name = ifb_name(&req.conf.name, req.container_id());
    let ifb = match nl.find_link(&name).map_err(dp("look up ifb"))? {
        Some(link) => link,
        None => nl.create_ifb(&name, Some(mtu)).map_err(dp("create ifb"))?,
    };
    let owner = alias(&req.conf.name, req.container_id(), req.ifname());
    nl.set_alias(ifb.index, &owner).map_err(dp("label ifb"))?;
    nl.set_up(ifb.index, true).map_err(dp("set ifb up"))?;
    Ok(ifb)
}

fn check_tbf(nl: &mut Netlink, link: &LinkInfo, rate: u64) -> Result<(), PluginError> {
    let qdiscs = nl.qdiscs(link.index).map_err(dp("list qdiscs"))?;
    let ok = qdiscs
        .iter()
        .any(|q| q.kind == "tbf" && q.parent == u32::MAX && q.tbf_rate == Some(rate));
    if ok {
        Ok(())
    } else {
        Err(PluginError::Check(format!(
            "{} has no root tbf at {rate} bytes/s",
            link.name
        )))
    }
}

impl Plugin for Bandwidth {
    fn add(&self, req: &Request) -> Result<CniResult, PluginError> {
        if req.version < CniVersion::V0_3_0 {
            return Err(PluginError::Cni(CniError::incompatible_version(
                "bandwidth supports cniVersion 0.3.0 and later",
            )));
        }
        let mut prev = required_prev_result(req, "bandwidth")?;
        let limits = request_limits(req)?;
        if limits == Limits::default() {
            return Ok(prev);
        }
        let (mut nl, host) = host_veth(req, Some(&prev))?;
        if let Some(spec) = tbf(limits.ingress_rate, limits.ingress_burst) {
            nl.replace_root_tbf(host.index, &spec)
                .map_err(dp("shape traffic into the pod"))?;
        }
        if let Some(spec) = tbf(limits.egress_rate, limits.egress_burst) {
            let ifb = ensure_ifb(&mut nl, req, host.mtu)?;
            nl.replace_root_tbf(ifb.index, &spec)
                .map_err(dp("shape traffic out of the pod"))?;
            // Recreated each time so a repeated ADD never stacks a second redirect filter.
            nl.delete_ingress_qdisc(host.index)
                .map_err(dp("reset ingress qdisc"))?;
            nl.add_ingress_qdisc(host.index)
                .map_err(dp("add ingress qdisc"))?;
            nl.add_ingress_redirect(host.index, ifb.index)
                .map_err(dp("redirect pod traffic to the ifb"))?;
            if !prev.interfaces.iter().any(|i| i.name == ifb.name) {
                prev.interfaces.push(Interface {
                    name: ifb.name.clone(),
                    mac: ifb.mac.as_ref().map(format_mac),
                    sandbox: None,
                    mtu: None,
                    socket_path: None,
                    pci_id: None,
                });
            }
        }
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<(), PluginError> {
        let mut nl = Netlink::open().map_err(dp("open node netlink"))?;
        nl.delete_link_by_name(&ifb_name(&req.conf.name, req.container_id()))
            .map_err(dp("delete ifb"))?;
        // The veth usually still exists (the main plugin's DEL runs after this one).
        if open_pod_ns_if_any(req).is_some()
            && let Ok((mut nl, host)) = host_veth(req, None)
        {
            let shaped = nl
                .qdiscs(host.index)
                .map(|q| q.iter().any(|q| q.kind == "tbf" && q.parent == u32::MAX))
                .unwrap_or(false);
            if shaped {
                let _ = nl.delete_root_qdisc(host.index);
            }
            let _ = nl.delete_ingress_qdisc(host.index);
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), PluginError> {
        let prev = required_prev_result(req, "bandwidth")?;
        let limits = request_limits(req)?;
        if limits == Limits::default() {
            return Ok(());
        }
        let (mut nl, host) = host_veth(req, Some(&prev))?;
        if let Some(spec) = tbf(limits.ingress_rate, limits.ingress_burst) {
            check_tbf(&mut nl, &host, spec.rate)?;
        }
        if let Some(spec) = tbf(limits.egress_rate, limits.egress_burst) {
            let name = ifb_name(&req.conf.name, req.container_id());
            let ifb = nl
                .find_link(&name)
                .map_err(dp("look up ifb"))?
                .ok_or_else(|| PluginError::Check(format!("ifb {name} is missing")))?;
            check_tbf(&mut nl, &ifb, spec.rate)?;
            let redirected = nl
                .qdiscs(host.index)
                .map_err(dp("list qdiscs"))?
                .iter()
                .any(|q| q.kind == "ingress");
            if !redirected {
                return Err(PluginError::Check(format!(
                    "{} has no ingress qdisc redirecting to {name}",
                    host.name
                )));
            }
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<(), PluginError> {
        let valid = ValidAttachments::from_config(&req.raw)?;
        if valid.source == weft_proto::AttachmentsSource::Absent {
            return Ok(());
        }
        let mut nl = Netlink::open().map_err(dp("open node netlink"))?;
        let prefix = format!("{ALIAS_PREFIX} {} ", req.conf.name);
        let mut errors = Vec::new();
        for link in nl.links().map_err(dp("list links"))? {
            let Some(owner) = link.alias.as_deref().and_then(|a| a.strip_prefix(&prefix)) else {
                continue;
            };
            let keep = owner
                .split_once(' ')
                .is_some_and(|(cid, ifname)| valid.contains(cid, ifname));
            if !keep && let Err(e) = nl.delete_link(link.index) {
                errors.push(PluginError::datapath("delete stale ifb", e));
            }
        }
        PluginError::from_list(errors)
    }

    fn status(&self, _req: &Request) -> Result<(), PluginError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifb_names_fit_in_ifnamsiz() {
        let n = ifb_name("net", "0123456789abcdef0123456789abcdef");
        assert_eq!(n.len(), 15);
        assert!(n.starts_with("bwp"));
        assert_ne!(n, ifb_name("net2", "0123456789abcdef0123456789abcdef"));
    }
}
