//! TCP through a hostPort (DNAT on the node) against TCP to the pod address directly.
//!
//! For each chain: one pod with hostPort 15201 -> 5201 running an iperf3 server, and a
//! "client host" namespace linked to the node namespace by a veth (10.250.0.2 -> node
//! 10.250.0.1, route to the pod subnet via the node). The client reaches the pod either at
//! `10.250.0.1:15201` (prerouting DNAT by the chain's portmap plugin) or at `<pod ip>:5201`
//! (plain routing through the same node). Both paths cross the same node with the same
//! nat hooks loaded, so conntrack runs on both: the ratio is the cost of the DNAT itself.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use ipnet::{IpNet, Ipv4Net};
use weft_datapath::{Netlink, NetnsFd, RouteSpec, VethSpec};
use weft_testns::TestNs;

use super::{Chain, attachment, result_ipv4};
use crate::measure::{IperfServer, iperf_gbps_to, median};

const HOST_PORT: u16 = 15201;
const SERVER_PORT: u16 = 5201;
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 2);

/// One chain's pod, client host and iperf3 server; the server stops first on drop.
struct Setup {
    label: &'static str,
    server: Option<IperfServer>,
    client: TestNs,
    _pod: TestNs,
    pod_ip: Ipv4Addr,
}

impl Drop for Setup {
    fn drop(&mut self) {
        // The server must die before its namespace goes.
        self.server.take();
    }
}

fn setup(chain: &Chain) -> Result<Setup> {
    let pod = TestNs::new("hpod")?;
    let att = attachment("hostport-traffic", &pod, HOST_PORT, SERVER_PORT);
    let added = chain.add(&att)?;
    let pod_ip = result_ipv4(&added.result)?;
    let client = TestNs::new("hcli")?;
    link_client(chain, &client)?;
    let server = IperfServer::start(pod.path(), pod_ip)?;
    Ok(Setup {
        label: chain.label,
        server: Some(server),
        client,
        _pod: pod,
        pod_ip,
    })
}

/// A veth from the node namespace to the client namespace, addressed and routed.
fn link_client(chain: &Chain, client: &TestNs) -> Result<()> {
    let node_ns = NetnsFd::open(chain.node.path())?;
    let client_ns = NetnsFd::open(client.path())?;
    let mut nl = Netlink::open_in(&node_ns)?;
    let uplink = nl.create_veth(&VethSpec {
        name: "uplink",
        peer_name: "eth0",
        peer_netns: Some(&client_ns),
        mtu: None,
        mac: None,
        peer_mac: None,
        group: None,
    })?;
    nl.add_addr(uplink.index, IpNet::new(NODE_IP.into(), 24)?, false)?;
    nl.set_up(uplink.index, true)?;
    let mut cnl = Netlink::open_in(&client_ns)?;
    let eth0 = cnl.link_by_name("eth0")?;
    cnl.add_addr(eth0.index, IpNet::new(CLIENT_IP.into(), 24)?, false)?;
    cnl.set_up(eth0.index, true)?;
    let mut route = RouteSpec::to(IpNet::V4(Ipv4Net::new(
        chain.subnet.network(),
        chain.subnet.prefix_len(),
    )?));
    route.gateway = Some(NODE_IP.into());
    route.oif = Some(eth0.index);
    cnl.add_route(&route)
        .context("client route to the pod subnet")?;
    Ok(())
}

/// Measures every chain's direct and hostPort paths, rotating which goes first.
pub fn run(chains: &[Chain; 2], rounds: usize, seconds: u32) -> Result<()> {
    let setups = [setup(&chains[0])?, setup(&chains[1])?];
    // (setup index, via hostPort)
    let paths: Vec<(usize, bool)> = vec![(1, false), (1, true), (0, false), (0, true)];
    let mut gbps: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for round in 0..rounds {
        let mut line = format!("  round {}:", round + 1);
        for k in 0..paths.len() {
            let p = (round + k) % paths.len();
            let (s, via_port) = paths[p];
            let setup = &setups[s];
            let (to, port) = if via_port {
                (NODE_IP, HOST_PORT)
            } else {
                (setup.pod_ip, SERVER_PORT)
            };
            gbps[p].push(iperf_gbps_to(setup.client.path(), to, port, seconds)?);
        }
        for (p, (s, via_port)) in paths.iter().enumerate() {
            line.push_str(&format!(
                " {} {} {:.2};",
                setups[*s].label,
                if *via_port { "hostPort" } else { "direct" },
                gbps[p].last().copied().unwrap_or_default()
            ));
        }
        eprintln!("{line}");
    }
    println!(
        "hostPort TCP throughput, client host -> node -> pod, Gbit/s (median of {rounds} x {seconds} s):"
    );
    println!(
        "{:<10} {:>8} {:>9} {:>8}   target",
        "chain", "direct", "hostPort", "ratio"
    );
    for s in [1, 0] {
        let direct = median(&gbps[paths.iter().position(|&p| p == (s, false)).unwrap_or(0)]);
        let mapped = median(&gbps[paths.iter().position(|&p| p == (s, true)).unwrap_or(0)]);
        println!(
            "{:<10} {direct:>8.2} {mapped:>9.2} {:>8.3}   {}",
            setups[s].label,
            mapped / direct,
            if s == 1 { ">= 0.95" } else { "" }
        );
    }
    Ok(())
}
