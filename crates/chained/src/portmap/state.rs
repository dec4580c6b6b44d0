//! What `nft -j list table inet weft_portmap` shows, reduced to what DEL, GC, CHECK and
//! conflict messages need, and the delete transaction for one owner.

use std::fmt::Write as _;

use serde_json::Value;

use super::render::{MASQ_MAPS, PORT_MAPS, TABLE, dnat_chain, masq_chain, parse_owner_comment};

/// One map element that jumps to a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Map name.
    pub map: String,
    /// Key as nft text (`tcp . 8080`).
    pub key: String,
    /// Chain the element jumps to.
    pub target: String,
}

/// One chain with its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Chain name.
    pub name: String,
    /// Chain comment, if any.
    pub comment: Option<String>,
}

/// The table's contents that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Elements of the hostPort and masquerade maps.
    pub elements: Vec<Element>,
    /// Every chain.
    pub chains: Vec<Chain>,
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => o.get("elem").and_then(|e| e.get("val")).and_then(key_text),
        _ => None,
    }
}

fn key_text(v: &Value) -> Option<String> {
    match v.get("concat").and_then(Value::as_array) {
        Some(parts) => parts
            .iter()
            .map(scalar_text)
            .collect::<Option<Vec<_>>>()
            .map(|p| p.join(" . ")),
        None => scalar_text(v),
    }
}

fn jump_target(v: &Value) -> Option<String> {
    v.get("jump")?.get("target")?.as_str().map(str::to_string)
}

/// Parses the JSON listing; unknown objects are ignored.
pub fn parse_listing(v: &Value) -> Listing {
    let mut listing = Listing::default();
    let mut rule_comments: Vec<(String, String)> = Vec::new();
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for item in items {
        if let Some(map) = item.get("map") {
            let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
            let elems = map
                .get("elem")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            for pair in elems {
                let (Some(key), Some(val)) = (pair.get(0), pair.get(1)) else {
                    continue;
                };
                if let (Some(key), Some(target)) = (key_text(key), jump_target(val)) {
                    listing.elements.push(Element {
                        map: name.to_string(),
                        key,
                        target,
                    });
                }
            }
        } else if let Some(rule) = item.get("rule") {
            // nft 1.0.6 leaves chain comments out of JSON; rule comments carry the owner.
            let chain = rule.get("chain").and_then(Value::as_str);
            let comment = rule.get("comment").and_then(Value::as_str);
            if let (Some(chain), Some(comment)) = (chain, comment) {
                rule_comments.push((chain.to_string(), comment.to_string()));
            }
        } else if let Some(chain) = item.get("chain") {
            listing.chains.push(Chain {
                name: chain
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                comment: chain
                    .get("comment")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        }
    }
    for chain in &mut listing.chains {
        if chain.comment.is_none() {
            chain.comment = rule_comments
                .iter()
                .find(|(c, _)| *c == chain.name)
                .map(|(_, comment)| comment.clone());
        }
    }
    listing
}

impl Listing {
    /// Elements that jump into `owner`'s chains.
    pub fn owned_elements(&self, owner: &str) -> Vec<&Element> {
        let (pm, pq) = (dnat_chain(owner), masq_chain(owner));
        self.elements
            .iter()
            .filter(|e| e.target == pm || e.target == pq)
            .collect()
    }

    /// Whether a chain exists.
    pub fn has_chain(&self, name: &str) -> bool {
        self.chains.iter().any(|c| c.name == name)
    }

    /// The attachment (container id, ifname) whose chain an element of `map`/`key` jumps to.
    pub fn holder(&self, map: &str, key: &str) -> Option<(String, String)> {
        let e = self
            .elements
            .iter()
            .find(|e| e.map == map && e.key == key)?;
        let chain = self.chains.iter().find(|c| c.name == e.target)?;
        let (cid, ifname) = parse_owner_comment(chain.comment.as_deref()?)?;
        Some((cid.to_string(), ifname.to_string()))
    }

    /// Owners of DNAT chains in a network, with the attachment their comment names.
    pub fn owners(&self, network_tag: &str) -> Vec<(String, Option<(String, String)>)> {
        let prefix = format!("pm_{network_tag}_");
        self.chains
            .iter()
            .filter_map(|c| {
                let suffix = c.name.strip_prefix(&prefix)?;
                let att = c
                    .comment
                    .as_deref()
                    .and_then(parse_owner_comment)
                    .map(|(a, b)| (a.to_string(), b.to_string()));
                Some((format!("{network_tag}_{suffix}"), att))
            })
            .collect()
    }

    /// UDP host ports of an owner, with their family (`true` = IPv4).
    pub fn owned_udp_ports(&self, owner: &str) -> Vec<(bool, u16)> {
        self.owned_elements(owner)
            .iter()
            .filter_map(|e| {
                let v4 = PORT_MAPS.iter().find(|(m, ..)| *m == e.map)?.1;
                let mut parts = e.key.rsplit(" . ");
                let port = parts.next()?.parse().ok()?;
                (parts.next()? == "udp").then_some((v4, port))
            })
            .collect()
    }
}

/// The transaction removing everything `owner` has; `None` when it has nothing.
pub fn render_delete(owner: &str, listing: &Listing) -> Option<String> {
    let mut out = String::new();
    for e in listing.owned_elements(owner) {
        let known = PORT_MAPS.iter().any(|(m, ..)| *m == e.map) || MASQ_MAPS.contains(&&*e.map);
        if known {
            let _ = writeln!(out, "delete element {TABLE} {} {{ {} }}", e.map, e.key);
        }
    }
    for chain in [dnat_chain(owner), masq_chain(owner)] {
        if listing.has_chain(&chain) {
            let _ = writeln!(out, "delete chain {TABLE} {chain}");
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({"nftables": [
            {"metainfo": {}},
            {"table": {"family": "inet", "name": "weft_portmap"}},
            {"map": {"name": "hp4", "elem": [
                [{"concat": ["tcp", 8080]}, {"jump": {"target": "pm_n_a"}}],
                [{"concat": ["udp", 53]}, {"jump": {"target": "pm_n_a"}}],
                [{"concat": ["tcp", 9090]}, {"jump": {"target": "pm_n_b"}}]
            ]}},
            {"map": {"name": "hp6ip", "elem": [
                [{"concat": ["fd00::1", "udp", 5353]}, {"jump": {"target": "pm_n_a"}}]
            ]}},
            {"map": {"name": "mq4", "elem": [["10.1.0.5", {"jump": {"target": "pq_n_a"}}]]}},
            {"chain": {"name": "hostports"}},
            {"chain": {"name": "pm_n_a", "comment": "c1 eth0"}},
            {"chain": {"name": "pq_n_a", "comment": "c1 eth0"}},
            {"chain": {"name": "pm_n_b", "comment": "c2 eth0"}},
            {"chain": {"name": "pm_m_c"}},
            {"rule": {"chain": "pm_m_c", "comment": "c3 eth0", "expr": []}}
        ]})
    }

    #[test]
    fn finds_what_an_owner_has() {
        let l = parse_listing(&sample());
        assert_eq!(l.owned_elements("n_a").len(), 4);
        assert_eq!(l.owned_udp_ports("n_a"), vec![(true, 53), (false, 5353)]);
        assert_eq!(
            l.holder("hp4", "tcp . 9090"),
            Some(("c2".into(), "eth0".into()))
        );
        let owners = l.owners("n");
        assert_eq!(owners.len(), 2);
        assert_eq!(
            owners[0],
            ("n_a".into(), Some(("c1".into(), "eth0".into())))
        );
        assert_eq!(l.owners("m")[0].1, Some(("c3".into(), "eth0".into())));
    }

    #[test]
    fn delete_script_covers_elements_and_chains() {
        let l = parse_listing(&sample());
        let s = render_delete("n_a", &l).unwrap();
        assert!(s.contains("delete element inet weft_portmap hp4 { tcp . 8080 }"));
        assert!(s.contains("delete element inet weft_portmap hp6ip { fd00::1 . udp . 5353 }"));
        assert!(s.contains("delete element inet weft_portmap mq4 { 10.1.0.5 }"));
        assert!(s.contains("delete chain inet weft_portmap pm_n_a"));
        assert!(s.contains("delete chain inet weft_portmap pq_n_a"));
        assert!(!s.contains("9090"));
        assert_eq!(render_delete("zz", &l), None);
    }
}
