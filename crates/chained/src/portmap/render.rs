//! nftables text for weft-portmap, rendered as data so it can be tested without a kernel.
//!
//! Layout of table `inet weft_portmap` (owned by this plugin alone):
//! - `prerouting` / `output` (nat, dstnat): packets to a local address jump to `hostports`;
//! - `hostports`: four verdict maps keyed by `[daddr .] l4proto . dport`, per family,
//!   with hostIP-specific maps looked up first; each element jumps to the owner's chain;
//! - `pm_<net>_<att>`: one chain per attachment with its DNAT rules; the chain's and the
//!   rules' comments name the container id and interface (GC reads the rule comments back:
//!   nft 1.0.6 omits chain comments from JSON);
//! - `postrouting` (nat, srcnat): DNATed connections look the pod address up in `mq4` /
//!   `mq6`, whose elements jump to `pq_<net>_<att>` where hairpin (pod subnet) and
//!   localhost sources of that pod's hostPorts are masqueraded.
//!
//! Everything an attachment owns is reachable from its two chain names, which derive from
//! (network, container id, ifname): DEL needs neither `runtimeConfig` nor `prevResult`.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use super::conf::{PortMapping, PortmapConf, Targets};
use crate::common::fnv64;

/// The table's family and name.
pub const TABLE: &str = "inet weft_portmap";

/// Maps holding hostPort elements (name, is IPv4, keyed by address).
pub const PORT_MAPS: [(&str, bool, bool); 4] = [
    ("hp4ip", true, true),
    ("hp6ip", false, true),
    ("hp4", true, false),
    ("hp6", false, false),
];

/// Maps from pod address to its masquerade chain.
pub const MASQ_MAPS: [&str; 2] = ["mq4", "mq6"];

/// The chain-name prefix shared by all attachments of one network.
pub fn network_tag(network: &str) -> String {
    format!("{:08x}", fnv64(&[network]) >> 32)
}

/// The owner tag of one attachment: `<network tag>_<attachment hash>`.
pub fn owner_tag(network: &str, container_id: &str, ifname: &str) -> String {
    format!(
        "{}_{:016x}",
        network_tag(network),
        fnv64(&[network, container_id, ifname])
    )
}

/// DNAT chain of an owner.
pub fn dnat_chain(owner: &str) -> String {
    format!("pm_{owner}")
}

/// Masquerade chain of an owner.
pub fn masq_chain(owner: &str) -> String {
    format!("pq_{owner}")
}

/// The comment that records which attachment owns a chain (unquoted text).
pub fn owner_comment(container_id: &str, ifname: &str) -> String {
    format!("{container_id} {ifname}")
}

/// Reads back [`owner_comment`].
pub fn parse_owner_comment(comment: &str) -> Option<(&str, &str)> {
    comment.split_once(' ')
}

/// The shared skeleton: idempotent, and its chains are flushed and refilled in the same
/// transaction, so a repeated ADD never duplicates a rule.
fn skeleton(out: &mut String) {
    let t = TABLE;
    let _ = writeln!(out, "add table {t}");
    for (name, v4, keyed) in PORT_MAPS {
        let addr = if v4 { "ipv4_addr . " } else { "ipv6_addr . " };
        let addr = if keyed { addr } else { "" };
        let _ = writeln!(
            out,
            "add map {t} {name} {{ type {addr}inet_proto . inet_service : verdict ; }}"
        );
    }
    let _ = writeln!(out, "add map {t} mq4 {{ type ipv4_addr : verdict ; }}");
    let _ = writeln!(out, "add map {t} mq6 {{ type ipv6_addr : verdict ; }}");
    let _ = writeln!(out, "add chain {t} hostports");
    let _ = writeln!(out, "flush chain {t} hostports");
    for (name, v4, keyed) in PORT_MAPS {
        let rule = match (v4, keyed) {
            (true, true) => format!("ip daddr . meta l4proto . th dport vmap @{name}"),
            (false, true) => format!("ip6 daddr . meta l4proto . th dport vmap @{name}"),
            (true, false) => format!("meta nfproto ipv4 meta l4proto . th dport vmap @{name}"),
            (false, false) => format!("meta nfproto ipv6 meta l4proto . th dport vmap @{name}"),
        };
        let _ = writeln!(out, "add rule {t} hostports {rule}");
    }
    for (chain, hook, prio) in [
        ("prerouting", "prerouting", "dstnat"),
        // nft 1.0.6 accepts the `dstnat` keyword only for prerouting; it is -100.
        ("output", "output", "-100"),
        ("postrouting", "postrouting", "srcnat"),
    ] {
        let _ = writeln!(
            out,
            "add chain {t} {chain} {{ type nat hook {hook} priority {prio} ; policy accept ; }}"
        );
        let _ = writeln!(out, "flush chain {t} {chain}");
    }
    let _ = writeln!(
        out,
        "add rule {t} prerouting fib daddr type local jump hostports"
    );
    let _ = writeln!(
        out,
        "add rule {t} output fib daddr type local jump hostports"
    );
    let _ = writeln!(
        out,
        "add rule {t} postrouting ct status dnat ip daddr vmap @mq4"
    );
    let _ = writeln!(
        out,
        "add rule {t} postrouting ct status dnat ip6 daddr vmap @mq6"
    );
}

/// One mapping applied to one family: the element key and the DNAT rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Map the element goes into.
    pub map: &'static str,
    /// Element key as nft prints it (`tcp . 8080` or `10.0.0.1 . tcp . 8080`).
    pub key: String,
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
                    if v4 { "hp4ip" } else { "hp6ip" },
                    format!("{ip} . {} . {}", m.proto, m.host_port),
                ),
                None => (
                    if v4 { "hp4" } else { "hp6" },
                    format!("{} . {}", m.proto, m.host_port),
                ),
            };
            out.push(Entry {
                map,
                key,
                mapping: PortMapping { host_ip, ..*m },
                target,
            });
        }
    }
    out
}

fn dnat_rule(e: &Entry, conf: &PortmapConf) -> String {
    let m = &e.mapping;
    let v4 = e.target.addr().is_ipv4();
    let (fam, nfproto, conditions) = if v4 {
        ("ip", "ipv4", &conf.conditions_v4)
    } else {
        ("ip6", "ipv6", &conf.conditions_v6)
    };
    let mut rule = format!("meta nfproto {nfproto} ");
    if let Some(ip) = m.host_ip {
        let _ = write!(rule, "{fam} daddr {ip} ");
    }
    let _ = write!(rule, "meta l4proto {} th dport {} ", m.proto, m.host_port);
    for c in conditions {
        let _ = write!(rule, "{c} ");
    }
    let to = match e.target.addr() {
        IpAddr::V4(a) => format!("{a}:{}", m.container_port),
        IpAddr::V6(a) => format!("[{a}]:{}", m.container_port),
    };
    let _ = write!(rule, "dnat {fam} to {to}");
    rule
}

/// Sources masqueraded towards a pod: its own subnet (hairpin and neighbours reaching a
/// hostPort through the node) and, for IPv4, localhost (IPv6 has no route_localnet).
fn masq_rule(e: &Entry, conf: &PortmapConf) -> String {
    let m = &e.mapping;
    let v4 = e.target.addr().is_ipv4();
    let fam = if v4 { "ip" } else { "ip6" };
    let nfproto = if v4 { "ipv4" } else { "ipv6" };
    let mut rule = format!(
        "meta nfproto {nfproto} meta l4proto {} ct original proto-dst {} ",
        m.proto, m.host_port
    );
    if !conf.masq_all {
        let subnet = e.target.trunc();
        if v4 {
            let _ = write!(rule, "{fam} saddr {{ {subnet}, 127.0.0.0/8 }} ");
        } else {
            let _ = write!(rule, "{fam} saddr {subnet} ");
        }
    }
    rule.push_str("masquerade");
    rule
}

/// The whole ADD transaction for one attachment; `comment` is an nft string literal.
pub fn render_add(
    owner: &str,
    comment: &str,
    entries: &[Entry],
    targets: &Targets,
    conf: &PortmapConf,
) -> String {
    let t = TABLE;
    let pm = dnat_chain(owner);
    let pq = masq_chain(owner);
    let mut out = String::new();
    skeleton(&mut out);
    let _ = writeln!(out, "add chain {t} {pm} {{ comment {comment} ; }}");
    let _ = writeln!(out, "flush chain {t} {pm}");
    for e in entries {
        let rule = dnat_rule(e, conf);
        let _ = writeln!(out, "add rule {t} {pm} {rule} comment {comment}");
        // `add element` succeeds when the same key already jumps to this chain (a repeated
        // ADD) and fails with EEXIST when it jumps elsewhere: another pod holds the port.
        let _ = writeln!(out, "add element {t} {} {{ {} : jump {pm} }}", e.map, e.key);
    }
    if conf.snat || conf.masq_all {
        let _ = writeln!(out, "add chain {t} {pq} {{ comment {comment} ; }}");
        let _ = writeln!(out, "flush chain {t} {pq}");
        for e in entries {
            let rule = masq_rule(e, conf);
            let _ = writeln!(out, "add rule {t} {pq} {rule} comment {comment}");
        }
        for (map, target) in [("mq4", targets.v4), ("mq6", targets.v6)] {
            let used = entries
                .iter()
                .any(|e| Some(e.target) == target && target.is_some());
            if let (true, Some(target)) = (used, target) {
                let _ = writeln!(
                    out,
                    "add element {t} {map} {{ {} : jump {pq} }}",
                    target.addr()
                );
            }
        }
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
    fn names_are_stable_short_and_network_scoped() {
        let a = owner_tag("net", "c1", "eth0");
        assert_eq!(a, owner_tag("net", "c1", "eth0"));
        assert_ne!(a, owner_tag("net", "c1", "eth1"));
        assert_ne!(a, owner_tag("net2", "c1", "eth0"));
        assert!(a.starts_with(&network_tag("net")));
        assert!(dnat_chain(&a).len() <= 32);
        weft_datapath::nft::validate_ident(&dnat_chain(&a)).unwrap();
        assert_eq!(parse_owner_comment("c1 eth0"), Some(("c1", "eth0")));
    }

    #[test]
    fn wildcard_mappings_cover_both_families_host_ip_one() {
        let e = entries(&[mapping(None)], &targets());
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].map, e[0].key.as_str()), ("hp4", "tcp . 8080"));
        assert_eq!(e[1].map, "hp6");
        let e = entries(&[mapping(Some("198.18.0.1"))], &targets());
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].key, "198.18.0.1 . tcp . 8080");
        let e = entries(&[mapping(Some("::"))], &targets());
        assert_eq!((e.len(), e[0].map), (1, "hp6"));
        let v4_only = Targets {
            v6: None,
            ..targets()
        };
        assert_eq!(entries(&[mapping(Some("fd00::1"))], &v4_only), vec![]);
    }

    #[test]
    fn renders_dnat_masq_and_elements() {
        let conf = PortmapConf::from_value(&serde_json::json!({"conditionsV4": ["iifname \"x\""]}));
        assert!(conf.is_err(), "quotes are refused");
        let conf = PortmapConf::from_value(
            &serde_json::json!({"conditionsV4": ["ip saddr 198.18.0.0/24"]}),
        )
        .unwrap();
        let t = targets();
        let e = entries(&[mapping(None)], &t);
        let s = render_add("abc", "\"c1 eth0\"", &e, &t, &conf);
        assert!(s.contains(
            "add rule inet weft_portmap pm_abc meta nfproto ipv4 meta l4proto tcp th dport 8080 ip saddr 198.18.0.0/24 dnat ip to 10.1.0.5:80"
        ), "{s}");
        assert!(s.contains("dnat ip6 to [fd00::5]:80"), "{s}");
        assert!(s.contains("add element inet weft_portmap hp4 { tcp . 8080 : jump pm_abc }"));
        assert!(
            s.contains("ip saddr { 10.1.0.0/24, 127.0.0.0/8 } masquerade"),
            "{s}"
        );
        assert!(s.contains("add element inet weft_portmap mq6 { fd00::5 : jump pq_abc }"));
        let no_snat = PortmapConf::from_value(&serde_json::json!({"snat": false})).unwrap();
        let s = render_add("abc", "\"c1 eth0\"", &e, &t, &no_snat);
        assert!(!s.contains("pq_abc"));
    }
}
