//! Link attributes that only tuning-style callers need: transmit queue length and the
//! all-multicast flag, read and written through netlink.

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::LinkUnspec;

use super::Netlink;
use crate::error::{DatapathError, Result};

/// The less common link settings of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkExtra {
    /// `IFLA_TXQLEN`: transmit queue length in packets.
    pub txqlen: u32,
    /// IFF_ALLMULTI: receive all multicast frames.
    pub allmulti: bool,
}

impl Netlink {
    /// Reads the transmit queue length and the all-multicast flag of a link.
    pub fn link_extra(&mut self, index: u32) -> Result<LinkExtra> {
        let op = format!("get link #{index}");
        let msg = LinkUnspec::new_with_index(index).build();
        match self.get_one(&op, RouteNetlinkMessage::GetLink(msg))? {
            RouteNetlinkMessage::NewLink(link) => Ok(parse_extra(&link)),
            other => Err(DatapathError::Decode {
                op,
                detail: format!("unexpected reply {other:?}"),
            }),
        }
    }

    /// Sets the transmit queue length.
    pub fn set_txqlen(&mut self, index: u32, txqlen: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).txqueuelen(txqlen).build();
        let op = format!("set link #{index} txqlen {txqlen}");
        self.request(&op, RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Turns the all-multicast flag on or off.
    pub fn set_allmulti(&mut self, index: u32, on: bool) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).allmulticast(on).build();
        let op = format!("set link #{index} allmulti {on}");
        self.request(&op, RouteNetlinkMessage::SetLink(msg), 0)
    }
}

fn parse_extra(msg: &LinkMessage) -> LinkExtra {
    let txqlen = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::TxQueueLen(len) => Some(*len),
            _ => None,
        })
        .unwrap_or(0);
    LinkExtra {
        txqlen,
        allmulti: msg.header.flags.contains(LinkFlags::Allmulti),
    }
}
