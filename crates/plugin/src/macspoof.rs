//! `macspoofchk`: a pod may only send frames with its own source MAC into the bridge.
//!
//! Table `bridge weft_macspoof`: set `ports` holds the host veths under the check, set
//! `allowed` the (port, MAC) pairs; one rule in the bridge prerouting hook drops a frame that
//! enters a checked port with any other source MAC. Per pod that is two set elements, tagged
//! with the attachment (`naming::nft_tag`) so DEL and GC find them, applied as an element-only
//! transaction when the table already exists.

use std::fmt::Write as _;

use serde_json::Value;
use weft_datapath::netlink::{Mac, format_mac};

use crate::error::PluginError;

const TABLE: &str = "weft_macspoof";

fn skeleton(out: &mut String) {
    let _ = writeln!(out, "add table bridge {TABLE}");
    let _ = writeln!(out, "add set bridge {TABLE} ports {{ type ifname; }}");
    let _ = writeln!(
        out,
        "add set bridge {TABLE} allowed {{ type ifname . ether_addr; }}"
    );
    let _ = writeln!(
        out,
        "add chain bridge {TABLE} prerouting {{ type filter hook prerouting priority -300; policy accept; }}"
    );
    let _ = writeln!(out, "flush chain bridge {TABLE} prerouting");
    let _ = writeln!(
        out,
        "add rule bridge {TABLE} prerouting iifname @ports iifname . ether saddr != @allowed drop"
    );
}

/// One pod's elements: its host veth (a weft-generated `veth` + hex name) and its MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// Host-side veth.
    pub port: String,
    /// The pod's MAC in nft syntax.
    pub mac: String,
    /// The attachment tag.
    pub tag: String,
}

fn add_elements(out: &mut String, g: &Guard) {
    let (port, mac, tag) = (&g.port, &g.mac, &g.tag);
    let _ = writeln!(
        out,
        "add element bridge {TABLE} ports {{ \"{port}\" comment \"{tag}\" }}"
    );
    let _ = writeln!(
        out,
        "add element bridge {TABLE} allowed {{ \"{port}\" . {mac} comment \"{tag}\" }}"
    );
}

/// Added before deleted, so the transaction succeeds whether or not they were there.
fn del_elements(out: &mut String, g: &Guard) {
    let (port, mac) = (&g.port, &g.mac);
    for (set, elem) in [
        ("ports", format!("\"{port}\"")),
        ("allowed", format!("\"{port}\" . {mac}")),
    ] {
        let _ = writeln!(out, "add element bridge {TABLE} {set} {{ {elem} }}");
        let _ = writeln!(out, "delete element bridge {TABLE} {set} {{ {elem} }}");
    }
}

/// ADD: only `mac` may leave the pod through `port`.
pub fn apply_add(port: &str, mac: &Mac, tag: &str) -> Result<(), PluginError> {
    let g = Guard {
        port: port.to_string(),
        mac: format_mac(mac),
        tag: tag.to_string(),
    };
    let mut elements = String::new();
    add_elements(&mut elements, &g);
    let full = || {
        let mut full = String::new();
        skeleton(&mut full);
        full + &elements
    };
    crate::nft_apply::elements_first(&elements, full, "MAC spoof check rules")
}

/// DEL/GC: removes the given guards.
pub fn apply_del(guards: &[Guard]) -> Result<(), PluginError> {
    if guards.is_empty() {
        return Ok(());
    }
    let mut elements = String::new();
    for g in guards {
        del_elements(&mut elements, g);
    }
    let full = || {
        let mut full = String::new();
        skeleton(&mut full);
        full + &elements
    };
    crate::nft_apply::elements_first(&elements, full, "MAC spoof check rules")
}

/// Removes every guard whose tag matches (DEL: this attachment's; GC: stale ones).
pub fn remove_tagged(matches: impl Fn(&str) -> bool) -> Result<(), PluginError> {
    let stale: Vec<Guard> = guards()?.into_iter().filter(|g| matches(&g.tag)).collect();
    apply_del(&stale)
}

/// The guards in the live ruleset; a missing table means none.
pub fn guards() -> Result<Vec<Guard>, PluginError> {
    match weft_datapath::nft::nft_list_json(&["list", "set", "bridge", TABLE, "allowed"], None) {
        Ok(v) => Ok(parse_guards(&v)),
        Err(weft_datapath::DatapathError::Nft { .. }) => Ok(Vec::new()),
        Err(e) => Err(PluginError::datapath("list MAC spoof check set", e)),
    }
}

/// `nft -j` prints a concatenated element as `{"elem": {"val": {"concat": [port, mac]},
/// "comment": tag}}`.
fn parse_guards(v: &Value) -> Vec<Guard> {
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for item in items {
        let elems = item
            .pointer("/set/elem")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for e in elems {
            let concat = e.pointer("/elem/val/concat").and_then(Value::as_array);
            let tag = e
                .pointer("/elem/comment")
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Some([port, mac]) = concat.map(Vec::as_slice)
                && let (Some(port), Some(mac)) = (port.as_str(), mac.as_str())
            {
                out.push(Guard {
                    port: port.into(),
                    mac: mac.into(),
                    tag: tag.into(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_concatenated_elements() {
        let v: Value = serde_json::from_str(
            r#"{"nftables":[{"metainfo":{}},{"set":{"name":"allowed","elem":[
                {"elem":{"val":{"concat":["veth0011aabb","0a:58:0a:00:00:05"]},"comment":"abcd1234/c1/eth0"}}]}}]}"#,
        )
        .unwrap();
        assert_eq!(
            parse_guards(&v),
            vec![Guard {
                port: "veth0011aabb".into(),
                mac: "0a:58:0a:00:00:05".into(),
                tag: "abcd1234/c1/eth0".into()
            }]
        );
    }

    #[test]
    fn delete_adds_first() {
        let mut s = String::new();
        let g = Guard {
            port: "vethx".into(),
            mac: "0a:00:00:00:00:01".into(),
            tag: "t".into(),
        };
        del_elements(&mut s, &g);
        assert!(
            s.find("add element bridge weft_macspoof allowed").unwrap()
                < s.find("delete element bridge weft_macspoof allowed")
                    .unwrap()
        );
    }
}
