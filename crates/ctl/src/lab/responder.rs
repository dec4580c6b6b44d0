//! The pod responder (`weftctl lab responder --ports 80/TCP,80/UDP`): TCP accepts, writes
//! the peer address it saw, then echoes until the client closes; UDP echoes the datagram with the peer address. The
//! peer address is what lets a probe prove that no NAT happened on the way.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::state::{PortSpec, Proto};

/// Parses `80/TCP,81/UDP` (protocol defaults to TCP).
pub fn parse_ports(text: &str) -> Result<Vec<PortSpec>> {
    let mut ports = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (port, proto) = item.split_once('/').unwrap_or((item, "TCP"));
        let port: u16 = port
            .parse()
            .with_context(|| format!("bad port {port:?} in {item:?}"))?;
        if port == 0 {
            bail!("port 0 in {item:?}");
        }
        let protocol = proto.parse::<Proto>().map_err(anyhow::Error::msg)?;
        ports.push(PortSpec {
            port,
            protocol,
            name: None,
        });
    }
    Ok(ports)
}

/// Renders ports for `--ports`.
pub fn format_ports(ports: &[PortSpec]) -> String {
    ports
        .iter()
        .map(|p| format!("{}/{}", p.port, p.protocol))
        .collect::<Vec<_>>()
        .join(",")
}

/// The line a responder sends: `peer <ip> <port>`.
pub fn peer_line(peer: SocketAddr) -> String {
    format!("peer {} {}\n", peer.ip().to_canonical(), peer.port())
}

/// Parses [`peer_line`]'s output.
pub fn parse_peer_line(text: &str) -> Option<IpAddr> {
    let mut words = text.split_whitespace();
    (words.next()? == "peer").then_some(())?;
    words.next()?.parse().ok()
}

/// Port numbers bound in a `/proc/<pid>/net/{tcp,tcp6,udp,udp6}` table: for TCP only
/// listening sockets (state `0A`), for UDP every socket.
pub fn bound_ports(table: &str, protocol: Proto) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if protocol == Proto::Tcp && state != "0A" {
                return None;
            }
            u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
        })
        .collect()
}

/// Serves `ports` forever (one thread per port). Every socket is bound before any is
/// served, so once one port is seen bound, all are.
pub fn run(ports: &[PortSpec]) -> Result<()> {
    enum Bound {
        Tcp(TcpListener),
        Udp(UdpSocket),
    }
    let mut bound = Vec::new();
    for spec in ports {
        bound.push(match spec.protocol {
            Proto::Tcp => Bound::Tcp(bind_tcp(spec.port)?),
            Proto::Udp => Bound::Udp(bind_udp(spec.port)?),
        });
    }
    let mut workers = Vec::new();
    for socket in bound {
        workers.push(match socket {
            Bound::Tcp(listener) => std::thread::spawn(move || serve_tcp(&listener)),
            Bound::Udp(socket) => std::thread::spawn(move || serve_udp(&socket)),
        });
    }
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

/// `[::]` also takes IPv4 (bindv6only is 0 in a fresh namespace); IPv4 alone when the
/// namespace has no IPv6.
fn bind_tcp(port: u16) -> Result<TcpListener> {
    TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
        .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
        .with_context(|| format!("listen on {port}/TCP"))
}

fn bind_udp(port: u16) -> Result<UdpSocket> {
    UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port))
        .or_else(|_| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))
        .with_context(|| format!("bind {port}/UDP"))
}

/// How long an idle connection is kept open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

fn serve_tcp(listener: &TcpListener) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        // A thread per connection: long-lived connections (the policy update tests keep one
        // open across rule changes) must not block new ones.
        std::thread::spawn(move || serve_connection(conn));
    }
}

/// Writes the peer line, then echoes what the client sends until it shuts its side down
/// (a probe does so at once).
fn serve_connection(mut conn: TcpStream) {
    let Ok(peer) = conn.peer_addr() else { return };
    if conn.write_all(peer_line(peer).as_bytes()).is_err() {
        return;
    }
    let _ = conn.set_read_timeout(Some(IDLE_TIMEOUT));
    let mut buf = [0u8; 1500];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let Some(data) = buf.get(..n) else { return };
                if conn.write_all(data).is_err() {
                    return;
                }
            }
        }
    }
}

fn serve_udp(socket: &UdpSocket) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let payload = String::from_utf8_lossy(buf.get(..len).unwrap_or_default());
        let reply = format!("{}{}", peer_line(peer), payload);
        let _ = socket.send_to(reply.as_bytes(), peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_round_trip() {
        let p = parse_ports("80/TCP, 53/udp,8080").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].protocol, Proto::Udp);
        assert_eq!(p[2].protocol, Proto::Tcp);
        assert_eq!(format_ports(&p), "80/TCP,53/UDP,8080/TCP");
        assert!(parse_ports("0/TCP").is_err());
        assert!(parse_ports("80/SCTP").is_err());
    }

    #[test]
    fn bound_ports_from_proc_net_tables() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n   1: 0200F40A:0050 0300F40A:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2\n";
        assert_eq!(bound_ports(tcp, Proto::Tcp), vec![80]);
        let udp6 = "  sl  local_address                         remote_address                        st\n  5: 00000000000000000000000000000000:0051 00000000000000000000000000000000:0000 07\n";
        assert_eq!(bound_ports(udp6, Proto::Udp), vec![81]);
    }

    #[test]
    fn peer_line_normalises_mapped_addresses() {
        let mapped: SocketAddr = "[::ffff:10.244.1.5]:4000".parse().unwrap();
        let line = peer_line(mapped);
        assert_eq!(line, "peer 10.244.1.5 4000\n");
        assert_eq!(parse_peer_line(&line), Some("10.244.1.5".parse().unwrap()));
        assert_eq!(parse_peer_line("garbage"), None);
    }
}
