//! DEL: best effort and idempotent. Every step runs even when an earlier one failed; the
//! namespace may be gone, the link may be gone, the reservation may be gone: all success.

use std::net::IpAddr;

use weft_datapath::netlink::Netlink;

use super::who;
use crate::conf::MainConf;
use crate::error::PluginError;
use crate::ipam::IpamBackend;
use crate::macspoof;
use crate::masq;
use crate::naming;
use crate::plan::{AttachmentPlan, plan_attachment};
use crate::skel::Request;

pub(super) fn del(req: &Request) -> Result<(), PluginError> {
    let conf = MainConf::from_value(&req.raw)?;
    let backend = IpamBackend::from_request(req)?;
    let mut errors = Vec::new();

    // IPAM first: even with no namespace at all, the address must come back.
    let released = backend.del(req).unwrap_or_else(|e| {
        errors.push(e);
        Vec::new()
    });

    // The host end, found by its deterministic name and alias, also when the namespace is
    // gone. Deleting it deletes its pod end with it; the pod's `CNI_IFNAME` is never
    // deleted by name, because after a failed ADD (code 108) it may be someone else's.
    let plan = skeleton_plan(&conf, req);
    match Netlink::open() {
        Ok(mut node) => {
            if let Err(e) = retire_pair(&mut node, &plan) {
                errors.push(e);
            }
        }
        Err(e) => errors.push(PluginError::datapath("open netlink", e)),
    }
    if conf.macspoofchk {
        let tag = naming::nft_tag(&req.conf.name, req.container_id(), req.ifname());
        if let Err(e) = macspoof::remove_tagged(|t| t == tag) {
            errors.push(e);
        }
    }
    if conf.ip_masq
        && let Err(e) = remove_masq(req, released)
    {
        errors.push(e);
    }
    PluginError::from_list(errors)
}

/// Cuts the pair off and has it deleted without waiting for the kernel.
///
/// Unregistering a device blocks its caller in `rcu_barrier()` (10-50 ms here, more than
/// the rest of DEL together). So DEL sets the host end down (the pod is off the bridge and
/// its routes are gone at once) and relabels it `weft-del/...` in one request, and a
/// detached child deletes it. Nothing can be lost: a repeated ADD deletes a retired pair of
/// its attachment itself, a repeated DEL retires it again, and GC deletes every retired
/// veth of its network. If the child cannot be started, DEL deletes synchronously.
fn retire_pair(node: &mut Netlink, plan: &AttachmentPlan) -> Result<(), PluginError> {
    let retired = naming::retired_alias_of(&plan.alias);
    let Some(host) = node
        .find_link(&plan.host_veth)
        .map_err(|e| PluginError::datapath("look up host veth", e))?
    else {
        return Ok(());
    };
    let alias = host.alias.as_deref();
    if !alias.is_none_or(|a| a == plan.alias || a == retired) {
        return Ok(());
    }
    let index = host.index;
    let delete_now = |node: &mut Netlink| {
        node.delete_link(index)
            .map(drop)
            .map_err(|e| PluginError::datapath("delete host veth", e))
    };
    if node.retire_link(index, &retired).is_err() {
        return delete_now(node);
    }
    let detached = weft_datapath::detach::run_detached(|| {
        // Only the link this DEL retired: by index, and only while it still says so.
        if let Ok(mut nl) = Netlink::open()
            && let Ok(link) = nl.link_by_index(index)
            && link.alias.as_deref() == Some(retired.as_str())
        {
            let _ = nl.delete_link(index);
        }
    });
    match detached {
        Ok(()) => Ok(()),
        Err(_) => delete_now(node),
    }
}

/// The naming part of the plan is all DEL needs; it does not depend on addresses.
fn skeleton_plan(conf: &MainConf, req: &Request) -> AttachmentPlan {
    plan_attachment(conf, who(req), &[], &[]).unwrap_or_else(|_| AttachmentPlan {
        host_veth: naming::host_veth_name(&req.conf.name, req.container_id(), req.ifname()),
        alias: naming::attachment_alias(&req.conf.name, req.container_id(), req.ifname()),
        pod_ifname: req.ifname().to_string(),
        mtu: None,
        hairpin: false,
        bridge: None,
        pod_addrs: Vec::new(),
        pod_routes: Vec::new(),
        host_addrs: Vec::new(),
        host_routes: Vec::new(),
        forwarding: (false, false),
        masq: None,
        macspoof: None,
    })
}

/// Removes this attachment's masquerade elements: the addresses IPAM just released, those in
/// `prevResult`, and, when neither is known (delegated IPAM without `prevResult`), whatever
/// the table has tagged with this attachment.
fn remove_masq(req: &Request, mut ips: Vec<IpAddr>) -> Result<(), PluginError> {
    if let Ok(Some(prev)) = req.conf.prev_result(req.version) {
        ips.extend(prev.ips.iter().map(|ip| ip.address.addr()));
    }
    if ips.is_empty() {
        let tag = naming::nft_tag(&req.conf.name, req.container_id(), req.ifname());
        ips = masq::tagged_elements(None)?
            .into_iter()
            .filter(|(_, t)| *t == tag)
            .map(|(ip, _)| ip)
            .collect();
    }
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        return Ok(());
    }
    masq::apply_del(&ips)
}
