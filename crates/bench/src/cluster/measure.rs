//! Traffic measurements run inside pod namespaces: iperf3 throughput and ping RTT.
//!
//! Tools are started from a thread that joined the namespace, so the child is born there and
//! the bench's own threads never move.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use weft_datapath::{NetnsFd, run_in_netns};

/// The iperf3 binary.
pub const IPERF3: &str = "/usr/bin/iperf3";

/// Median of plain numbers (upper median for even counts).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Received bits per second from `iperf3 -J` client output.
pub fn parse_iperf_bps(json: &str) -> Result<f64> {
    let value: serde_json::Value = serde_json::from_str(json).context("iperf3 JSON")?;
    if let Some(err) = value.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {err}");
    }
    value
        .pointer("/end/sum_received/bits_per_second")
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| anyhow!("iperf3 JSON has no end.sum_received.bits_per_second"))
}

/// Per-reply RTTs in milliseconds from `ping` output (`time=0.053 ms`).
pub fn parse_ping_rtts_ms(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|line| line.split("time=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// An iperf3 server inside a namespace, killed on drop.
pub struct IperfServer {
    child: Child,
}

impl IperfServer {
    /// Starts `iperf3 -s` bound to `ip` inside the namespace at `netns`.
    pub fn start(netns: &Path, ip: Ipv4Addr) -> Result<IperfServer> {
        let ns = NetnsFd::open(netns)?;
        let child = run_in_netns(&ns, || {
            Command::new(IPERF3)
                .args(["-s", "-B", &ip.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })?
        .context("start iperf3 server")?;
        Ok(IperfServer { child })
    }
}

impl Drop for IperfServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn output_in(netns: &Path, program: &str, args: &[String]) -> Result<Output> {
    let ns = NetnsFd::open(netns)?;
    run_in_netns(&ns, || Command::new(program).args(args).output())?
        .with_context(|| format!("run {program}"))
}

/// One TCP throughput sample in Gbit/s from the namespace at `netns` to `server`.
/// Retries briefly while the server is still starting.
pub fn iperf_gbps(netns: &Path, server: Ipv4Addr, seconds: u32) -> Result<f64> {
    iperf_gbps_to(netns, server, 5201, seconds)
}

/// [`iperf_gbps`] to `port` (e.g. a hostPort that the node DNATs to the server's 5201).
pub fn iperf_gbps_to(netns: &Path, server: Ipv4Addr, port: u16, seconds: u32) -> Result<f64> {
    let args: Vec<String> = [
        "-c",
        &server.to_string(),
        "-p",
        &port.to_string(),
        "-t",
        &seconds.to_string(),
        "-O",
        "1",
        "-J",
        "--connect-timeout",
        "2000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut last = anyhow!("iperf3 never ran");
    for _ in 0..10 {
        let out = output_in(netns, IPERF3, &args)?;
        match parse_iperf_bps(&String::from_utf8_lossy(&out.stdout)) {
            Ok(bps) => return Ok(bps / 1e9),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(last.context(format!("iperf3 to {server}")))
}

/// Median ping RTT in microseconds over `count` pings at 10 ms intervals.
pub fn ping_median_us(netns: &Path, target: Ipv4Addr, count: u32) -> Result<f64> {
    let args: Vec<String> = [
        "-n",
        "-c",
        &count.to_string(),
        "-i",
        "0.01",
        "-W",
        "1",
        &target.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = output_in(netns, "ping", &args)?;
    let rtts = parse_ping_rtts_ms(&String::from_utf8_lossy(&out.stdout));
    if rtts.len() < (count as usize) / 2 {
        bail!("ping {target}: only {} of {count} replies", rtts.len());
    }
    Ok(median(&rtts) * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ping_replies() {
        let text = "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n\
                    64 bytes from 10.0.0.2: icmp_seq=1 ttl=63 time=0.061 ms\n\
                    64 bytes from 10.0.0.2: icmp_seq=2 ttl=63 time=0.045 ms\n\
                    64 bytes from 10.0.0.2: icmp_seq=3 ttl=63 time=0.050 ms\n\n\
                    rtt min/avg/max/mdev = 0.045/0.052/0.061/0.006 ms\n";
        assert_eq!(parse_ping_rtts_ms(text), vec![0.061, 0.045, 0.050]);
        assert_eq!(median(&parse_ping_rtts_ms(text)), 0.050);
    }

    #[test]
    fn parses_iperf_json() {
        let json = r#"{"end":{"sum_received":{"bits_per_second":9.5e9}}}"#;
        assert_eq!(parse_iperf_bps(json).unwrap(), 9.5e9);
        assert!(parse_iperf_bps(r#"{"error":"unable to connect"}"#).is_err());
        assert!(parse_iperf_bps("").is_err());
    }
}
