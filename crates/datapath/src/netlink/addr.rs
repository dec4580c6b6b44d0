//! Interface addresses.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::link::tolerate_missing;
use super::{CREATE_EXCL, CREATE_REPLACE, IpFamily, Netlink};
use crate::error::Result;

/// One address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// Interface index.
    pub index: u32,
    /// Address with prefix length.
    pub addr: IpNet,
    /// IFA_F_TENTATIVE: duplicate address detection still running (IPv6).
    pub tentative: bool,
    /// IFA_F_NODAD.
    pub nodad: bool,
    /// IFA_F_PERMANENT (configured, not autoconfigured).
    pub permanent: bool,
    /// Address scope (`0` universe, `253` link, `254` host).
    pub scope: u8,
}

impl Netlink {
    /// Adds an address; EEXIST if present. `nodad` skips IPv6 duplicate address detection,
    /// without which the address stays tentative (unusable as a source) for about a second.
    pub fn add_addr(&mut self, index: u32, addr: IpNet, nodad: bool) -> Result<()> {
        let msg = address_message(index, addr, nodad);
        let op = format!("add address {addr} on #{index}");
        self.request(&op, RouteNetlinkMessage::NewAddress(msg), CREATE_EXCL)
    }

    /// Adds an address or updates it if present.
    pub fn replace_addr(&mut self, index: u32, addr: IpNet, nodad: bool) -> Result<()> {
        let msg = address_message(index, addr, nodad);
        let op = format!("replace address {addr} on #{index}");
        self.request(&op, RouteNetlinkMessage::NewAddress(msg), CREATE_REPLACE)
    }

    /// Deletes an address; `Ok(false)` if it was not there.
    pub fn delete_addr(&mut self, index: u32, addr: IpNet) -> Result<bool> {
        let msg = address_message(index, addr, false);
        let op = format!("delete address {addr} on #{index}");
        tolerate_missing(self.request(&op, RouteNetlinkMessage::DelAddress(msg), 0))
    }

    /// Addresses, optionally only of one interface and/or one family.
    pub fn addrs(&mut self, index: Option<u32>, family: Option<IpFamily>) -> Result<Vec<AddrInfo>> {
        let mut query = AddressMessage::default();
        query.header.family = family.map_or(AddressFamily::Unspec, IpFamily::to_netlink);
        // With NETLINK_GET_STRICT_CHK (4.20+) the kernel filters by interface itself: a
        // node with hundreds of pod veths (each with an IPv6 link-local address) answers
        // with one address instead of all. Only for this dump: strict checking also
        // rejects loose headers in other requests.
        let strict = index.is_some() && self.socket.set_netlink_get_strict_chk(true).is_ok();
        if strict {
            query.header.index = index.unwrap_or_default();
        }
        let replies = self.dump("list addresses", RouteNetlinkMessage::GetAddress(query));
        if strict {
            let _ = self.socket.set_netlink_get_strict_chk(false);
        }
        let replies = replies?;
        // Older kernels ignore the filter: filter here too.
        Ok(replies
            .iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewAddress(msg) => parse_address(msg),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .filter(|a| family.is_none_or(|f| f.matches(a.addr.addr())))
            .collect())
    }
}

fn address_message(index: u32, addr: IpNet, nodad: bool) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = addr.prefix_len();
    msg.header.family = IpFamily::of(addr.addr()).to_netlink();
    msg.attributes.push(AddressAttribute::Local(addr.addr()));
    msg.attributes.push(AddressAttribute::Address(addr.addr()));
    if let IpNet::V4(v4) = addr
        && v4.prefix_len() < 31
    {
        msg.attributes
            .push(AddressAttribute::Broadcast(v4.broadcast()));
    }
    if nodad && addr.addr().is_ipv6() {
        msg.header.flags = AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    msg
}

fn parse_address(msg: &AddressMessage) -> Option<AddrInfo> {
    let mut local = None;
    let mut address = None;
    let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(all) => flags = *all,
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
    // links and is the only one sent for IPv6.
    let ip: IpAddr = local.or(address)?;
    Some(AddrInfo {
        index: msg.header.index,
        addr: IpNet::new(ip, msg.header.prefix_len).ok()?,
        tentative: flags.contains(AddressFlags::Tentative),
        nodad: flags.contains(AddressFlags::Nodad),
        permanent: flags.contains(AddressFlags::Permanent),
        scope: u8::from(msg.header.scope),
    })
}
