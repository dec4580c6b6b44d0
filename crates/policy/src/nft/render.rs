//! Text form for `nft -f -`. Every interpolated value is typed (validated [`Ident`],
//! `IpAddr`, `u16`, enums), so no input can smuggle nft syntax into the script.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use super::{
    Action, AddrField, AddrRange, AddrSet, Family, Ident, L4, PortMatch, Rule, Ruleset, TABLE,
    VerdictMap,
};

fn family_word(f: Family) -> &'static str {
    match f {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

fn key_type(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    }
}

fn l4_word(l4: L4) -> &'static str {
    match l4 {
        L4::Tcp => "tcp",
        L4::Udp => "udp",
        L4::Sctp => "sctp",
    }
}

fn ports_text(m: &PortMatch) -> String {
    let Some(ports) = &m.ports else {
        return format!("meta l4proto {}", l4_word(m.l4));
    };
    let items: Vec<String> = ports
        .iter()
        .map(|(s, e)| {
            if s == e {
                s.to_string()
            } else {
                format!("{s}-{e}")
            }
        })
        .collect();
    match items.as_slice() {
        [one] => format!("{} dport {one}", l4_word(m.l4)),
        _ => format!("{} dport {{ {} }}", l4_word(m.l4), items.join(", ")),
    }
}

/// One rule as nft text (also the input of chain-name hashing).
pub(crate) fn rule_text(rule: &Rule) -> String {
    let mut parts = Vec::new();
    if let Some((field, family, set)) = &rule.addr {
        let field = match field {
            AddrField::Saddr => "saddr",
            AddrField::Daddr => "daddr",
        };
        parts.push(format!("{} {field} @{set}", family_word(*family)));
    }
    if let Some(ports) = &rule.ports {
        parts.push(ports_text(ports));
    }
    parts.push(
        match rule.action {
            Action::Accept => "accept",
            Action::Return => "return",
            Action::Drop => "drop",
        }
        .to_string(),
    );
    parts.join(" ")
}

fn elements_block(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }};", items.join(", "))
    }
}

fn set_text(set: &AddrSet) -> String {
    let items: Vec<String> = set.elements.iter().map(AddrRange::to_string).collect();
    format!(
        "\tset {} {{ type {}; flags interval;{} }}\n",
        set.name,
        key_type(set.family),
        elements_block(&items)
    )
}

fn map_items(map: &VerdictMap) -> Vec<String> {
    map.elements
        .iter()
        .map(|(ip, chain)| format!("{ip} : jump {chain}"))
        .collect()
}

impl Ruleset {
    /// The whole table as one `nft -f -` transaction: `add table` + `delete table` (so the
    /// delete never fails, even the first time) and then the full table, applied atomically.
    pub fn render(&self) -> String {
        let mut out =
            format!("add table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
        for set in &self.sets {
            out.push_str(&set_text(set));
        }
        // Chains before the maps whose elements jump to them.
        for chain in &self.chains {
            let _ = writeln!(out, "\tchain {} {{", chain.name);
            for rule in &chain.rules {
                let _ = writeln!(out, "\t\t{}", rule_text(rule));
            }
            out.push_str("\t}\n");
        }
        for map in &self.maps {
            let _ = writeln!(
                out,
                "\tmap {} {{ type {} : verdict;{} }}",
                map.name,
                key_type(map.family),
                elements_block(&map_items(map))
            );
        }
        out.push_str(BASE_CHAIN);
        out.push_str("}\n");
        out
    }
}

/// The hook chain. Quarantined addresses first, in both directions and before conntrack:
/// an address claimed by a pod weftd does not know yet may still have flows of its
/// previous owner. Then established/related (replies and ICMP errors of allowed flows),
/// then the node's own addresses (kubelet probes), then the source pod's egress group,
/// then the destination pod's ingress group. Misses in the maps fall through to `accept`:
/// pods no policy isolates are not filtered.
const BASE_CHAIN: &str = "\tchain wp_forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tip saddr @wp_quarantine4 drop
\t\tip daddr @wp_quarantine4 drop
\t\tip6 saddr @wp_quarantine6 drop
\t\tip6 daddr @wp_quarantine6 drop
\t\tct state established,related accept
\t\tip saddr @wp_node4 accept
\t\tip6 saddr @wp_node6 accept
\t\tip saddr vmap @wp_egress4
\t\tip6 saddr vmap @wp_egress6
\t\tip daddr vmap @wp_ingress4
\t\tip6 daddr vmap @wp_ingress6
\t}
";

/// One element-level change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementOp {
    /// Remove a range from a set.
    DeleteRange(Ident, AddrRange),
    /// Remove a key from a map.
    DeleteKey(Ident, IpAddr),
    /// Add a range to a set.
    AddRange(Ident, AddrRange),
    /// Add `key : jump chain` to a map.
    AddKey(Ident, IpAddr, Ident),
}

/// Element changes between two rulesets with the same structure; deletions come first so a
/// range that was re-merged never overlaps its old self.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElementDelta {
    /// Changes in application order.
    pub ops: Vec<ElementOp>,
}

impl ElementDelta {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// One `nft -f -` transaction (empty string when nothing changed).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            let _ = match op {
                ElementOp::DeleteRange(set, r) => {
                    writeln!(out, "delete element inet {TABLE} {set} {{ {r} }}")
                }
                ElementOp::DeleteKey(map, ip) => {
                    writeln!(out, "delete element inet {TABLE} {map} {{ {ip} }}")
                }
                ElementOp::AddRange(set, r) => {
                    writeln!(out, "add element inet {TABLE} {set} {{ {r} }}")
                }
                ElementOp::AddKey(map, ip, chain) => {
                    writeln!(
                        out,
                        "add element inet {TABLE} {map} {{ {ip} : jump {chain} }}"
                    )
                }
            };
        }
        out
    }
}

/// The element-only update from `old` to `new`, or `None` when chains, set names or map
/// names differ and the whole table must be re-rendered.
pub fn element_delta(old: &Ruleset, new: &Ruleset) -> Option<ElementDelta> {
    let names = |r: &Ruleset| -> Vec<(Ident, Family)> {
        r.sets.iter().map(|s| (s.name.clone(), s.family)).collect()
    };
    let map_names = |r: &Ruleset| -> Vec<Ident> { r.maps.iter().map(|m| m.name.clone()).collect() };
    if old.chains != new.chains || names(old) != names(new) || map_names(old) != map_names(new) {
        return None;
    }
    let mut deletes = Vec::new();
    let mut adds = Vec::new();
    for (o, n) in old.sets.iter().zip(&new.sets) {
        let before: BTreeSet<&AddrRange> = o.elements.iter().collect();
        let after: BTreeSet<&AddrRange> = n.elements.iter().collect();
        deletes.extend(
            before
                .difference(&after)
                .map(|r| ElementOp::DeleteRange(o.name.clone(), **r)),
        );
        adds.extend(
            after
                .difference(&before)
                .map(|r| ElementOp::AddRange(n.name.clone(), **r)),
        );
    }
    for (o, n) in old.maps.iter().zip(&new.maps) {
        let before: BTreeMap<&IpAddr, &Ident> = o.elements.iter().map(|(k, v)| (k, v)).collect();
        let after: BTreeMap<&IpAddr, &Ident> = n.elements.iter().map(|(k, v)| (k, v)).collect();
        for (ip, chain) in &before {
            if after.get(ip) != Some(chain) {
                deletes.push(ElementOp::DeleteKey(o.name.clone(), **ip));
            }
        }
        for (ip, chain) in &after {
            if before.get(ip) != Some(chain) {
                adds.push(ElementOp::AddKey(n.name.clone(), **ip, (*chain).clone()));
            }
        }
    }
    deletes.extend(adds);
    Some(ElementDelta { ops: deletes })
}
