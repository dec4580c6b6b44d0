//! Deterministic names and tags for host-side objects.
//!
//! The host end of a pod's veth gets a name derived from the attachment, so that DEL can find
//! it after the pod namespace is gone and a repeated ADD can recognise its own work. The full
//! attachment is also stored as the link's alias (`IFLA_IFALIAS`), which GC reads back: a hash
//! cannot be inverted, an alias can.

/// Prefix of every host-side veth weft creates.
pub const HOST_VETH_PREFIX: &str = "veth";

/// Link group (`IFLA_GROUP`) of every host-side veth weft creates ("weft" in ASCII). It is
/// set in the creating message, so a veth whose ADD was killed before the alias was written
/// is still recognisably weft's and GC can collect it.
pub const HOST_VETH_GROUP: u32 = 0x7765_6674;

/// Prefix of the alias weft stores on host-side veths: `weft/<network>/<container>/<ifname>`.
pub const ALIAS_PREFIX: &str = "weft/";

/// 64-bit FNV-1a: tiny, stable across releases and platforms, good enough to spread names.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Host-side veth name for an attachment: `veth` + 8 hex digits (12 bytes, under IFNAMSIZ).
pub fn host_veth_name(network: &str, container_id: &str, ifname: &str) -> String {
    let h = fnv1a(&[network, container_id, ifname]);
    format!("{HOST_VETH_PREFIX}{:08x}", (h >> 32) ^ (h & 0xffff_ffff))
}

/// The alias that ties a host veth to its attachment.
pub fn attachment_alias(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{ALIAS_PREFIX}{network}/{container_id}/{ifname}")
}

/// Parses an alias written by [`attachment_alias`] back into (network, container id, ifname).
/// Container ids and network names cannot contain `/` (validated on input), so splitting is exact.
pub fn parse_alias(alias: &str) -> Option<(&str, &str, &str)> {
    let rest = alias.strip_prefix(ALIAS_PREFIX)?;
    let mut it = rest.splitn(3, '/');
    let net = it.next()?;
    let cid = it.next()?;
    let ifname = it.next()?;
    Some((net, cid, ifname))
}

/// Prefix of the alias a DEL gives a host veth it has cut off and handed to a detached
/// deleter: `weft-del/<network>/<container>/<ifname>`.
pub const RETIRED_ALIAS_PREFIX: &str = "weft-del/";

/// The alias a host veth carrying `alias` (from [`attachment_alias`]) gets when retired.
pub fn retired_alias_of(alias: &str) -> String {
    let attachment = alias.strip_prefix(ALIAS_PREFIX).unwrap_or(alias);
    format!("{RETIRED_ALIAS_PREFIX}{attachment}")
}

/// The network of a retired host veth's alias.
pub fn retired_network(alias: &str) -> Option<&str> {
    alias.strip_prefix(RETIRED_ALIAS_PREFIX)?.split('/').next()
}

/// Prefix of this network's nftables element tags: 8 hex digits of the network name's hash,
/// so GC can pick out its own network's elements without the name's length or characters
/// ever reaching nft syntax.
pub fn nft_network_prefix(network: &str) -> String {
    format!("{:08x}/", fnv1a(&[network]) & 0xffff_ffff)
}

/// Tag placed (as an nftables element comment) on per-attachment elements.
///
/// nft comments hold at most 128 bytes and must not contain quotes, so long or unusual
/// attachments are tagged by hash instead; GC only ever compares tags for equality.
pub fn nft_tag(network: &str, container_id: &str, ifname: &str) -> String {
    let prefix = nft_network_prefix(network);
    let plain = format!("{prefix}{container_id}/{ifname}");
    let safe = plain
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'));
    if safe && plain.len() <= 120 {
        plain
    } else {
        format!("{prefix}#{:016x}", fnv1a(&[network, container_id, ifname]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_alias_keeps_the_attachment_and_network() {
        let alias = attachment_alias("net-a", "c1", "eth0");
        let retired = retired_alias_of(&alias);
        assert_eq!(retired, "weft-del/net-a/c1/eth0");
        assert_eq!(retired_network(&retired), Some("net-a"));
        assert!(parse_alias(&retired).is_none());
        assert_eq!(retired_network(&alias), None);
    }

    #[test]
    fn names_are_short_stable_and_distinct() {
        let a = host_veth_name("net", "abc", "eth0");
        assert_eq!(a, host_veth_name("net", "abc", "eth0"));
        assert_eq!(a.len(), 12);
        assert_ne!(a, host_veth_name("net", "abc", "eth1"));
        assert_ne!(a, host_veth_name("net2", "abc", "eth0"));
        // "ab"+"c" must not collide with "a"+"bc": parts are separated before hashing.
        assert_ne!(
            host_veth_name("n", "ab", "c"),
            host_veth_name("n", "a", "bc")
        );
    }

    #[test]
    fn nft_tags_are_bounded_and_quote_free() {
        let t = nft_tag("net", "abc", "eth0");
        assert!(t.ends_with("/abc/eth0") && t.starts_with(&nft_network_prefix("net")));
        let long = "x".repeat(200);
        let t = nft_tag("net", &long, "eth0");
        assert!(t.len() < 40 && t.starts_with(&nft_network_prefix("net")));
        let t = nft_tag("net", "abc", "e\"th0");
        assert!(!t.contains('"'));
    }

    #[test]
    fn alias_round_trips() {
        let a = attachment_alias("net", "abc", "eth0");
        assert_eq!(parse_alias(&a), Some(("net", "abc", "eth0")));
        assert_eq!(parse_alias("other"), None);
    }
}
