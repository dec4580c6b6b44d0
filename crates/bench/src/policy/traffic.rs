//! (c) pod-to-pod TCP throughput and RTT on one node with the full ruleset loaded in the
//! node namespace, against the same node with no ruleset, rounds alternating.
//!
//! The pods are made by the real `weft` plugin (bridge mode, addresses requested with
//! `IP=` so they are the bench pods of the generated inventory). Same-node traffic crosses
//! the bridge, so `bridge-nf-call-iptables=1` is set in the node namespace (as weftd does
//! when it enforces policy): bridged IPv4 packets then pass the `inet` forward hook.
//! Before measuring, the ruleset is checked to be in force: the intruder pod must not reach
//! the server with it, and must without it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use weft_datapath::NetnsFd;
use weft_datapath::nft::apply_nft;
use weft_datapath::sysctl::write_sysctl;
use weft_runtime::{Attachment, Runtime};
use weft_testns::TestNs;

use super::generate::{CLIENT_IP, INTRUDER_IP, SERVER_IP};
use crate::measure::{IperfServer, iperf_gbps, median, ping_median_us};

/// Samples of one state (with or without the ruleset).
#[derive(Debug, Default)]
pub struct PathFigures {
    /// Throughput samples, Gbit/s.
    pub gbps: Vec<f64>,
    /// Median RTT per sample, µs.
    pub rtt_us: Vec<f64>,
}

/// A node with client, server and intruder pods wired by the `weft` plugin.
struct Node {
    _ns: TestNs,
    fd: NetnsFd,
    pods: Vec<TestNs>,
    _data: tempfile::TempDir,
}

fn wire(weft_dir: &Path) -> Result<Node> {
    if !weft_dir.join("weft").is_file() {
        bail!(
            "{} not found; build with `cargo build --release --bins` or pass --weft-dir",
            weft_dir.join("weft").display()
        );
    }
    let ns = TestNs::new("pnode")?;
    let fd = NetnsFd::open(ns.path())?;
    write_sysctl(Some(&fd), "net/bridge/bridge-nf-call-iptables", "1")
        .context("bridge-nf-call-iptables in the node namespace")?;
    let data = tempfile::tempdir()?;
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "bench-policy",
        "plugins": [{
            "type": "weft",
            "bridge": "cni0",
            "isGateway": true,
            "isDefaultGateway": true,
            "ipam": {"type": "weft-ipam", "ranges": [[{"subnet": "10.244.0.0/16"}]],
                     "dataDir": data.path().join("ipam")}
        }]
    });
    let runtime = Runtime {
        cni_path: vec![weft_dir.to_path_buf()],
        node_netns: Some(ns.path().to_path_buf()),
        cache_dir: data.path().join("cache"),
    };
    let mut pods = Vec::new();
    for (name, ip) in [
        ("client", CLIENT_IP),
        ("server", SERVER_IP),
        ("intruder", INTRUDER_IP),
    ] {
        let pod = TestNs::new(&format!("p{name}"))?;
        let mut att = Attachment::kubernetes(name, &pod.path().to_string_lossy(), "eth0", name);
        att.cni_args.push(("IP".into(), ip.to_string()));
        let result: Value = runtime.add(&list, &att)?;
        let got = crate::chain::result_ipv4(&result)?;
        if got != ip {
            bail!("{name} got {got}, asked for {ip}");
        }
        pods.push(pod);
    }
    Ok(Node {
        _ns: ns,
        fd,
        pods,
        _data: data,
    })
}

fn reaches(from: &Path, to: Ipv4Addr) -> Result<bool> {
    let ns = NetnsFd::open(from)?;
    let out = weft_datapath::run_in_netns(&ns, || {
        std::process::Command::new("ping")
            .args(["-n", "-c", "2", "-i", "0.2", "-W", "1", &to.to_string()])
            .output()
    })??;
    Ok(out.status.success())
}

const DELETE_TABLE: &str = "add table inet weft_policy\ndelete table inet weft_policy\n";

/// A diagnostic middle state: only the ruleset's first rule, so connection tracking runs
/// but no policy lookup does. Separates the cost of conntrack from that of the rules.
const CONNTRACK_ONLY: &str = "add table inet weft_policy
delete table inet weft_policy
table inet weft_policy {
\tchain wp_forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tct state established,related accept
\t}
}
";

/// The states measured, in column order.
pub const STATES: [&str; 3] = ["none", "conntrack only", "full ruleset"];

/// Measures every state `rounds` times, rotating which goes first; figures by [`STATES`].
pub fn run(
    weft_dir: &Path,
    script: &str,
    rounds: usize,
    seconds: u32,
    pings: u32,
) -> Result<Vec<PathFigures>> {
    let node = wire(weft_dir)?;
    let path = |i: usize| -> PathBuf {
        node.pods
            .get(i)
            .map(|p| p.path().to_path_buf())
            .unwrap_or_default()
    };
    let (client, server, intruder) = (path(0), path(1), path(2));
    let mut server_proc = Some(IperfServer::start(&server, SERVER_IP)?);

    apply_nft(script, Some(&node.fd))?;
    let enforced = !reaches(&intruder, SERVER_IP)? && reaches(&client, SERVER_IP)?;
    apply_nft(DELETE_TABLE, Some(&node.fd))?;
    let open = reaches(&intruder, SERVER_IP)?;
    if !enforced || !open {
        bail!(
            "ruleset check failed: with it intruder blocked and client allowed = {enforced}, \
             without it intruder allowed = {open}"
        );
    }
    eprintln!("ruleset check: intruder -> server blocked with the ruleset, open without");

    let texts = [DELETE_TABLE, CONNTRACK_ONLY, script];
    let mut figs: Vec<PathFigures> = STATES.iter().map(|_| PathFigures::default()).collect();
    for round in 0..rounds {
        for k in 0..STATES.len() {
            let i = (round + k) % STATES.len();
            let (Some(text), Some(f)) = (texts.get(i), figs.get_mut(i)) else {
                continue;
            };
            apply_nft(text, Some(&node.fd))?;
            f.rtt_us.push(ping_median_us(&client, SERVER_IP, pings)?);
            f.gbps.push(iperf_gbps(&client, SERVER_IP, seconds)?);
        }
        let mut line = format!("  round {}:", round + 1);
        for (name, f) in STATES.iter().zip(&figs) {
            line.push_str(&format!(
                " {name} {:.2} Gbit/s {:.0} us;",
                f.gbps.last().copied().unwrap_or_default(),
                f.rtt_us.last().copied().unwrap_or_default()
            ));
        }
        eprintln!("{line}");
    }
    // The server stops before its namespace goes.
    server_proc.take();
    Ok(figs)
}

/// Medians: (Gbit/s, µs).
pub fn medians(f: &PathFigures) -> (f64, f64) {
    (median(&f.gbps), median(&f.rtt_us))
}
