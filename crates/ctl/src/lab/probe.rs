//! Probes: connect from inside one namespace to an address, and report what happened,
//! including the source address the receiver saw (no NAT means it equals ours).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use weft_datapath::{NetnsFd, run_in_netns};

use super::responder::parse_peer_line;
use super::state::Proto;

/// How long a probe waits for a connection or reply.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// The target reached us back.
    pub allowed: bool,
    /// Our source address (None when no route).
    pub source: Option<IpAddr>,
    /// The target address.
    pub target: SocketAddr,
    /// The source address the responder saw.
    pub seen: Option<IpAddr>,
    /// Why it was denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ProbeResult {
    /// Allowed, and the receiver saw our own address (no NAT on the path).
    pub fn no_nat(&self) -> bool {
        self.allowed && self.seen.is_some() && self.seen == self.source
    }
}

/// Probes `target` from inside the namespace at `netns`.
pub fn probe(netns: &Path, target: SocketAddr, protocol: Proto) -> Result<ProbeResult> {
    probe_with_timeout(&NetnsFd::open(netns)?, target, protocol, PROBE_TIMEOUT)
}

/// Probes `target` from inside `ns`, waiting at most `timeout` for the connection and
/// again for the reply.
pub fn probe_with_timeout(
    ns: &NetnsFd,
    target: SocketAddr,
    protocol: Proto,
    timeout: Duration,
) -> Result<ProbeResult> {
    let result = run_in_netns(ns, || match protocol {
        Proto::Tcp => probe_tcp(target, timeout),
        Proto::Udp => probe_udp(target, timeout, 0),
    })?;
    Ok(result)
}

/// A TCP connection made from inside `ns` (the socket stays in that namespace).
pub fn connect_in(ns: &NetnsFd, target: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let stream = run_in_netns(ns, || TcpStream::connect_timeout(&target, timeout))??;
    Ok(stream)
}

fn probe_tcp(target: SocketAddr, timeout: Duration) -> ProbeResult {
    let mut result = denied(target, None, String::new());
    let mut stream = match TcpStream::connect_timeout(&target, timeout) {
        Ok(s) => s,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    result.source = stream.local_addr().ok().map(|a| a.ip().to_canonical());
    // The responder echoes until we close our side; the peer line is all a probe needs.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(timeout));
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    result.allowed = true;
    result.error = None;
    result.seen = parse_peer_line(&reply);
    result
}

/// A UDP probe from a chosen source port. Tests that flip policies between probes use a
/// fresh port each time: a reused 4-tuple would match the conntrack entry of an earlier,
/// allowed probe (established traffic is accepted before any policy rule).
pub fn probe_udp_from_port(
    ns: &NetnsFd,
    target: SocketAddr,
    timeout: Duration,
    source_port: u16,
) -> Result<ProbeResult> {
    Ok(run_in_netns(ns, || {
        probe_udp(target, timeout, source_port)
    })?)
}

fn probe_udp(target: SocketAddr, timeout: Duration, source_port: u16) -> ProbeResult {
    let local: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let attempt = || -> std::io::Result<ProbeResult> {
        let socket = UdpSocket::bind((local, source_port))?;
        socket.connect(target)?;
        socket.set_read_timeout(Some(timeout))?;
        let source = socket.local_addr()?.ip();
        socket.send(b"weftlab-probe")?;
        let mut buf = [0u8; 1500];
        let len = socket.recv(&mut buf)?;
        let reply = String::from_utf8_lossy(buf.get(..len).unwrap_or_default()).into_owned();
        Ok(ProbeResult {
            allowed: true,
            source: Some(source),
            target,
            seen: parse_peer_line(&reply),
            error: None,
        })
    };
    attempt().unwrap_or_else(|e| denied(target, None, e.to_string()))
}

fn denied(target: SocketAddr, source: Option<IpAddr>, error: String) -> ProbeResult {
    ProbeResult {
        allowed: false,
        source,
        target,
        seen: None,
        error: Some(error),
    }
}

/// One line for humans: `allowed 10.244.1.2 -> 10.244.2.3:80/TCP (receiver saw 10.244.1.2)`.
pub fn describe(result: &ProbeResult, protocol: Proto) -> String {
    let verdict = if result.allowed { "allowed" } else { "denied" };
    let source = result
        .source
        .map(|s| s.to_string())
        .unwrap_or_else(|| "?".into());
    let mut line = format!("{verdict} {source} -> {}/{protocol}", result.target);
    if let Some(seen) = result.seen {
        let nat = if Some(seen) == result.source {
            "no NAT"
        } else {
            "NAT!"
        };
        line.push_str(&format!(" (receiver saw {seen}: {nat})"));
    }
    if let Some(e) = &result.error {
        line.push_str(&format!(" ({e})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_marks_nat() {
        let mut r = ProbeResult {
            allowed: true,
            source: Some("10.244.1.2".parse().unwrap()),
            target: "10.244.2.3:80".parse().unwrap(),
            seen: Some("10.244.1.2".parse().unwrap()),
            error: None,
        };
        assert!(r.no_nat());
        assert!(describe(&r, Proto::Tcp).contains("no NAT"));
        r.seen = Some("198.18.0.11".parse().unwrap());
        assert!(!r.no_nat());
        assert!(describe(&r, Proto::Tcp).contains("NAT!"));
        let d = denied(r.target, None, "timed out".into());
        assert!(describe(&d, Proto::Udp).starts_with("denied ? -> 10.244.2.3:80/UDP"));
    }
}
