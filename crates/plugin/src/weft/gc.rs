//! GC (CNI 1.1): release everything whose attachment is not in `cni.dev/valid-attachments`:
//! IPAM reservations, host veths left behind, masquerade elements. Keeps going after errors.

use std::collections::HashSet;

use weft_datapath::netlink::{LinkInfo, Netlink};
use weft_proto::ValidAttachments;

use crate::conf::MainConf;
use crate::error::PluginError;
use crate::ipam::IpamBackend;
use crate::macspoof;
use crate::masq;
use crate::naming;
use crate::skel::Request;

pub(super) fn gc(req: &Request) -> Result<(), PluginError> {
    let conf = MainConf::from_value(&req.raw)?;
    let backend = IpamBackend::from_request(req)?;
    // Per this project's rule, an absent key and a `null` list both mean nothing is valid.
    let valid = ValidAttachments::from_config(&req.raw)?;
    let valid: HashSet<(String, String)> = valid
        .set
        .iter()
        .map(|a| (a.container_id.clone(), a.ifname.clone()))
        .collect();
    let mut errors = Vec::new();

    if let Err(e) = backend.gc(req, &valid) {
        errors.push(e);
    }
    if let Err(e) = gc_links(&req.conf.name, &valid) {
        errors.push(e);
    }
    if conf.macspoofchk {
        let prefix = naming::nft_network_prefix(&req.conf.name);
        let keep: HashSet<String> = valid
            .iter()
            .map(|(c, i)| naming::nft_tag(&req.conf.name, c, i))
            .collect();
        if let Err(e) = macspoof::remove_tagged(|t| t.starts_with(&prefix) && !keep.contains(t)) {
            errors.push(e);
        }
    }
    if conf.ip_masq
        && let Err(e) = gc_masq(&req.conf.name, &valid)
    {
        errors.push(e);
    }
    PluginError::from_list(errors)
}

/// Host veths carry their attachment in their alias; those of this network that are not
/// valid any more are deleted (which deletes their pod end too, if it still exists).
fn gc_links(network: &str, valid: &HashSet<(String, String)>) -> Result<(), PluginError> {
    let mut node = Netlink::open().map_err(|e| PluginError::datapath("open netlink", e))?;
    let links = node
        .links()
        .map_err(|e| PluginError::datapath("list links", e))?;
    let valid_names: HashSet<String> = valid
        .iter()
        .map(|(cid, ifname)| naming::host_veth_name(network, cid, ifname))
        .collect();
    let mut errors = Vec::new();
    for link in links {
        if !is_stale(&link, network, valid, &valid_names) {
            continue;
        }
        if let Err(e) = node.delete_link(link.index) {
            errors.push(PluginError::datapath(
                format!("delete stale {}", link.name),
                e,
            ));
        }
    }
    PluginError::from_list(errors)
}

/// Whether a node link is a host veth of this network whose attachment is not valid. A
/// weft veth without alias comes from an ADD killed between creating the pair and writing
/// the alias: no valid attachment owns it unless its name is one of theirs.
fn is_stale(
    link: &LinkInfo,
    network: &str,
    valid: &HashSet<(String, String)>,
    valid_names: &HashSet<String>,
) -> bool {
    // Retired by a DEL whose detached delete did not run (or has not yet): always stale.
    if let Some(net) = link.alias.as_deref().and_then(naming::retired_network) {
        return net == network && link.kind.as_deref() == Some("veth");
    }
    match link.alias.as_deref().and_then(naming::parse_alias) {
        Some((net, cid, ifname)) => {
            net == network && !valid.contains(&(cid.to_string(), ifname.to_string()))
        }
        None => {
            link.alias.is_none()
                && link.group == naming::HOST_VETH_GROUP
                && link.kind.as_deref() == Some("veth")
                && !valid_names.contains(&link.name)
        }
    }
}

fn gc_masq(network: &str, valid: &HashSet<(String, String)>) -> Result<(), PluginError> {
    let prefix = naming::nft_network_prefix(network);
    let keep: HashSet<String> = valid
        .iter()
        .map(|(cid, ifname)| naming::nft_tag(network, cid, ifname))
        .collect();
    let stale: Vec<_> = masq::tagged_elements(None)?
        .into_iter()
        .filter(|(_, tag)| tag.starts_with(&prefix) && !keep.contains(tag))
        .map(|(ip, _)| ip)
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    masq::apply_del(&stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn veth(name: &str, alias: Option<String>, group: u32) -> LinkInfo {
        LinkInfo {
            index: 7,
            name: name.into(),
            kind: Some("veth".into()),
            mac: None,
            mtu: 1500,
            up: true,
            oper_up: true,
            promisc: false,
            master: None,
            bridge_port: None,
            link: None,
            link_netnsid: None,
            alias,
            group,
        }
    }

    #[test]
    fn stale_links_are_this_networks_invalid_or_unaliased_weft_veths() {
        let valid: HashSet<(String, String)> = [("a".to_string(), "eth0".to_string())].into();
        let names: HashSet<String> = [naming::host_veth_name("net", "a", "eth0")].into();
        let stale = |l: &LinkInfo| is_stale(l, "net", &valid, &names);
        let alias = |net, cid| Some(naming::attachment_alias(net, cid, "eth0"));
        assert!(!stale(&veth(
            "v1",
            alias("net", "a"),
            naming::HOST_VETH_GROUP
        )));
        assert!(stale(&veth(
            "v2",
            alias("net", "b"),
            naming::HOST_VETH_GROUP
        )));
        assert!(!stale(&veth(
            "v3",
            alias("other", "b"),
            naming::HOST_VETH_GROUP
        )));
        // Killed before the alias: weft's group marks it, unless a valid attachment owns the name.
        assert!(stale(&veth("vethdead0000", None, naming::HOST_VETH_GROUP)));
        let own = naming::host_veth_name("net", "a", "eth0");
        assert!(!stale(&veth(&own, None, naming::HOST_VETH_GROUP)));
        // Someone else's veth: default group, no alias.
        assert!(!stale(&veth("veth12345678", None, 0)));
    }
}
