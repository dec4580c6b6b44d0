//! `weft-portmap`: hostPort mappings in weft's own nftables table `inet weft_portmap`,
//! applied as one transaction per verb. See [`render`] for the table layout: a pod's
//! mappings are map and set elements tagged with its container id and ifname.
//!
//! Behaviour beyond the reference plugin:
//! - DEL finds an attachment's mappings by the comment on its elements, so it removes them
//!   without `runtimeConfig` or `prevResult`;
//! - a hostPort held by another attachment is refused with a message naming the holder, and
//!   nothing is changed (the whole transaction fails);
//! - GC removes mappings of attachments missing from `cni.dev/valid-attachments`;
//! - CHECK works for IPv4-only pods.
//!
//! Masquerading (`snat`, default true) is done in weft's own postrouting chain for
//! DNATed connections (`ct status dnat`) to a pod with hostPorts from the pod's subnet
//! (hairpin) and from 127.0.0.0/8 (IPv4 localhost, with `route_localnet=1` set on the
//! node-side interfaces of the pod). No packet mark is used, so `markMasqBit` and
//! `externalSetMarkChain` are validated (range 0..=31, mutually exclusive, chain name) but
//! have no effect. `masqAll` masquerades every source. `conditionsV4` / `conditionsV6` are
//! nftables match tokens put in front of the network's DNAT rules (one set of rules per
//! network, written by the network's first ADD); iptables-style conditions are refused.
//! A hostPort is unique per network: two networks mapping the same port are not detected
//! as a conflict (the first matching network's chain wins).

pub mod conf;
pub mod render;
pub mod state;

use std::process::{Command, Stdio};

use weft_datapath::DatapathError;
use weft_datapath::netlink::validate_ifname;
use weft_datapath::nft::{apply_nft, nft_list_json, quote};
use weft_datapath::sysctl::write_sysctl;
use weft_plugin::{Plugin, PluginError, Request};
use weft_proto::{CniError, CniResult, ValidAttachments, codes};

use crate::common::required_prev_result;
use conf::{PortmapConf, Proto, Targets, parse_mappings, targets};
use render::{Entry, entries, net_prefix, owner_comment};
use state::{Element, Listing, owner_of, parse_listing, render_delete, udp_ports};

/// The portmap plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct Portmap;

fn nft_err(context: &str) -> impl FnOnce(DatapathError) -> PluginError + '_ {
    move |e| PluginError::datapath(context, e)
}

fn comment(req: &Request) -> String {
    owner_comment(req.container_id(), req.ifname())
}

/// The table's contents; `None` when the table does not exist yet.
fn list_table() -> Result<Option<Listing>, PluginError> {
    match nft_list_json(&["list", "table", "inet", "weft_portmap"], None) {
        Ok(v) => Ok(Some(parse_listing(&v))),
        Err(DatapathError::Nft { stderr }) if stderr.contains("No such file") => Ok(None),
        Err(e) => Err(PluginError::datapath("list nft table weft_portmap", e)),
    }
}

/// What ADD and CHECK work from.
struct Plan {
    entries: Vec<Entry>,
    targets: Targets,
    conf: PortmapConf,
}

fn plan(req: &Request, prev: &CniResult) -> Result<Option<Plan>, PluginError> {
    let conf = PortmapConf::from_value(&req.raw).map_err(PluginError::config)?;
    let mappings = parse_mappings(req.conf.runtime_config.port_mappings.as_ref())
        .map_err(PluginError::config)?;
    if mappings.is_empty() {
        return Ok(None);
    }
    let targets = targets(prev, req.ifname());
    if targets.v4.is_none() && targets.v6.is_none() {
        return Err(PluginError::config(format!(
            "portmap: prevResult has no address for {}",
            req.ifname()
        )));
    }
    let entries = entries(&mappings, &targets);
    Ok((!entries.is_empty()).then_some(Plan {
        entries,
        targets,
        conf,
    }))
}

fn nft_says(err: &DatapathError, what: &str) -> bool {
    matches!(err, DatapathError::Nft { stderr } if stderr.contains(what))
}

/// Turns a failed ADD transaction into a clear error when a port is held by another pod.
fn explain_failure(err: DatapathError, plan: &Plan, prefix: &str, own: &str) -> PluginError {
    if !nft_says(&err, "File exists") {
        return PluginError::datapath("apply portmap rules", err);
    }
    let Ok(Some(listing)) = list_table() else {
        return PluginError::datapath("apply portmap rules", err);
    };
    for e in &plan.entries {
        let held = listing
            .holder(&format!("{prefix}{}", e.map), &e.key)
            .filter(|h| h.comment.as_deref() != Some(own));
        if let Some(holder) = held {
            let who = owner_of(holder).map_or("another attachment".to_string(), |(c, i)| {
                format!("container {c} ({i})")
            });
            let m = &e.mapping;
            let at = m.host_ip.map(|ip| format!(" on {ip}")).unwrap_or_default();
            return PluginError::Cni(CniError::new(
                codes::ADDRESS_UNAVAILABLE,
                format!(
                    "hostPort {}/{}{at} is already taken by {who}; nothing was changed",
                    m.proto, m.host_port
                ),
            ));
        }
    }
    PluginError::Cni(CniError::new(
        codes::ADDRESS_UNAVAILABLE,
        format!("pod address already has hostPort mappings of another attachment: {err}"),
    ))
}

/// Localhost DNAT needs the node-side interfaces towards the pod to accept 127/8 sources.
fn enable_route_localnet(prev: &CniResult) -> Result<(), PluginError> {
    let host_side = prev
        .interfaces
        .iter()
        .filter(|i| i.sandbox.as_deref().is_none_or(str::is_empty))
        .filter(|i| validate_ifname(&i.name).is_ok());
    for iface in host_side {
        let key = format!("net/ipv4/conf/{}/route_localnet", iface.name);
        match write_sysctl(None, &key, "1") {
            Ok(()) => {}
            // An interface listed by an earlier plugin may not live in this namespace.
            Err(DatapathError::Sysctl { reason, .. }) if reason.contains("No such file") => {}
            Err(e) => return Err(PluginError::datapath("enable route_localnet", e)),
        }
    }
    Ok(())
}

/// Drops UDP conntrack entries for host ports: a flow created before the mapping existed,
/// or towards a removed pod, would otherwise keep being used (UDP has no teardown).
/// Best effort through `conntrack -D`; "no entries" is its non-zero exit and is fine.
fn flush_udp(ports: &[(bool, u16)]) {
    for (v4, port) in ports {
        let family = if *v4 { "ipv4" } else { "ipv6" };
        let status = Command::new("conntrack")
            .args(["-D", "-f", family, "-p", "udp", "--orig-port-dst"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(e) = status {
            eprintln!("weft-portmap: conntrack -D for udp/{port}: {e}");
        }
    }
}

fn entry_udp_ports(entries: &[Entry]) -> Vec<(bool, u16)> {
    entries
        .iter()
        .filter(|e| e.mapping.proto == Proto::Udp)
        .map(|e| (e.target.addr().is_ipv4(), e.mapping.host_port))
        .collect()
}

/// Removes `elements` in one transaction, then flushes their UDP flows.
fn delete_elements(prefix: &str, elements: &[&Element]) -> Result<(), PluginError> {
    if let Some(script) = render_delete(elements) {
        apply_nft(&script, None).map_err(nft_err("remove portmap elements"))?;
        flush_udp(&udp_ports(prefix, elements));
    }
    Ok(())
}

impl Plugin for Portmap {
    fn add(&self, req: &Request) -> Result<CniResult, PluginError> {
        let prev = required_prev_result(req, "portmap")?;
        let Some(plan) = plan(req, &prev)? else {
            return Ok(prev);
        };
        let prefix = net_prefix(&req.conf.name);
        let own = comment(req);
        let quoted = quote(&own).map_err(|e| PluginError::config(e.to_string()))?;
        let elements = render::render_elements(&prefix, &quoted, &plan.entries, &plan.conf);
        // Element-only transactions are cheap; the network's maps, sets and chains are
        // written only when they are missing (the network's first ADD).
        let applied = match apply_nft(&elements, None) {
            Err(e) if nft_says(&e, "No such file") => {
                let full = render::skeleton(&prefix, &plan.conf) + &elements;
                apply_nft(&full, None)
            }
            other => other,
        };
        applied.map_err(|e| explain_failure(e, &plan, &prefix, &own))?;
        if plan.conf.snat && plan.targets.v4.is_some() {
            enable_route_localnet(&prev)?;
        }
        flush_udp(&entry_udp_ports(&plan.entries));
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<(), PluginError> {
        let Some(listing) = list_table()? else {
            return Ok(());
        };
        let prefix = net_prefix(&req.conf.name);
        delete_elements(&prefix, &listing.owned(&prefix, &comment(req)))
    }

    fn check(&self, req: &Request) -> Result<(), PluginError> {
        let prev = required_prev_result(req, "portmap")?;
        let Some(plan) = plan(req, &prev)? else {
            return Ok(());
        };
        let prefix = net_prefix(&req.conf.name);
        let own = comment(req);
        let listing = list_table()?.unwrap_or_default();
        for chain in ["hp", "pre", "out", "post"] {
            if !listing.has_chain(&format!("{prefix}{chain}")) {
                return Err(PluginError::Check(format!(
                    "nft chain {prefix}{chain} is missing"
                )));
            }
        }
        for e in &plan.entries {
            let object = format!("{prefix}{}", e.map);
            let present = listing.holder(&object, &e.key).is_some_and(|x| {
                x.comment.as_deref() == Some(own.as_str())
                    && x.value.as_deref() == Some(e.value.as_str())
            });
            if !present {
                return Err(PluginError::Check(format!(
                    "hostPort element {object} {{ {} : {} }} is missing",
                    e.key, e.value
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
        let Some(listing) = list_table()? else {
            return Ok(());
        };
        let prefix = net_prefix(&req.conf.name);
        let stale: Vec<&Element> = listing
            .in_network(&prefix)
            .filter(|e| !owner_of(e).is_some_and(|(c, i)| valid.contains(c, i)))
            .collect();
        delete_elements(&prefix, &stale)
    }

    fn status(&self, _req: &Request) -> Result<(), PluginError> {
        Ok(())
    }
}
