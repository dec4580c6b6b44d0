//! nftables text for weft-portmap, rendered as data so it can be tested without a kernel.
//!
//! Layout of table `inet weft_portmap` (owned by this plugin alone). Every network gets its
//! own objects, prefixed `n<8 hex of the network name>_`:
//! - maps `dn4ip`, `dn6ip` (key `daddr . l4proto . dport`) and `dn4`, `dn6` (key
//!   `l4proto . dport`), whose values are the pod `address . port` to DNAT to;
//! - chain `hp`: the network's `conditionsV4/V6`, then one DNAT-by-map rule per map,
//!   hostIP-specific maps first; entered from base chains `pre` (prerouting) and `out`
//!   (output) for packets to a local address;
//! - sets `mq4`, `mq6` of `source prefix . pod address` and base chain `post`
//!   (postrouting): DNATed connections matching them are masqueraded (hairpin from the
//!   pod's subnet, IPv4 localhost; or any source with `masqAll`).
//!
//! A pod's mappings are only map and set elements whose comment names the attachment
//! (`<container id> <ifname>`): an ADD is one element-only transaction, which the kernel
//! commits several times faster than one that touches chains or rules, and DEL finds
//! the elements by their comment, without `runtimeConfig` or `prevResult`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use super::conf::{PortMapping, PortmapConf, Targets};
use crate::common::fnv64;

/// The table's family and name.
pub const TABLE: &str = "inet weft_portmap";

/// DNAT maps: (suffix, is IPv4, keyed by address).
pub const DNAT_MAPS: [(&str, bool, bool); 4] = [
    ("dn4ip", true, true),
    ("dn6ip", false, true),
    ("dn4", true, false),
    ("dn6", false, false),
];

/// Masquerade sets: (suffix, is IPv4).
pub const MASQ_SETS: [(&str, bool); 2] = [("mq4", true), ("mq6", false)];

/// The prefix of every object of one network.
pub fn net_prefix(network: &str) -> String {
    format!("n{:08x}_", fnv64(&[network]) >> 32)
}

/// The comment that records which attachment owns an element (unquoted text).
pub fn owner_comment(container_id: &str, ifname: &str) -> String {
    format!("{container_id} {ifname}")
}

/// Reads back [`owner_comment`].
pub fn parse_owner_comment(comment: &str) -> Option<(&str, &str)> {
    comment.split_once(' ')
}

/// The network's maps, sets and chains; idempotent (chains are flushed and refilled in
/// the same transaction), applied only when an element-only ADD finds them missing.
pub fn skeleton(p: &str, conf: &PortmapConf) -> String {
    let t = TABLE;
    let mut out = format!("add table {t}\n");
    for (name, v4, keyed) in DNAT_MAPS {
        let addr = if v4 { "ipv4_addr" } else { "ipv6_addr" };
        let key = if keyed {
            format!("{addr} . inet_proto . inet_service")
        } else {
            "inet_proto . inet_service".to_string()
        };
        let _ = writeln!(
            out,
            "add map {t} {p}{name} {{ type {key} : {addr} . inet_service ; }}"
        );
    }
    for (name, v4) in MASQ_SETS {
        let addr = if v4 { "ipv4_addr" } else { "ipv6_addr" };
        let _ = writeln!(
            out,
            "add set {t} {p}{name} {{ type {addr} . {addr} ; flags interval ; }}"
        );
    }
    let _ = writeln!(out, "add chain {t} {p}hp");
    let _ = writeln!(out, "flush chain {t} {p}hp");
    for (name, v4, keyed) in DNAT_MAPS {
        let (fam, nfproto, conditions) = if v4 {
            ("ip", "ipv4", &conf.conditions_v4)
        } else {
            ("ip6", "ipv6", &conf.conditions_v6)
        };
        let mut rule = format!("meta nfproto {nfproto} ");
        for c in conditions {
            let _ = write!(rule, "{c} ");
        }
        let daddr = if keyed {
            format!("{fam} daddr . ")
        } else {
            String::new()
        };
        let _ = write!(
            rule,
            "dnat {fam} to {daddr}meta l4proto . th dport map @{p}{name}"
        );
        let _ = writeln!(out, "add rule {t} {p}hp {rule}");
    }
    // nft 1.0.6 accepts the `dstnat` keyword only for prerouting; it is -100.
    for (chain, hook, prio) in [
        ("pre", "prerouting", "dstnat"),
        ("out", "output", "-100"),
        ("post", "postrouting", "srcnat"),
    ] {
        let _ = writeln!(
            out,
            "add chain {t} {p}{chain} {{ type nat hook {hook} priority {prio} ; policy accept ; }}"
        );
        let _ = writeln!(out, "flush chain {t} {p}{chain}");
    }
    let _ = writeln!(out, "add rule {t} {p}pre fib daddr type local jump {p}hp");
    let _ = writeln!(out, "add rule {t} {p}out fib daddr type local jump {p}hp");
    let _ = writeln!(
        out,
        "add rule {t} {p}post ct status dnat ip saddr . ip daddr @{p}mq4 masquerade"
    );
    let _ = writeln!(
        out,
        "add rule {t} {p}post ct status dnat ip6 saddr . ip6 daddr @{p}mq6 masquerade"
    );
    out
}

/// One mapping applied to one family: the map element that implements it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Map suffix (`dn4`, `dn4ip`, ...).
    pub map: &'static str,
    /// Element key as nft prints it (`tcp . 8080` or `10.0.0.1 . tcp . 8080`).
    pub key: String,
    /// Element value as nft prints it (`10.1.0.5 . 80`).
    pub value: String,
    /// The mapping.
    pub mapping: PortMapping,
    /// Pod address (with its subnet prefix) the mapping points at.
    pub target: IpNet,
}

/// Expands mappings into per-family entries; a mapping whose family has no pod address
/// (or whose hostIP family has none) is skipped, as the reference does.
pub fn entries(mappings: &[PortMapping], targets: &Targets) -> Vec<Entry> {
    let mut out = Vec::new();
    for m in mappings {
        for v4 in [true, false] {
            let Some(target) = targets.for_family(v4) else {
                continue;
            };
            let host_ip = match m.host_ip {
                Some(ip) if ip.is_ipv4() != v4 => continue,
                Some(ip) if ip.is_unspecified() => None,
                other => other,
            };
            let (map, key) = match host_ip {
                Some(ip) => (
                    if v4 { "dn4ip" } else { "dn6ip" },
                    format!("{ip} . {} . {}", m.proto, m.host_port),
                ),
                None => (
                    if v4 { "dn4" } else { "dn6" },
                    format!("{} . {}", m.proto, m.host_port),
                ),
            };
            out.push(Entry {
                map,
                key,
                value: format!("{} . {}", target.addr(), m.container_port),
                mapping: PortMapping { host_ip, ..*m },
                target,
            });
        }
    }
    out
}

/// Masquerade elements (`source . pod`) for the pods the entries point at.
pub fn masq_elements(entries: &[Entry], conf: &PortmapConf) -> BTreeSet<(&'static str, String)> {
    let mut out = BTreeSet::new();
    if !conf.snat && !conf.masq_all {
        return out;
    }
    for e in entries {
        let pod = e.target.addr();
        let set = if pod.is_ipv4() { "mq4" } else { "mq6" };
        let sources: Vec<String> = match (conf.masq_all, pod) {
            (true, IpAddr::V4(_)) => vec!["0.0.0.0/0".into()],
            (true, IpAddr::V6(_)) => vec!["::/0".into()],
            (false, IpAddr::V4(_)) => vec![e.target.trunc().to_string(), "127.0.0.0/8".into()],
            (false, IpAddr::V6(_)) => vec![e.target.trunc().to_string()],
        };
        for src in sources {
            out.insert((set, format!("{src} . {pod}")));
        }
    }
    out
}

/// The element-only ADD transaction of one attachment; `comment` is an nft string literal.
pub fn render_elements(p: &str, comment: &str, entries: &[Entry], conf: &PortmapConf) -> String {
    let t = TABLE;
    let mut out = String::new();
    for e in entries {
        // `add` succeeds when the same key already holds the same value (a repeated ADD)
        // and fails with EEXIST when it holds another: another pod has the port.
        let _ = writeln!(
            out,
            "add element {t} {p}{} {{ {} comment {comment} : {} }}",
            e.map, e.key, e.value
        );
    }
    for (set, element) in masq_elements(entries, conf) {
        let _ = writeln!(
            out,
            "add element {t} {p}{set} {{ {element} comment {comment} }}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portmap::conf::Proto;

    fn targets() -> Targets {
        Targets {
            v4: Some("10.1.0.5/24".parse().unwrap()),
            v6: Some("fd00::5/64".parse().unwrap()),
        }
    }

    fn mapping(host_ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_port: 8080,
            container_port: 80,
            proto: Proto::Tcp,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn prefixes_are_stable_and_network_scoped() {
        let p = net_prefix("net");
        assert_eq!(p, net_prefix("net"));
        assert_ne!(p, net_prefix("net2"));
        weft_datapath::nft::validate_ident(&format!("{p}dn4ip")).unwrap();
        assert_eq!(parse_owner_comment("c1 eth0"), Some(("c1", "eth0")));
    }

    #[test]
    fn wildcard_mappings_cover_both_families_host_ip_one() {
        let e = entries(&[mapping(None)], &targets());
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].map, e[0].key.as_str()), ("dn4", "tcp . 8080"));
        assert_eq!(e[0].value, "10.1.0.5 . 80");
        assert_eq!((e[1].map, e[1].value.as_str()), ("dn6", "fd00::5 . 80"));
        let e = entries(&[mapping(Some("198.18.0.1"))], &targets());
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].key, "198.18.0.1 . tcp . 8080");
        let e = entries(&[mapping(Some("::"))], &targets());
        assert_eq!((e.len(), e[0].map), (1, "dn6"));
        let v4_only = Targets {
            v6: None,
            ..targets()
        };
        assert_eq!(entries(&[mapping(Some("fd00::1"))], &v4_only), vec![]);
    }

    #[test]
    fn renders_skeleton_with_conditions_and_elements() {
        let conf = PortmapConf::from_value(
            &serde_json::json!({"conditionsV4": ["ip saddr 198.18.0.0/24"]}),
        )
        .unwrap();
        let s = skeleton("n1_", &conf);
        assert!(s.contains(
            "add rule inet weft_portmap n1_hp meta nfproto ipv4 ip saddr 198.18.0.0/24 dnat ip to ip daddr . meta l4proto . th dport map @n1_dn4ip"
        ), "{s}");
        assert!(
            s.contains("dnat ip6 to meta l4proto . th dport map @n1_dn6"),
            "{s}"
        );
        let t = targets();
        let e = entries(&[mapping(None), mapping(None)], &t);
        let s = render_elements("n1_", "\"c1 eth0\"", &e, &conf);
        assert!(s.contains(
            "add element inet weft_portmap n1_dn4 { tcp . 8080 comment \"c1 eth0\" : 10.1.0.5 . 80 }"
        ), "{s}");
        assert!(s.contains("n1_mq4 { 127.0.0.0/8 . 10.1.0.5 comment"), "{s}");
        assert!(s.contains("n1_mq6 { fd00::/64 . fd00::5 comment"), "{s}");
        assert_eq!(
            s.matches("n1_mq4 { 10.1.0.0/24 . 10.1.0.5").count(),
            1,
            "{s}"
        );
        let no_snat = PortmapConf::from_value(&serde_json::json!({"snat": false})).unwrap();
        assert!(!render_elements("n1_", "\"c\"", &e, &no_snat).contains("mq4"));
        let all = PortmapConf::from_value(&serde_json::json!({"masqAll": true})).unwrap();
        assert!(render_elements("n1_", "\"c\"", &e, &all).contains("0.0.0.0/0 . 10.1.0.5"));
    }
}
