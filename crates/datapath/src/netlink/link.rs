//! Links: lookup, bridge/veth/vxlan creation, attribute changes, deletion.

use std::net::IpAddr;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth, InfoVxlan, LinkAttribute,
    LinkExtentMask, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage, State,
};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan};

use super::{CREATE_EXCL, Netlink};
use crate::error::{DatapathError, Result};
use crate::netns::NetnsFd;

pub use super::mac::Mac;

/// Linux limits interface names to IFNAMSIZ - 1 bytes.
pub const MAX_IFNAME_LEN: usize = 15;

/// What the kernel reports about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_INFO_KIND` (`veth`, `bridge`, `vxlan`, ...); `None` for physical devices and `lo`.
    pub kind: Option<String>,
    /// Hardware address, when it is a 6-byte MAC.
    pub mac: Option<Mac>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Operationally up (IFLA_OPERSTATE is UP): carrier present. The kernel updates this
    /// asynchronously (linkwatch, up to ~1 s) after both veth ends are set up; a bridge
    /// port only forwards once it is.
    pub oper_up: bool,
    /// Promiscuous mode flag (IFF_PROMISC).
    pub promisc: bool,
    /// Index of the bridge (or other controller) this link is enslaved to.
    pub master: Option<u32>,
    /// Bridge port options as reported (IFLA_INFO_SLAVE_DATA) when enslaved to a bridge.
    pub bridge_port: Option<BridgePortFlags>,
    /// For a veth the peer's index (IFLA_LINK, an index in the peer's namespace); for a
    /// vxlan the underlay device (IFLA_VXLAN_LINK).
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set when the peer/underlay lives in another namespace.
    pub link_netnsid: Option<i32>,
    /// `IFLA_IFALIAS`: free text an owner can leave on a link (weft records the attachment).
    pub alias: Option<String>,
    /// `IFLA_GROUP` (0 = the default group).
    pub group: u32,
}

/// A veth pair to create: host end in the socket's namespace, peer anywhere.
#[derive(Debug, Clone, Copy)]
pub struct VethSpec<'a> {
    /// Name of the end created in this socket's namespace.
    pub name: &'a str,
    /// Name of the peer (e.g. `CNI_IFNAME`).
    pub peer_name: &'a str,
    /// Namespace the peer is created in directly (IFLA_NET_NS_FD), avoiding a later move.
    pub peer_netns: Option<&'a NetnsFd>,
    /// MTU for both ends.
    pub mtu: Option<u32>,
    /// MAC for the local end (kernel picks a random one otherwise).
    pub mac: Option<Mac>,
    /// MAC for the peer.
    pub peer_mac: Option<Mac>,
    /// Link group (`IFLA_GROUP`) of the local end, set in the creating message itself: an
    /// owner that dies right after creation can still recognise its link by the group,
    /// which a follow-up call (e.g. setting an alias) cannot guarantee.
    pub group: Option<u32>,
}

/// How a new veth pair starts, beyond [`VethSpec`]: the kernel applies these in the
/// creating request itself (`rtnl_configure_link` for both ends, `IFLA_MASTER` for the
/// local end), so no follow-up request is needed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VethStart {
    /// Enslave the local end to this bridge.
    pub master: Option<u32>,
    /// Bring the local end up. (The peer cannot be: kernel 6.18 answers ENOTCONN to a
    /// veth whose peer message carries IFF_UP.)
    pub up: bool,
}

/// A VXLAN device to create (flannel-style: one device, FDB entries per remote node).
#[derive(Debug, Clone, Copy)]
pub struct VxlanSpec<'a> {
    /// Device name.
    pub name: &'a str,
    /// VXLAN network identifier.
    pub vni: u32,
    /// Local underlay address (source of encapsulated packets).
    pub local: Option<IpAddr>,
    /// UDP port; Linux defaults to 8472, so callers should pass 4789 explicitly.
    pub port: u16,
    /// Learn remote MACs from traffic; off when FDB entries are programmed.
    pub learning: bool,
    /// Underlay device index.
    pub underlay: Option<u32>,
    /// MTU (underlay MTU − 50 for IPv4, − 70 for IPv6).
    pub mtu: Option<u32>,
    /// Device MAC.
    pub mac: Option<Mac>,
}

/// Bridge port options; `None` leaves the current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgePortFlags {
    /// IFLA_BRPORT_MODE: send frames back out of the port they came in (hairpin).
    pub hairpin: Option<bool>,
    /// IFLA_BRPORT_LEARNING.
    pub learning: Option<bool>,
}

/// Checks an interface name before it reaches the kernel.
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > MAX_IFNAME_LEN
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if bad {
        return Err(DatapathError::Invalid(format!(
            "bad interface name {name:?}"
        )));
    }
    Ok(())
}

impl Netlink {
    /// Looks a link up by name; a missing link is an error with `is_not_found()`.
    pub fn link_by_name(&mut self, name: &str) -> Result<LinkInfo> {
        validate_ifname(name)?;
        let msg = LinkUnspec::new_with_name(name).build();
        self.get_link(&format!("get link {name}"), msg)
    }

    /// Looks a link up by index.
    pub fn link_by_index(&mut self, index: u32) -> Result<LinkInfo> {
        let msg = LinkUnspec::new_with_index(index).build();
        self.get_link(&format!("get link #{index}"), msg)
    }

    /// Like [`Netlink::link_by_name`] but `Ok(None)` when it does not exist.
    pub fn find_link(&mut self, name: &str) -> Result<Option<LinkInfo>> {
        match self.link_by_name(name) {
            Ok(link) => Ok(Some(link)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All links of the namespace.
    pub fn links(&mut self) -> Result<Vec<LinkInfo>> {
        let replies = self.dump(
            "list links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(msg) => Some(parse_link(&msg)),
                _ => None,
            })
            .collect())
    }

    /// Creates a bridge (the builder sets it up); EEXIST if the name is taken.
    pub fn create_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<LinkInfo> {
        validate_ifname(name)?;
        let mut builder = LinkBridge::new(name);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        self.create_link(name, builder.build())
    }

    /// Creates a veth pair with the peer born directly in `spec.peer_netns`.
    ///
    /// Both ends start down. Returns the local end.
    pub fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<LinkInfo> {
        let msg = veth_message(spec, VethStart::default())?;
        self.create_link(spec.name, msg)
    }

    /// Creates a veth pair already enslaved and/or up, in one request and without reading
    /// it back: every extra round trip is paid once per pod. EEXIST if either name is taken.
    pub fn create_veth_started(&mut self, spec: &VethSpec<'_>, start: VethStart) -> Result<()> {
        let msg = veth_message(spec, start)?;
        self.request(
            &format!("add link {}", spec.name),
            RouteNetlinkMessage::NewLink(msg),
            CREATE_EXCL,
        )
    }

    /// Creates a VXLAN device (down).
    pub fn create_vxlan(&mut self, spec: &VxlanSpec<'_>) -> Result<LinkInfo> {
        validate_ifname(spec.name)?;
        let mut builder = LinkVxlan::new(spec.name, spec.vni)
            .port(spec.port)
            .learning(spec.learning);
        builder = match spec.local {
            Some(IpAddr::V4(ip)) => builder.local(ip),
            Some(IpAddr::V6(ip)) => builder.local6(ip),
            None => builder,
        };
        if let Some(dev) = spec.underlay {
            builder = builder.dev(dev);
        }
        if let Some(mtu) = spec.mtu {
            builder = builder.mtu(mtu);
        }
        if let Some(mac) = spec.mac {
            builder = builder.address(mac.to_vec());
        }
        self.create_link(spec.name, builder.build())
    }

    /// Sets a link administratively up or down.
    pub fn set_up(&mut self, index: u32, up: bool) -> Result<()> {
        let builder = LinkUnspec::new_with_index(index);
        let builder = if up { builder.up() } else { builder.down() };
        self.set_link(&format!("set link #{index} up={up}"), builder.build())
    }

    /// Sets the MTU.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.set_link(&format!("set link #{index} mtu {mtu}"), msg)
    }

    /// Sets the hardware address.
    pub fn set_mac(&mut self, index: u32, mac: Mac) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .build();
        self.set_link(&format!("set link #{index} address"), msg)
    }

    /// Sets the link's alias (`IFLA_IFALIAS`, at most 255 bytes); an empty string clears it.
    pub fn set_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        if alias.len() > 255 {
            return Err(DatapathError::Invalid(format!(
                "alias of {} bytes is too long",
                alias.len()
            )));
        }
        let mut msg = LinkUnspec::new_with_index(index).build();
        msg.attributes
            .push(LinkAttribute::IfAlias(alias.to_string()));
        self.set_link(&format!("set link #{index} alias"), msg)
    }

    /// Sets a link down and replaces its alias in one request (a link being given up:
    /// it stops carrying traffic at once and says so to whoever lists links).
    pub fn retire_link(&mut self, index: u32, alias: &str) -> Result<()> {
        if alias.len() > 255 {
            return Err(DatapathError::Invalid(format!(
                "alias of {} bytes is too long",
                alias.len()
            )));
        }
        let mut msg = LinkUnspec::new_with_index(index).down().build();
        msg.attributes
            .push(LinkAttribute::IfAlias(alias.to_string()));
        self.set_link(&format!("retire link #{index}"), msg)
    }

    /// Enslaves the link to `master` (a bridge), or releases it with `None`.
    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<()> {
        let builder = LinkUnspec::new_with_index(index);
        let builder = match master {
            Some(master) => builder.controller(master),
            None => builder.nocontroller(),
        };
        self.set_link(
            &format!("set link #{index} master {master:?}"),
            builder.build(),
        )
    }

    /// Turns promiscuous mode on or off.
    pub fn set_promisc(&mut self, index: u32, on: bool) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).promiscuous(on).build();
        self.set_link(&format!("set link #{index} promisc {on}"), msg)
    }

    /// Changes bridge port options of an enslaved link.
    pub fn set_bridge_port(&mut self, index: u32, flags: BridgePortFlags) -> Result<()> {
        let mut builder = LinkBridgePort::new(index);
        if let Some(hairpin) = flags.hairpin {
            builder = builder.hairpin(hairpin);
        }
        if let Some(learning) = flags.learning {
            builder = builder.learning(learning);
        }
        // Port data (IFLA_INFO_SLAVE_DATA) is only applied by RTM_NEWLINK, not RTM_SETLINK.
        let op = format!("set bridge port #{index}");
        self.request(&op, RouteNetlinkMessage::NewLink(builder.build()), 0)
    }

    /// Deletes a link; `Ok(false)` if it did not exist (ENODEV). Deleting one veth end
    /// removes its peer too.
    pub fn delete_link(&mut self, index: u32) -> Result<bool> {
        let msg = LinkUnspec::new_with_index(index).build();
        tolerate_missing(self.request(
            &format!("delete link #{index}"),
            RouteNetlinkMessage::DelLink(msg),
            0,
        ))
    }

    /// Deletes a link by name; `Ok(false)` if it did not exist.
    pub fn delete_link_by_name(&mut self, name: &str) -> Result<bool> {
        validate_ifname(name)?;
        let msg = LinkUnspec::new_with_name(name).build();
        tolerate_missing(self.request(
            &format!("delete link {name}"),
            RouteNetlinkMessage::DelLink(msg),
            0,
        ))
    }

    fn create_link(&mut self, name: &str, msg: LinkMessage) -> Result<LinkInfo> {
        self.request(
            &format!("add link {name}"),
            RouteNetlinkMessage::NewLink(msg),
            CREATE_EXCL,
        )?;
        self.link_by_name(name)
    }

    fn set_link(&mut self, op: &str, msg: LinkMessage) -> Result<()> {
        self.request(op, RouteNetlinkMessage::SetLink(msg), 0)
    }

    fn get_link(&mut self, op: &str, mut msg: LinkMessage) -> Result<LinkInfo> {
        // `LinkInfo` holds no counters: skip the per-CPU statistics (link and IPv6) the
        // kernel would otherwise sum up and send, about 1 KiB per answer.
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let seq_reply = self.get_one(op, RouteNetlinkMessage::GetLink(msg))?;
        match seq_reply {
            RouteNetlinkMessage::NewLink(link) => Ok(parse_link(&link)),
            other => Err(DatapathError::Decode {
                op: op.to_string(),
                detail: format!("unexpected reply {other:?}"),
            }),
        }
    }
}

/// The RTM_NEWLINK message creating a veth pair.
fn veth_message(spec: &VethSpec<'_>, start: VethStart) -> Result<LinkMessage> {
    validate_ifname(spec.name)?;
    validate_ifname(spec.peer_name)?;
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new().name(spec.peer_name);
    if let Some(mtu) = spec.mtu {
        peer = peer.mtu(mtu);
    }
    if let Some(mac) = spec.peer_mac {
        peer = peer.address(mac.to_vec());
    }
    if let Some(netns) = spec.peer_netns {
        peer = peer.setns_by_fd(netns.raw_fd());
    }
    let mut host = LinkVeth::new(spec.name, spec.peer_name)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
    if let Some(mtu) = spec.mtu {
        host = host.mtu(mtu);
    }
    if let Some(mac) = spec.mac {
        host = host.address(mac.to_vec());
    }
    if let Some(master) = start.master {
        host = host.controller(master);
    }
    if start.up {
        host = host.up();
    }
    let mut msg = host.build();
    if let Some(group) = spec.group {
        msg.attributes.push(LinkAttribute::Group(group));
    }
    Ok(msg)
}

/// Turns "did not exist" into `Ok(false)` for tolerant deletes.
pub(crate) fn tolerate_missing(result: Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Extracts the fields weft cares about from an RTM_NEWLINK message.
pub fn parse_link(msg: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        up: msg.header.flags.contains(LinkFlags::Up),
        oper_up: false,
        promisc: msg.header.flags.contains(LinkFlags::Promisc),
        master: None,
        bridge_port: None,
        link: None,
        link_netnsid: None,
        alias: None,
        group: 0,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name.clone_from(name),
            LinkAttribute::Address(bytes) => info.mac = <Mac>::try_from(bytes.as_slice()).ok(),
            LinkAttribute::Mtu(mtu) => info.mtu = *mtu,
            LinkAttribute::OperState(state) => info.oper_up = *state == State::Up,
            LinkAttribute::Controller(master) if *master != 0 => info.master = Some(*master),
            LinkAttribute::Link(link) if *link != 0 => info.link = Some(*link),
            LinkAttribute::LinkNetNsId(id) => info.link_netnsid = Some(*id),
            LinkAttribute::IfAlias(alias) if !alias.is_empty() => info.alias = Some(alias.clone()),
            LinkAttribute::Group(group) => info.group = *group,
            LinkAttribute::LinkInfo(infos) => {
                info.kind = link_kind(infos);
                if let Some(underlay) = vxlan_underlay(infos) {
                    info.link = Some(underlay);
                }
                info.bridge_port = bridge_port(infos);
            }
            _ => {}
        }
    }
    info
}

fn link_kind(infos: &[NlLinkInfo]) -> Option<String> {
    infos.iter().find_map(|info| match info {
        NlLinkInfo::Kind(kind) => Some(kind_name(kind)),
        _ => None,
    })
}

fn bridge_port(infos: &[NlLinkInfo]) -> Option<BridgePortFlags> {
    infos.iter().find_map(|info| match info {
        NlLinkInfo::PortData(InfoPortData::BridgePort(data)) => {
            let mut flags = BridgePortFlags::default();
            for item in data {
                match item {
                    InfoBridgePort::HairpinMode(on) => flags.hairpin = Some(*on),
                    InfoBridgePort::Learning(on) => flags.learning = Some(*on),
                    _ => {}
                }
            }
            Some(flags)
        }
        _ => None,
    })
}

/// A VXLAN reports its underlay in IFLA_VXLAN_LINK, not IFLA_LINK.
fn vxlan_underlay(infos: &[NlLinkInfo]) -> Option<u32> {
    infos.iter().find_map(|info| match info {
        NlLinkInfo::Data(InfoData::Vxlan(data)) => data.iter().find_map(|d| match d {
            InfoVxlan::Link(index) if *index != 0 => Some(*index),
            _ => None,
        }),
        _ => None,
    })
}

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Other(name) => name.clone(),
        known => known.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("123456789012345").is_ok());
        for bad in ["", "1234567890123456", "a/b", "a b", "..", "a:1"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }
}
