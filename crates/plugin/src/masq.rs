//! `ipMasq`: masquerade pod traffic that leaves the pod subnet, in the nftables table weft owns.
//!
//! Layout (table `inet weft`):
//! - sets `masq_pods4`/`masq_pods6`: pod addresses, one element per address, commented with the
//!   attachment's tag so DEL and GC find exactly their own elements;
//! - interval sets `masq_skip4`/`masq_skip6`: pod subnets; traffic to them is never NATed;
//! - chain `masq_postrouting` (nat, srcnat): two rules, rewritten on every ADD in the same
//!   transaction (flush + add), so repeated ADDs never duplicate them.
//!
//! Per packet this is two set lookups whatever the number of pods. Every script is applied
//! with one `nft -f -`: one atomic transaction.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::PluginError;

/// The table weft owns for its own NAT and filtering.
pub const TABLE: &str = "weft";

fn family_sets(addr: &IpAddr) -> (&'static str, &'static str) {
    match addr {
        IpAddr::V4(_) => ("masq_pods4", "masq_skip4"),
        IpAddr::V6(_) => ("masq_pods6", "masq_skip6"),
    }
}

/// Declarations that make sure the table, sets and chain exist and the rules are exactly two.
fn skeleton(out: &mut String) {
    let _ = writeln!(out, "add table inet {TABLE}");
    for (set, ty) in [("masq_pods4", "ipv4_addr"), ("masq_pods6", "ipv6_addr")] {
        let _ = writeln!(out, "add set inet {TABLE} {set} {{ type {ty}; }}");
    }
    for (set, ty) in [("masq_skip4", "ipv4_addr"), ("masq_skip6", "ipv6_addr")] {
        let _ = writeln!(
            out,
            "add set inet {TABLE} {set} {{ type {ty}; flags interval; auto-merge; }}"
        );
    }
    let _ = writeln!(
        out,
        "add chain inet {TABLE} masq_postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}"
    );
    let _ = writeln!(out, "flush chain inet {TABLE} masq_postrouting");
    let _ = writeln!(
        out,
        "add rule inet {TABLE} masq_postrouting ip saddr @masq_pods4 ip daddr != @masq_skip4 masquerade"
    );
    let _ = writeln!(
        out,
        "add rule inet {TABLE} masq_postrouting ip6 saddr @masq_pods6 ip6 daddr != @masq_skip6 masquerade"
    );
}

/// Script for ADD: the pod's addresses join the masquerade set, their subnets the skip set.
/// `tag` must come from `naming::nft_tag` (bounded, quote-free).
pub fn add_script(addrs: &[IpNet], tag: &str) -> String {
    let mut out = String::new();
    skeleton(&mut out);
    add_elements(&mut out, addrs, tag);
    out
}

fn add_elements(out: &mut String, addrs: &[IpNet], tag: &str) {
    for net in addrs {
        let ip = net.addr();
        let (pods, skip) = family_sets(&ip);
        let _ = writeln!(
            out,
            "add element inet {TABLE} {pods} {{ {ip} comment \"{tag}\" }}"
        );
        let _ = writeln!(out, "add element inet {TABLE} {skip} {{ {} }}", net.trunc());
    }
}

/// Script for DEL/GC: removes the given pod addresses. Each element is added before it is
/// deleted so that the transaction succeeds whether or not it was still there (nft 1.0.6
/// has no `destroy`), which makes DEL idempotent.
pub fn del_script(ips: &[IpAddr]) -> String {
    let mut out = String::new();
    skeleton(&mut out);
    del_elements(&mut out, ips);
    out
}

fn del_elements(out: &mut String, ips: &[IpAddr]) {
    for ip in ips {
        let (pods, _) = family_sets(ip);
        let _ = writeln!(out, "add element inet {TABLE} {pods} {{ {ip} }}");
        let _ = writeln!(out, "delete element inet {TABLE} {pods} {{ {ip} }}");
    }
}

/// ADD: the pod's addresses (tagged) join the masquerade set, their subnets the skip set.
pub fn apply_add(addrs: &[IpNet], tag: &str) -> Result<(), PluginError> {
    let mut elements = String::new();
    add_elements(&mut elements, addrs, tag);
    crate::nft_apply::elements_first(&elements, || add_script(addrs, tag), "masquerade rules")
}

/// DEL/GC: removes the given pod addresses, whether or not they are still there.
pub fn apply_del(ips: &[IpAddr]) -> Result<(), PluginError> {
    if ips.is_empty() {
        return Ok(());
    }
    let mut elements = String::new();
    del_elements(&mut elements, ips);
    crate::nft_apply::elements_first(&elements, || del_script(ips), "masquerade rules")
}

/// Lists the masquerade elements with their tags, from the live ruleset. A missing table or
/// set means there is nothing to list.
pub fn tagged_elements(
    netns: Option<&weft_datapath::NetnsFd>,
) -> Result<Vec<(IpAddr, String)>, crate::error::PluginError> {
    let mut out = Vec::new();
    for set in ["masq_pods4", "masq_pods6"] {
        let listed = weft_datapath::nft::nft_list_json(&["list", "set", "inet", TABLE, set], netns);
        match listed {
            Ok(v) => out.extend(parse_tagged_elements(&v)),
            // The table does not exist yet: no elements.
            Err(weft_datapath::DatapathError::Nft { .. }) => {}
            Err(e) => {
                return Err(crate::error::PluginError::datapath(
                    "list masquerade set",
                    e,
                ));
            }
        }
    }
    Ok(out)
}

/// Reads `nft -j list set` output: elements are either plain values or
/// `{"elem": {"val": .., "comment": ..}}` when they carry a comment.
fn parse_tagged_elements(v: &serde_json::Value) -> Vec<(IpAddr, String)> {
    let items = v
        .get("nftables")
        .and_then(|n| n.as_array())
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for item in items {
        let elems = item
            .pointer("/set/elem")
            .and_then(|e| e.as_array())
            .cloned()
            .unwrap_or_default();
        for e in elems {
            let (val, comment) = match e.get("elem") {
                Some(inner) => (inner.get("val"), inner.get("comment")),
                None => (Some(&e), None),
            };
            let ip = val
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<IpAddr>().ok());
            let tag = comment.and_then(|c| c.as_str()).unwrap_or("").to_string();
            if let Some(ip) = ip {
                out.push((ip, tag));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_nft_json_elements() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"nftables":[{"metainfo":{}},{"set":{"name":"masq_pods4","elem":[
                {"elem":{"val":"10.1.0.5","comment":"abcd/c1/eth0"}},"10.1.0.6"]}}]}"#,
        )
        .unwrap();
        let e = parse_tagged_elements(&v);
        assert_eq!(
            e,
            vec![
                ("10.1.0.5".parse().unwrap(), "abcd/c1/eth0".to_string()),
                ("10.1.0.6".parse().unwrap(), String::new())
            ]
        );
    }

    use super::*;

    #[test]
    fn add_script_names_sets_per_family_and_subnet() {
        let s = add_script(
            &[
                "10.1.0.5/24".parse().unwrap(),
                "fd00::5/64".parse().unwrap(),
            ],
            "abcd1234/c1/eth0",
        );
        assert!(s.contains(
            "add element inet weft masq_pods4 { 10.1.0.5 comment \"abcd1234/c1/eth0\" }"
        ));
        assert!(s.contains("add element inet weft masq_skip4 { 10.1.0.0/24 }"));
        assert!(s.contains("add element inet weft masq_pods6 { fd00::5 comment"));
        assert!(s.contains("add element inet weft masq_skip6 { fd00::/64 }"));
        assert_eq!(s.matches("masquerade").count(), 2);
        assert!(s.contains("flush chain inet weft masq_postrouting"));
    }

    #[test]
    fn del_script_is_idempotent_by_construction() {
        let s = del_script(&["10.1.0.5".parse().unwrap()]);
        let add = s
            .find("add element inet weft masq_pods4 { 10.1.0.5 }")
            .unwrap();
        let del = s
            .find("delete element inet weft masq_pods4 { 10.1.0.5 }")
            .unwrap();
        assert!(add < del);
    }
}
