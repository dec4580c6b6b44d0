//! What `nft -j list table inet weft_portmap` shows, reduced to the elements DEL, GC,
//! CHECK and conflict messages need, and the delete transaction for a set of elements.

use std::fmt::Write as _;

use serde_json::Value;

use super::render::{DNAT_MAPS, TABLE, parse_owner_comment};

/// One element of a map or set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Full map or set name (with the network prefix).
    pub object: String,
    /// Key as nft text (`tcp . 8080`, `10.1.0.0/24 . 10.1.0.5`).
    pub key: String,
    /// Map value as nft text (`10.1.0.5 . 80`); `None` in a set.
    pub value: Option<String>,
    /// Element comment: the owning attachment.
    pub comment: Option<String>,
}

/// The table's contents that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Elements of every map and set.
    pub elements: Vec<Element>,
    /// Chain names.
    pub chains: Vec<String>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => {
            if let Some(parts) = o.get("concat").and_then(Value::as_array) {
                let parts = parts.iter().map(text).collect::<Option<Vec<_>>>()?;
                return Some(parts.join(" . "));
            }
            if let Some(p) = o.get("prefix") {
                return Some(format!(
                    "{}/{}",
                    text(p.get("addr")?)?,
                    text(p.get("len")?)?
                ));
            }
            if let Some(r) = o.get("range").and_then(Value::as_array) {
                return Some(format!("{}-{}", text(r.first()?)?, text(r.get(1)?)?));
            }
            None
        }
        _ => None,
    }
}

/// A key as listed: either plain or wrapped in `{"elem": {"val", "comment"}}`.
fn key_and_comment(v: &Value) -> Option<(String, Option<String>)> {
    match v.get("elem") {
        Some(elem) => Some((
            text(elem.get("val")?)?,
            elem.get("comment")
                .and_then(Value::as_str)
                .map(str::to_string),
        )),
        None => Some((text(v)?, None)),
    }
}

fn push_elements(listing: &mut Listing, object: &Value, is_map: bool) {
    let name = object
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let elems = object
        .get("elem")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for item in elems {
        let (key, value) = if is_map {
            (item.get(0), item.get(1).and_then(text))
        } else {
            (Some(item), None)
        };
        if let Some((key, comment)) = key.and_then(key_and_comment) {
            listing.elements.push(Element {
                object: name.to_string(),
                key,
                value,
                comment,
            });
        }
    }
}

/// Parses the JSON listing; unknown objects are ignored.
pub fn parse_listing(v: &Value) -> Listing {
    let mut listing = Listing::default();
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for item in items {
        if let Some(map) = item.get("map") {
            push_elements(&mut listing, map, true);
        } else if let Some(set) = item.get("set") {
            push_elements(&mut listing, set, false);
        } else if let Some(name) = item
            .get("chain")
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
        {
            listing.chains.push(name.to_string());
        }
    }
    listing
}

impl Listing {
    /// Elements of one network's objects.
    pub fn in_network<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements
            .iter()
            .filter(move |e| e.object.starts_with(prefix))
    }

    /// Elements of one network owned by the attachment named in `comment`.
    pub fn owned(&self, prefix: &str, comment: &str) -> Vec<&Element> {
        self.elements
            .iter()
            .filter(|e| e.object.starts_with(prefix) && e.comment.as_deref() == Some(comment))
            .collect()
    }

    /// The attachment holding `key` in map `object`, when another one does.
    pub fn holder(&self, object: &str, key: &str) -> Option<&Element> {
        self.elements
            .iter()
            .find(|e| e.object == object && e.key == key)
    }

    /// Whether a chain exists.
    pub fn has_chain(&self, name: &str) -> bool {
        self.chains.iter().any(|c| c == name)
    }
}

/// (container id, ifname) named by an element's comment.
pub fn owner_of(e: &Element) -> Option<(&str, &str)> {
    parse_owner_comment(e.comment.as_deref()?)
}

/// UDP host ports among DNAT elements, with their family (`true` = IPv4).
pub fn udp_ports(prefix: &str, elements: &[&Element]) -> Vec<(bool, u16)> {
    elements
        .iter()
        .filter_map(|e| {
            let suffix = e.object.strip_prefix(prefix)?;
            let v4 = DNAT_MAPS.iter().find(|(m, ..)| *m == suffix)?.1;
            let mut parts = e.key.rsplit(" . ");
            let port = parts.next()?.parse().ok()?;
            (parts.next()? == "udp").then_some((v4, port))
        })
        .collect()
}

/// One transaction deleting `elements`; `None` when there is nothing to delete.
pub fn render_delete(elements: &[&Element]) -> Option<String> {
    let mut out = String::new();
    for e in elements {
        let _ = writeln!(out, "delete element {TABLE} {} {{ {} }}", e.object, e.key);
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
            {"map": {"name": "n1_dn4", "elem": [
                [{"elem": {"val": {"concat": ["tcp", 8080]}, "comment": "c1 eth0"}},
                 {"concat": ["10.1.0.5", 80]}],
                [{"elem": {"val": {"concat": ["udp", 53]}, "comment": "c1 eth0"}},
                 {"concat": ["10.1.0.5", 53]}],
                [{"elem": {"val": {"concat": ["tcp", 9090]}, "comment": "c2 eth0"}},
                 {"concat": ["10.1.0.6", 80]}]
            ]}},
            {"map": {"name": "n1_dn6ip", "elem": [
                [{"elem": {"val": {"concat": ["fd18::1", "udp", 5353]}, "comment": "c1 eth0"}},
                 {"concat": ["fd00::5", 53]}]
            ]}},
            {"set": {"name": "n1_mq4", "elem": [
                {"elem": {"val": {"concat": [{"prefix": {"addr": "10.1.0.0", "len": 24}}, "10.1.0.5"]},
                          "comment": "c1 eth0"}}
            ]}},
            {"map": {"name": "n2_dn4", "elem": [
                [{"elem": {"val": {"concat": ["tcp", 8080]}, "comment": "c1 eth0"}},
                 {"concat": ["10.2.0.5", 80]}]
            ]}},
            {"chain": {"name": "n1_hp"}}
        ]})
    }

    #[test]
    fn finds_what_an_attachment_owns_in_its_network() {
        let l = parse_listing(&sample());
        let owned = l.owned("n1_", "c1 eth0");
        assert_eq!(owned.len(), 4);
        assert_eq!(owned[0].value.as_deref(), Some("10.1.0.5 . 80"));
        assert_eq!(owned[3].key, "10.1.0.0/24 . 10.1.0.5");
        assert_eq!(udp_ports("n1_", &owned), vec![(true, 53), (false, 5353)]);
        let holder = l.holder("n1_dn4", "tcp . 9090").unwrap();
        assert_eq!(owner_of(holder), Some(("c2", "eth0")));
        assert!(l.has_chain("n1_hp"));
    }

    #[test]
    fn delete_script_names_each_element() {
        let l = parse_listing(&sample());
        let s = render_delete(&l.owned("n1_", "c1 eth0")).unwrap();
        assert!(s.contains("delete element inet weft_portmap n1_dn4 { tcp . 8080 }"));
        assert!(s.contains("delete element inet weft_portmap n1_dn6ip { fd18::1 . udp . 5353 }"));
        assert!(s.contains("delete element inet weft_portmap n1_mq4 { 10.1.0.0/24 . 10.1.0.5 }"));
        assert!(!s.contains("9090") && !s.contains("10.2.0.5"));
        assert_eq!(render_delete(&l.owned("n1_", "zz eth0")), None);
    }
}
