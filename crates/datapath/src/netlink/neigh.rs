//! Permanent neighbours (ARP/NDP entries) and bridge FDB entries on VXLAN devices.

use std::net::IpAddr;

use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::link::tolerate_missing;
use super::mac::{Mac, format_mac};
use super::{CREATE_EXCL, CREATE_REPLACE, IpFamily, Netlink};
use crate::error::Result;

/// An IP-to-MAC neighbour entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// Interface index.
    pub index: u32,
    /// Neighbour IP.
    pub ip: IpAddr,
    /// Its MAC, when resolved.
    pub mac: Option<Mac>,
    /// NUD_PERMANENT.
    pub permanent: bool,
}

/// A bridge forwarding database entry (`bridge fdb`), e.g. remote VTEP of a MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// Device index (the VXLAN device for `self` entries).
    pub index: u32,
    /// MAC address.
    pub mac: Mac,
    /// Remote tunnel endpoint.
    pub dst: Option<IpAddr>,
    /// NUD_PERMANENT.
    pub permanent: bool,
    /// NTF_SELF: the entry lives in the device's own table, not the bridge's.
    pub own: bool,
}

impl Netlink {
    /// Adds a permanent neighbour; EEXIST if one for `ip` exists.
    pub fn add_neighbour(&mut self, index: u32, ip: IpAddr, mac: Mac) -> Result<()> {
        let op = format!("add neighbour {ip} on #{index}");
        let msg = neighbour_message(index, ip, Some(mac));
        self.request(&op, RouteNetlinkMessage::NewNeighbour(msg), CREATE_EXCL)
    }

    /// Adds or overwrites a permanent neighbour.
    pub fn replace_neighbour(&mut self, index: u32, ip: IpAddr, mac: Mac) -> Result<()> {
        let op = format!("replace neighbour {ip} on #{index}");
        let msg = neighbour_message(index, ip, Some(mac));
        self.request(&op, RouteNetlinkMessage::NewNeighbour(msg), CREATE_REPLACE)
    }

    /// Deletes a neighbour; `Ok(false)` if absent.
    pub fn delete_neighbour(&mut self, index: u32, ip: IpAddr) -> Result<bool> {
        let op = format!("delete neighbour {ip} on #{index}");
        let msg = neighbour_message(index, ip, None);
        tolerate_missing(self.request(&op, RouteNetlinkMessage::DelNeighbour(msg), 0))
    }

    /// Neighbour entries of one family, optionally of one interface.
    pub fn neighbours(&mut self, family: IpFamily, index: Option<u32>) -> Result<Vec<Neighbour>> {
        let mut query = NeighbourMessage::default();
        query.header.family = family.to_netlink();
        let replies = self.dump("list neighbours", RouteNetlinkMessage::GetNeighbour(query))?;
        Ok(replies
            .iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewNeighbour(msg) => parse_neighbour(msg),
                _ => None,
            })
            .filter(|n| index.is_none_or(|i| n.index == i) && family.matches(n.ip))
            .collect())
    }

    /// Adds a permanent `self` FDB entry `mac → dst` (VXLAN remote); EEXIST if present.
    pub fn add_fdb(&mut self, index: u32, mac: Mac, dst: IpAddr) -> Result<()> {
        let op = format!("add fdb {} dst {dst} on #{index}", format_mac(&mac));
        let msg = fdb_message(index, mac, Some(dst));
        self.request(&op, RouteNetlinkMessage::NewNeighbour(msg), CREATE_EXCL)
    }

    /// Adds or overwrites a permanent `self` FDB entry.
    pub fn replace_fdb(&mut self, index: u32, mac: Mac, dst: IpAddr) -> Result<()> {
        let op = format!("replace fdb {} dst {dst} on #{index}", format_mac(&mac));
        let msg = fdb_message(index, mac, Some(dst));
        self.request(&op, RouteNetlinkMessage::NewNeighbour(msg), CREATE_REPLACE)
    }

    /// Deletes a `self` FDB entry (all destinations of `mac` when `dst` is `None`);
    /// `Ok(false)` if absent.
    pub fn delete_fdb(&mut self, index: u32, mac: Mac, dst: Option<IpAddr>) -> Result<bool> {
        let op = format!("delete fdb {} on #{index}", format_mac(&mac));
        let msg = fdb_message(index, mac, dst);
        tolerate_missing(self.request(&op, RouteNetlinkMessage::DelNeighbour(msg), 0))
    }

    /// FDB entries, optionally of one device.
    pub fn fdb(&mut self, index: Option<u32>) -> Result<Vec<FdbEntry>> {
        let mut query = NeighbourMessage::default();
        query.header.family = AddressFamily::Bridge;
        let replies = self.dump("list fdb", RouteNetlinkMessage::GetNeighbour(query))?;
        Ok(replies
            .iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewNeighbour(msg) => parse_fdb(msg),
                _ => None,
            })
            .filter(|entry| index.is_none_or(|i| entry.index == i))
            .collect())
    }
}

fn neighbour_message(index: u32, ip: IpAddr, mac: Option<Mac>) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = IpFamily::of(ip).to_netlink();
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.kind = RouteType::Unicast;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
    if let Some(mac) = mac {
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    }
    msg
}

fn fdb_message(index: u32, mac: Mac, dst: Option<IpAddr>) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    // NTF_SELF: program the VXLAN device's own table (`bridge fdb ... self`).
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    if let Some(dst) = dst {
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::from(dst)));
    }
    msg
}

fn parse_neighbour(msg: &NeighbourMessage) -> Option<Neighbour> {
    let mut ip = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(addr) => ip = neighbour_ip(addr),
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = Mac::try_from(bytes.as_slice()).ok()
            }
            _ => {}
        }
    }
    Some(Neighbour {
        index: msg.header.ifindex,
        ip: ip?,
        mac,
        permanent: msg.header.state == NeighbourState::Permanent,
    })
}

fn parse_fdb(msg: &NeighbourMessage) -> Option<FdbEntry> {
    let mut mac = None;
    let mut dst = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = Mac::try_from(bytes.as_slice()).ok()
            }
            NeighbourAttribute::Destination(addr) => dst = neighbour_ip(addr),
            _ => {}
        }
    }
    Some(FdbEntry {
        index: msg.header.ifindex,
        mac: mac?,
        dst,
        permanent: msg.header.state == NeighbourState::Permanent,
        own: msg.header.flags.contains(NeighbourFlags::Own),
    })
}

/// Bridge-family dumps carry the VTEP address undecoded; tell v4 from v6 by length.
fn neighbour_ip(addr: &NeighbourAddress) -> Option<IpAddr> {
    match addr {
        NeighbourAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        NeighbourAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(bytes.as_slice())
                .ok()
                .map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}
