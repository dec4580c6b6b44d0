//! A synchronous rtnetlink client on a blocking `netlink-sys` socket.
//!
//! Messages come from rtnetlink's builders (built with `default-features = false`, so no
//! async runtime) or are filled in by hand; this module only sends them and reads acks and
//! multipart dumps. Operations live in files per object: [`link`], [`addr`], [`route`],
//! [`neigh`].

pub mod addr;
pub mod link;
pub mod link_extra;
pub mod mac;
pub mod neigh;
pub mod route;
pub mod tc;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;

use crate::error::{DatapathError, Result};
use crate::netns::{NetnsFd, run_in_netns};

pub use addr::AddrInfo;
pub use link::validate_ifname;
pub use link::{BridgePortFlags, LinkInfo, VethSpec, VethStart, VxlanSpec};
pub use link_extra::LinkExtra;
pub use mac::{Mac, format_mac, parse_mac};
pub use neigh::{FdbEntry, Neighbour};
pub use route::{RouteScopeKind, RouteSpec};
pub use tc::{QdiscInfo, TbfSpec};

/// How often an interrupted (inconsistent) dump is tried.
const DUMP_ATTEMPTS: u32 = 3;

/// Flags for creating an object that must not exist yet (fails with EEXIST).
pub(crate) const CREATE_EXCL: u16 =
    netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL;
/// Flags for creating an object or replacing an existing one.
pub(crate) const CREATE_REPLACE: u16 =
    netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_REPLACE;

/// A blocking rtnetlink socket bound to one network namespace.
///
/// The namespace is fixed when the socket is opened; later `setns` calls by any thread do
/// not move it, so a `Netlink` can be used from any thread.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink> {
        let io = |op: &str, e| DatapathError::io(format!("netlink socket: {op}"), e);
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| io("create", e))?;
        socket.bind_auto().map_err(|e| io("bind", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| io("connect", e))?;
        // Extended acks are a nicety; old kernels without them still work.
        let _ = socket.set_ext_ack(true);
        Ok(Netlink { socket, seq: 0 })
    }

    /// Opens a socket inside `netns` (from a short-lived thread) that stays bound to it.
    pub fn open_in(netns: &NetnsFd) -> Result<Netlink> {
        run_in_netns(netns, Netlink::open)?
    }

    /// Sends one request with `NLM_F_REQUEST | NLM_F_ACK | extra_flags` and waits for its ack.
    pub(crate) fn request(
        &mut self,
        op: &str,
        message: RouteNetlinkMessage,
        extra_flags: u16,
    ) -> Result<()> {
        let seq = self.send(op, message, NLM_F_REQUEST | NLM_F_ACK | extra_flags)?;
        loop {
            for reply in self.receive(op)? {
                if reply.header.sequence_number != seq {
                    continue;
                }
                if let NetlinkPayload::Error(err) = reply.payload {
                    return match err.code {
                        None => Ok(()),
                        Some(code) => Err(netlink_error(op, code.get())),
                    };
                }
            }
        }
    }

    /// Sends a request that is answered by one message (e.g. a get by index), then an ack.
    pub(crate) fn get_one(
        &mut self,
        op: &str,
        message: RouteNetlinkMessage,
    ) -> Result<RouteNetlinkMessage> {
        let seq = self.send(op, message, NLM_F_REQUEST | NLM_F_ACK)?;
        let mut answer = None;
        loop {
            for reply in self.receive(op)? {
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(inner) => answer = Some(inner),
                    NetlinkPayload::Error(err) => {
                        if let Some(code) = err.code {
                            return Err(netlink_error(op, code.get()));
                        }
                        return answer.ok_or_else(|| DatapathError::Decode {
                            op: op.to_string(),
                            detail: "ack without an answer".to_string(),
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends a dump request and collects every inner message until NLMSG_DONE.
    ///
    /// A dump that raced with a change is flagged NLM_F_DUMP_INTR and may be inconsistent;
    /// it is repeated a few times before the last result is returned anyway.
    pub(crate) fn dump(
        &mut self,
        op: &str,
        message: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let mut attempt = 0;
        loop {
            let (messages, interrupted) = self.dump_once(op, message.clone())?;
            attempt += 1;
            if !interrupted || attempt >= DUMP_ATTEMPTS {
                return Ok(messages);
            }
        }
    }

    fn dump_once(
        &mut self,
        op: &str,
        message: RouteNetlinkMessage,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool)> {
        let seq = self.send(op, message, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut collected = Vec::new();
        let mut interrupted = false;
        loop {
            for reply in self.receive(op)? {
                if reply.header.sequence_number != seq {
                    continue;
                }
                interrupted |= reply.header.flags & NLM_F_DUMP_INTR != 0;
                match reply.payload {
                    NetlinkPayload::InnerMessage(inner) => collected.push(inner),
                    NetlinkPayload::Done(_) => return Ok((collected, interrupted)),
                    NetlinkPayload::Error(err) => match err.code {
                        Some(code) => return Err(netlink_error(op, code.get())),
                        None => return Ok((collected, interrupted)),
                    },
                    _ => {}
                }
            }
        }
    }

    fn send(&mut self, op: &str, message: RouteNetlinkMessage, flags: u16) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|e| DatapathError::io(format!("netlink {op}: send"), e))?;
        Ok(self.seq)
    }

    /// Reads one datagram and splits it into the netlink messages it carries.
    fn receive(&mut self, op: &str) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
        let (datagram, _) = self
            .socket
            .recv_from_full()
            .map_err(|e| DatapathError::io(format!("netlink {op}: recv"), e))?;
        split_messages(op, &datagram)
    }
}

/// Parses back-to-back netlink messages; each header's length (4-byte aligned) gives the
/// start of the next.
fn split_messages(op: &str, datagram: &[u8]) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
    let mut messages = Vec::new();
    let mut offset = 0usize;
    while let Some(rest) = datagram.get(offset..) {
        if rest.len() < 16 {
            break;
        }
        let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest).map_err(|e| {
            DatapathError::Decode {
                op: op.to_string(),
                detail: e.to_string(),
            }
        })?;
        let length = message.header.length as usize;
        if length == 0 {
            break;
        }
        offset += (length + 3) & !3;
        messages.push(message);
    }
    Ok(messages)
}

fn netlink_error(op: &str, code: i32) -> DatapathError {
    DatapathError::Netlink {
        op: op.to_string(),
        errno: Errno::from_raw(code.saturating_abs()),
    }
}

/// IPv4 or IPv6, for filtering dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// AF_INET.
    V4,
    /// AF_INET6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: std::net::IpAddr) -> IpFamily {
        if ip.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        }
    }

    /// Whether `ip` belongs to this family.
    pub fn matches(self, ip: std::net::IpAddr) -> bool {
        IpFamily::of(ip) == self
    }

    pub(crate) fn to_netlink(self) -> netlink_packet_route::AddressFamily {
        match self {
            IpFamily::V4 => netlink_packet_route::AddressFamily::Inet,
            IpFamily::V6 => netlink_packet_route::AddressFamily::Inet6,
        }
    }
}

impl IpFamily {
    pub(crate) fn from_netlink(family: netlink_packet_route::AddressFamily) -> Option<IpFamily> {
        match family {
            netlink_packet_route::AddressFamily::Inet => Some(IpFamily::V4),
            netlink_packet_route::AddressFamily::Inet6 => Some(IpFamily::V6),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::DoneMessage;
    use netlink_packet_route::link::LinkMessage;

    fn encode(seq: u32, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, payload);
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    #[test]
    fn splits_back_to_back_messages() {
        let mut link = LinkMessage::default();
        link.header.index = 7;
        let mut datagram = encode(
            1,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)),
        );
        datagram.extend(encode(1, NetlinkPayload::Done(DoneMessage::default())));
        let messages = split_messages("test", &datagram).unwrap();
        assert_eq!(messages.len(), 2);
        assert!(matches!(messages[1].payload, NetlinkPayload::Done(_)));
    }

    #[test]
    fn maps_negative_error_codes_to_errno() {
        let err = netlink_error("add link x", -17);
        assert!(err.is_exists());
        assert!(netlink_error("del link x", -19).is_not_found());
    }
}
