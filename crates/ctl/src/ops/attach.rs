//! Which pod attachments still exist on this node, seen from the kernel.
//!
//! The `weft` plugin names the host end of every pod veth after the attachment and records
//! `weft/<network>/<container id>/<ifname>` as its alias. The other end lives in the pod's
//! network namespace, and destroying a namespace destroys the veth pair, so "the host veth
//! with that alias exists" is the same as "the pod's netns and attachment still exist".

use std::collections::HashSet;

use anyhow::{Context, Result};
use weft_datapath::netlink::Netlink;

/// Prefix of the alias the plugin writes on host-side veths.
const ALIAS_PREFIX: &str = "weft/";

/// Links of the namespace weftctl runs in (the node's, when run on the node).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkSnapshot {
    /// Every link name.
    pub names: HashSet<String>,
    /// (network, container id, ifname) of every weft attachment alias.
    pub attachments: HashSet<(String, String, String)>,
}

impl LinkSnapshot {
    /// Builds a snapshot from (name, alias) pairs.
    pub fn from_links<'a>(links: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        let mut snapshot = LinkSnapshot::default();
        for (name, alias) in links {
            snapshot.names.insert(name.to_string());
            if let Some(parsed) = alias.and_then(parse_alias) {
                snapshot.attachments.insert(parsed);
            }
        }
        snapshot
    }

    /// Is (`container`, `ifname`) of `network` attached? `ifname` `None` asks for any
    /// interface of the container (legacy reservations record no interface).
    pub fn has_attachment(&self, network: &str, container: &str, ifname: Option<&str>) -> bool {
        self.attachments
            .iter()
            .any(|(n, c, i)| n == network && c == container && ifname.is_none_or(|want| want == i))
    }
}

/// `weft/<network>/<container>/<ifname>` into its parts (ids never contain `/`).
pub fn parse_alias(alias: &str) -> Option<(String, String, String)> {
    let mut parts = alias.strip_prefix(ALIAS_PREFIX)?.splitn(3, '/');
    let network = parts.next().filter(|s| !s.is_empty())?;
    let container = parts.next().filter(|s| !s.is_empty())?;
    let ifname = parts.next().filter(|s| !s.is_empty())?;
    Some((network.into(), container.into(), ifname.into()))
}

/// Reads the links of the current network namespace (read-only netlink dump).
pub fn snapshot_current_netns() -> Result<LinkSnapshot> {
    let links = Netlink::open()
        .context("open netlink")?
        .links()
        .context("list links")?;
    Ok(LinkSnapshot::from_links(
        links.iter().map(|l| (l.name.as_str(), l.alias.as_deref())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_become_attachments() {
        let s = LinkSnapshot::from_links([
            ("weft0", None),
            ("veth0123abcd", Some("weft/weft/c1/eth0")),
            ("vethother", Some("something else")),
            ("vethbad", Some("weft/weft/c2")),
        ]);
        assert!(s.names.contains("weft0"));
        assert!(s.has_attachment("weft", "c1", Some("eth0")));
        assert!(s.has_attachment("weft", "c1", None));
        assert!(!s.has_attachment("weft", "c1", Some("net1")));
        assert!(!s.has_attachment("other", "c1", None));
        assert!(!s.has_attachment("weft", "c2", None));
        assert_eq!(s.attachments.len(), 1);
    }
}
