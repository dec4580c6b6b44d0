//! A small cluster in network namespaces for weftd tests: a fabric namespace with a
//! bridge, node namespaces attached by veths (198.18.0.0/24), one real `weftd` per node.
// Test-only helpers: clippy treats non-#[test] functions as production code.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde_json::Value;
use weft_datapath::netlink::IpFamily;
use weft_datapath::{Netlink, NetnsFd, RouteSpec, VethSpec};
use weft_testns::TestNs;

pub mod etcd;
pub mod policy;

/// Route protocol weftd marks its routes with.
pub const WEFT_PROTO: u8 = 87;

/// A running weftd; killed (SIGKILL) and reaped on drop.
pub struct Weftd {
    child: Option<Child>,
}

impl Weftd {
    /// Stops it with a signal (e.g. SIGTERM) and waits.
    pub fn stop(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "weftd did not exit on {signal}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Weftd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One node: namespace, underlay address, its directories.
pub struct Node {
    pub name: String,
    pub underlay: IpAddr,
    pub dir: PathBuf,
    pub ns: TestNs,
    pub fd: NetnsFd,
}

impl Node {
    pub fn nl(&self) -> Netlink {
        Netlink::open_in(&self.fd).unwrap()
    }

    pub fn status(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.dir.join("run/status.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn exec(&self, args: &[&str]) -> Output {
        self.ns
            .exec(Command::new(args[0]).args(&args[1..]))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.ns.run(|| {
            Command::new(args[0])
                .args(&args[1..])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
    }

    /// Subnets from status.json.
    pub fn subnets(&self) -> Vec<IpNet> {
        let status = self.status().unwrap();
        serde_json::from_value(status["subnets"].clone()).unwrap()
    }

    /// The bridge gateway (first host) of this node's IPv4 subnet.
    pub fn gateway_v4(&self) -> String {
        let subnet = self
            .subnets()
            .into_iter()
            .find(|s| s.addr().is_ipv4())
            .unwrap();
        let IpAddr::V4(a) = subnet.network() else {
            unreachable!()
        };
        std::net::Ipv4Addr::from(u32::from(a) + 1).to_string()
    }

    /// Routes weftd programmed, both families, sorted by destination.
    pub fn weft_routes(&self) -> Vec<RouteSpec> {
        let mut nl = self.nl();
        let mut routes = nl.routes(IpFamily::V4, None).unwrap();
        routes.extend(nl.routes(IpFamily::V6, None).unwrap());
        let mut routes: Vec<RouteSpec> = routes
            .into_iter()
            .filter(|r| r.proto == Some(WEFT_PROTO))
            .collect();
        routes.sort_by_key(|r| r.dst);
        routes
    }

    pub fn ping(&self, target: &str, count: u32) -> bool {
        let c = count.to_string();
        self.exec(&["ping", "-c", &c, "-i", "0.2", "-W", "1", target])
            .status
            .success()
    }
}

/// Fabric + nodes + shared store dir. Fields drop in order: agents first, then namespaces.
pub struct Cluster {
    pub agents: Vec<Weftd>,
    /// Pod namespaces made by [`Cluster::add_pod`].
    pub pods: Vec<TestNs>,
    pub nodes: Vec<Node>,
    pub fabric: TestNs,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub ttl: u64,
    /// etcd client URL; `None`: the embedded store.
    pub etcd: Option<String>,
    /// Extra weftd arguments for every start (e.g. `--network-policy false`).
    pub extra_args: Vec<String>,
}

impl Cluster {
    /// `addrs`: underlay address/prefix for each node, e.g. "198.18.0.10/24" or
    /// "198.18.0.10/24,2001:2::10/64" for a dual-stack underlay.
    pub fn new(cluster_config: &str, addrs: &[&str], ttl: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("cluster.json");
        std::fs::write(&config, cluster_config).unwrap();
        let fabric = TestNs::new("fab").unwrap();
        let fabric_fd = NetnsFd::open(fabric.path()).unwrap();
        let mut fnl = Netlink::open_in(&fabric_fd).unwrap();
        let bridge = fnl.create_bridge("fabbr", None).unwrap();
        fnl.add_addr(bridge.index, "198.18.0.1/24".parse().unwrap(), false)
            .unwrap();
        let mut nodes = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let name = format!("node{i}");
            let ns = TestNs::new(&format!("n{i}")).unwrap();
            let fd = NetnsFd::open(ns.path()).unwrap();
            let host_end = format!("fabp{i}");
            let veth = fnl
                .create_veth(&VethSpec {
                    name: &host_end,
                    peer_name: "eth0",
                    peer_netns: Some(&fd),
                    mtu: None,
                    mac: None,
                    peer_mac: None,
                    group: None,
                })
                .unwrap();
            fnl.set_master(veth.index, Some(bridge.index)).unwrap();
            fnl.set_up(veth.index, true).unwrap();
            let mut nl = Netlink::open_in(&fd).unwrap();
            let eth0 = nl.link_by_name("eth0").unwrap();
            // "v4/len[,v6/len]": the first is the primary underlay address.
            let nets: Vec<IpNet> = addr.split(',').map(|a| a.parse().unwrap()).collect();
            for extra in &nets {
                nl.add_addr(eth0.index, *extra, extra.addr().is_ipv6())
                    .unwrap();
            }
            let net = nets[0];
            nl.set_up(eth0.index, true).unwrap();
            let node_dir = dir.path().join(&name);
            std::fs::create_dir_all(&node_dir).unwrap();
            nodes.push(Node {
                name,
                underlay: net.addr(),
                dir: node_dir,
                ns,
                fd,
            });
        }
        // The fabric bridge forwards only once its ports have carrier (linkwatch is async).
        wait_until("fabric ports up", Duration::from_secs(5), || {
            (0..nodes.len()).all(|i| fnl.link_by_name(&format!("fabp{i}")).unwrap().oper_up)
        });
        Cluster {
            agents: Vec::new(),
            pods: Vec::new(),
            nodes,
            fabric,
            dir,
            config,
            ttl,
            etcd: None,
            extra_args: Vec::new(),
        }
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Starts weftd on node `i` (replacing a stopped one).
    pub fn start(&mut self, i: usize) {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("weftd.log"))
            .unwrap();
        let bin = env!("CARGO_BIN_EXE_weftd");
        let d = |p: &str| node.dir.join(p).display().to_string();
        let store = match &self.etcd {
            None => vec![
                "--store".to_string(),
                "embedded".into(),
                "--store-path".into(),
                self.store_dir().display().to_string(),
            ],
            Some(url) => vec![
                "--store".to_string(),
                "etcd".into(),
                "--etcd-endpoints".into(),
                url.clone(),
            ],
        };
        let mut args = vec!["--node-name".to_string(), node.name.clone()];
        args.extend(store);
        args.extend([
            "--cluster-config".into(),
            self.config.display().to_string(),
            "--underlay-iface".into(),
            "eth0".into(),
            "--run-dir".into(),
            d("run"),
            "--cni-conf-dir".into(),
            d("net.d"),
            "--ipam-data-dir".into(),
            d("ipam"),
            "--resync-seconds".into(),
            "2".into(),
            "--lease-ttl-seconds".into(),
            self.ttl.to_string(),
            "--log-level".into(),
            "debug".into(),
        ]);
        args.extend(self.extra_args.iter().cloned());
        let child = node.ns.run(|| {
            Command::new(bin)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        });
        while self.agents.len() <= i {
            self.agents.push(Weftd { child: None });
        }
        self.agents[i] = Weftd { child: Some(child) };
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// Waits until node `i` reports healthy with `peers` peers and a fresh pid.
    pub fn wait_healthy(&self, i: usize, peers: u64) {
        let node = &self.nodes[i];
        let pid = self.agents[i].child.as_ref().map(|c| u64::from(c.id()));
        let ok = poll(Duration::from_secs(20), || {
            node.status().is_some_and(|s| {
                s["healthy"] == true && s["peers"] == peers && s["pid"].as_u64() == pid
            })
        });
        assert!(
            ok,
            "{} not healthy with {peers} peers: {:?}\nlog:\n{}",
            node.name,
            node.status(),
            self.log(i)
        );
    }

    /// A pod on node `i` the way the bridge plugin wires one: a veth on `weft0`, address
    /// `host` (an offset in the node's IPv4 subnet), default route via the gateway.
    /// Returns the pod's index in [`Cluster::pods`] and its address.
    pub fn add_pod(&mut self, i: usize, host: u32) -> (usize, String) {
        let (index, addrs) = self.add_pod_with(i, host, false);
        (index, addrs[0].clone())
    }

    /// [`Cluster::add_pod`], with `dual` also host `host` of the node's IPv6 subnet (and
    /// an IPv6 default route). Returns the pod's index and its addresses, IPv4 first.
    pub fn add_pod_with(&mut self, i: usize, host: u32, dual: bool) -> (usize, Vec<String>) {
        let node = &self.nodes[i];
        let subnet = node
            .subnets()
            .into_iter()
            .find(|s| s.addr().is_ipv4())
            .unwrap();
        let IpAddr::V4(net) = subnet.network() else {
            unreachable!()
        };
        let ip = std::net::Ipv4Addr::from(u32::from(net) + host);
        let gw = std::net::Ipv4Addr::from(u32::from(net) + 1);
        let pod = TestNs::new("pod").unwrap();
        let pod_fd = NetnsFd::open(pod.path()).unwrap();
        let mut nl = node.nl();
        let host_end = format!("vp{}", self.pods.len());
        let veth = nl
            .create_veth(&VethSpec {
                name: &host_end,
                peer_name: "eth0",
                peer_netns: Some(&pod_fd),
                mtu: None,
                mac: None,
                peer_mac: None,
                group: None,
            })
            .unwrap();
        let bridge = nl.link_by_name("weft0").unwrap();
        nl.set_master(veth.index, Some(bridge.index)).unwrap();
        nl.set_up(veth.index, true).unwrap();
        let mut pnl = Netlink::open_in(&pod_fd).unwrap();
        let eth0 = pnl.link_by_name("eth0").unwrap();
        pnl.add_addr(
            eth0.index,
            IpNet::new(IpAddr::V4(ip), subnet.prefix_len()).unwrap(),
            false,
        )
        .unwrap();
        pnl.set_up(eth0.index, true).unwrap();
        let mut default = RouteSpec::to("0.0.0.0/0".parse().unwrap());
        default.gateway = Some(IpAddr::V4(gw));
        pnl.add_route(&default).unwrap();
        let mut addrs = vec![ip.to_string()];
        if dual {
            let subnet6 = node
                .subnets()
                .into_iter()
                .find(|s| s.addr().is_ipv6())
                .unwrap();
            let IpAddr::V6(net6) = subnet6.network() else {
                unreachable!()
            };
            let ip6 = std::net::Ipv6Addr::from(u128::from(net6) + u128::from(host));
            let gw6 = std::net::Ipv6Addr::from(u128::from(net6) + 1);
            let net = IpNet::new(IpAddr::V6(ip6), subnet6.prefix_len()).unwrap();
            pnl.add_addr(eth0.index, net, true).unwrap();
            let mut default6 = RouteSpec::to("::/0".parse().unwrap());
            default6.gateway = Some(IpAddr::V6(gw6));
            pnl.add_route(&default6).unwrap();
            addrs.push(ip6.to_string());
        }
        wait_until("pod port up", Duration::from_secs(5), || {
            nl.link_by_name(&host_end).unwrap().oper_up
        });
        self.pods.push(pod);
        (self.pods.len() - 1, addrs)
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].dir.join("weftd.log")).unwrap_or_default()
    }

    /// Drops agents and namespaces and checks none of the names is still listed.
    pub fn close(self) {
        let mut names: Vec<String> = self.nodes.iter().map(|n| n.ns.name().to_string()).collect();
        names.push(self.fabric.name().to_string());
        names.extend(self.pods.iter().map(|p| p.name().to_string()));
        for i in 0..self.nodes.len() {
            eprintln!("---- weftd log of {}:\n{}", self.nodes[i].name, self.log(i));
        }
        drop(self);
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let list = String::from_utf8_lossy(&out.stdout);
        // Whole names: "…-fab-1" is a prefix of another test's "…-fab-12".
        let listed: Vec<&str> = list
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for name in names {
            assert!(
                !listed.contains(&name.as_str()),
                "{name} still listed:\n{list}"
            );
        }
    }
}

pub fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_until(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    assert!(poll(limit, cond), "timed out waiting for {what}");
}

pub fn file_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
