//! The control plane of the lab: the cluster config, etcd in the fabric namespace, and one
//! `weftd` per node namespace.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use weft_cluster::{Backend, ClusterConfig};
use weft_datapath::{NetnsFd, named_netns_path, run_in_netns};

use super::fabric::{FABRIC_IP, UNDERLAY_IFACE};
use super::procs::{is_alive, log_tail, spawn_in_netns};
use super::state::{BackendKind, LabPaths, NodeState, StoreKind};

/// etcd client port on the fabric address.
pub const ETCD_PORT: u16 = 2379;
/// How long an agent or etcd gets to come up.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(45);
/// Name of the conflist weftd installs.
pub const CONFLIST_NAME: &str = "10-weft.conflist";

/// The etcd client URL the agents use.
pub fn etcd_endpoint() -> String {
    format!("http://{FABRIC_IP}:{ETCD_PORT}")
}

/// Cluster config per the contract: 10.244.0.0/16 (/24 per node), with IPv6 also
/// fd00:10:244::/56 (/64 per node).
pub fn cluster_config(backend: BackendKind, ipv6: bool) -> Result<ClusterConfig> {
    let mut cidrs = vec!["10.244.0.0/16".parse()?];
    if ipv6 {
        cidrs.push("fd00:10:244::/56".parse()?);
    }
    let config = ClusterConfig {
        cluster_cidrs: cidrs,
        node_prefix_v4: 24,
        node_prefix_v6: 64,
        backend: match backend {
            BackendKind::Vxlan => Backend::default(),
            BackendKind::HostGw => Backend::HostGw,
        },
        mtu: None,
    };
    config.validate()?;
    Ok(config)
}

/// Per-node directories.
#[derive(Debug, Clone)]
pub struct NodeDirs {
    /// weftd's run dir (node.json, status.json, weftd.log).
    pub run: PathBuf,
    /// CNI config dir.
    pub cni: PathBuf,
    /// IPAM data dir.
    pub ipam: PathBuf,
    /// Runtime result cache.
    pub cache: PathBuf,
}

impl NodeDirs {
    /// Directories of `node` under the lab dir.
    pub fn of(paths: &LabPaths, node: &str) -> NodeDirs {
        let base = paths.node_dir(node);
        NodeDirs {
            run: base.join("run"),
            cni: base.join("cni"),
            ipam: base.join("ipam"),
            cache: base.join("cache"),
        }
    }
    /// Creates them.
    pub fn create(&self) -> Result<()> {
        for dir in [&self.run, &self.cni, &self.ipam, &self.cache] {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        Ok(())
    }
    /// The conflist weftd writes.
    pub fn conflist(&self) -> PathBuf {
        self.cni.join(CONFLIST_NAME)
    }
    /// weftd's status file.
    pub fn status(&self) -> PathBuf {
        self.run.join("status.json")
    }
    /// weftd's log.
    pub fn log(&self) -> PathBuf {
        self.run.join("weftd.log")
    }
}

/// Starts etcd inside the fabric namespace and waits until it accepts connections.
pub fn start_etcd(paths: &LabPaths, etcd_bin: &Path) -> Result<u32> {
    let data = paths.etcd_dir();
    std::fs::create_dir_all(&data)?;
    let client = etcd_endpoint();
    let args: Vec<String> = [
        "--name",
        "weftlab",
        "--data-dir",
        &data.to_string_lossy(),
        "--listen-client-urls",
        &format!("{client},http://127.0.0.1:{ETCD_PORT}"),
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-cluster",
        "weftlab=http://127.0.0.1:2380",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let log = paths.dir.join("etcd.log");
    let fabric = named_netns_path(&paths.fabric_netns());
    let pid = spawn_in_netns(&fabric, etcd_bin, &args, &log)?;
    let ns = NetnsFd::open(&fabric)?;
    let target = SocketAddr::new(IpAddr::V4(FABRIC_IP), ETCD_PORT);
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let up = run_in_netns(&ns, || {
            TcpStream::connect_timeout(&target, Duration::from_millis(300)).is_ok()
        })?;
        if up {
            return Ok(pid);
        }
        if !is_alive(pid) || Instant::now() >= deadline {
            bail!(
                "etcd did not come up on {target}; last lines of {}:\n{}",
                log.display(),
                log_tail(&log, 15)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// weftd's command line for one node, per the contract.
pub fn weftd_args(paths: &LabPaths, store: StoreKind, node: &str) -> Vec<String> {
    let dirs = NodeDirs::of(paths, node);
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let mut args = vec!["--node-name".to_string(), node.to_string()];
    match store {
        StoreKind::Embedded => {
            args.extend(["--store".into(), "embedded".into()]);
            args.extend(["--store-path".into(), s(&paths.store_dir())]);
        }
        StoreKind::Etcd => {
            args.extend(["--store".into(), "etcd".into()]);
            args.extend(["--etcd-endpoints".into(), etcd_endpoint()]);
        }
    }
    args.extend([
        "--cluster-config".into(),
        s(&paths.cluster_config()),
        "--underlay-iface".into(),
        UNDERLAY_IFACE.into(),
        "--run-dir".into(),
        s(&dirs.run),
        "--cni-conf-dir".into(),
        s(&dirs.cni),
        "--ipam-data-dir".into(),
        s(&dirs.ipam),
    ]);
    args
}

/// Starts weftd inside a node's namespace; returns its pid.
pub fn start_weftd(
    paths: &LabPaths,
    weftd: &Path,
    store: StoreKind,
    node: &NodeState,
) -> Result<u32> {
    let dirs = NodeDirs::of(paths, &node.name);
    let args = weftd_args(paths, store, &node.name);
    spawn_in_netns(&named_netns_path(&node.netns), weftd, &args, &dirs.log())
}

/// What the lab reads from weftd's status.json.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// Healthy after the last reconcile.
    #[serde(default)]
    pub healthy: bool,
    /// Pod subnets of the node.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Known peers.
    #[serde(default)]
    pub peers: u64,
    /// Last error, if any.
    #[serde(default)]
    pub error: Option<String>,
    /// Unix time of the last reconcile.
    #[serde(default)]
    pub last_reconcile: Option<u64>,
    /// NetworkPolicy enforcement (absent with agents that do not enforce policies).
    #[serde(default)]
    pub policy: Option<PolicyStatus>,
}

/// The `policy` section of status.json (policy contract).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// Enforcement on.
    #[serde(default)]
    pub enabled: bool,
    /// Highest datastore revision whose effect is in the kernel.
    #[serde(default)]
    pub revision: i64,
    /// Last apply error, if any.
    #[serde(default)]
    pub error: Option<String>,
}

/// How long `apply`/`delete` wait for every agent to enforce what they wrote.
pub const POLICY_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a node still has to catch up with `revision`: only agents that report an
/// enabled `policy` section are waited for (older agents and disabled enforcement never
/// report a revision).
pub fn policy_lagging(status: Option<&AgentStatus>, revision: i64) -> Option<i64> {
    match status.and_then(|s| s.policy.as_ref()) {
        Some(p) if p.enabled && p.revision < revision => Some(p.revision),
        _ => None,
    }
}

/// Waits until every node's weftd has the effect of store revision `revision` in its
/// kernel (status.json `policy.revision >= revision`), at most `timeout`; returns how many
/// nodes enforce policies (0: nobody to wait for).
pub fn wait_policy_revision(
    paths: &LabPaths,
    nodes: &[NodeState],
    revision: i64,
    timeout: Duration,
) -> Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut lagging = Vec::new();
        for node in nodes {
            let status = read_status(paths, &node.name);
            if let Some(seen) = policy_lagging(status.as_ref(), revision) {
                let error = status
                    .and_then(|s| s.policy)
                    .and_then(|p| p.error)
                    .map(|e| format!(", policy error: {e}"))
                    .unwrap_or_default();
                lagging.push((node, seen, error));
            }
        }
        let Some((node, seen, error)) = lagging.first() else {
            let enforcing = nodes
                .iter()
                .filter_map(|n| read_status(paths, &n.name)?.policy)
                .filter(|p| p.enabled)
                .count();
            return Ok(enforcing);
        };
        let dead = node.weftd_pid.is_some_and(|pid| !is_alive(pid));
        if dead || Instant::now() >= deadline {
            let names: Vec<String> = lagging
                .iter()
                .map(|(n, seen, _)| format!("{} at {seen}", n.name))
                .collect();
            let why = if dead {
                "weftd exited".to_string()
            } else {
                format!("timed out after {}s", timeout.as_secs())
            };
            let log = NodeDirs::of(paths, &node.name).log();
            bail!(
                "policy revision {revision} not enforced on every node ({why}; {}{error}); weftd on {} applied up to {seen}; last lines of {}:\n{}",
                names.join(", "),
                node.name,
                log.display(),
                log_tail(&log, 15)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads a node's status.json, if present and parsable.
pub fn read_status(paths: &LabPaths, node: &str) -> Option<AgentStatus> {
    let text = std::fs::read_to_string(NodeDirs::of(paths, node).status()).ok()?;
    serde_json::from_str(&text).ok()
}

/// Waits until every node's weftd reports healthy with `peers` peers and has installed
/// its conflist.
pub fn wait_healthy(paths: &LabPaths, nodes: &[NodeState]) -> Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let want_peers = u64::try_from(nodes.len().saturating_sub(1)).unwrap_or(0);
    loop {
        let mut waiting = None;
        for node in nodes {
            let dirs = NodeDirs::of(paths, &node.name);
            let status = read_status(paths, &node.name);
            let ready = status
                .as_ref()
                .is_some_and(|s| s.healthy && s.peers >= want_peers)
                && dirs.conflist().is_file();
            if ready {
                continue;
            }
            let dead = node.weftd_pid.is_some_and(|pid| !is_alive(pid));
            if dead || Instant::now() >= deadline {
                let why = if dead { "exited" } else { "is not healthy" };
                let detail = status
                    .and_then(|s| s.error)
                    .map(|e| format!(" (status error: {e})"))
                    .unwrap_or_default();
                bail!(
                    "weftd on {} {why}{detail}; last lines of {}:\n{}",
                    node.name,
                    dirs.log().display(),
                    log_tail(&dirs.log(), 20)
                );
            }
            waiting = Some(node.name.clone());
        }
        if waiting.is_none() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_config_matches_contract() {
        let c = cluster_config(BackendKind::HostGw, true).unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["clusterCidrs"][0], "10.244.0.0/16");
        assert_eq!(json["clusterCidrs"][1], "fd00:10:244::/56");
        assert_eq!(json["backend"]["type"], "host-gw");
        let v = serde_json::to_value(cluster_config(BackendKind::Vxlan, false).unwrap()).unwrap();
        assert_eq!(v["backend"]["port"], 4789);
    }

    #[test]
    fn only_enabled_policy_sections_are_waited_for() {
        let parse = |j: &str| serde_json::from_str::<AgentStatus>(j).unwrap();
        let old = parse(r#"{"healthy":true}"#);
        assert_eq!(policy_lagging(Some(&old), 5), None);
        assert_eq!(policy_lagging(None, 5), None);
        let off = parse(r#"{"policy":{"enabled":false,"revision":0}}"#);
        assert_eq!(policy_lagging(Some(&off), 5), None);
        let behind = parse(r#"{"policy":{"enabled":true,"revision":4,"appliedAtMs":1}}"#);
        assert_eq!(policy_lagging(Some(&behind), 5), Some(4));
        assert_eq!(policy_lagging(Some(&behind), 4), None);
    }

    #[test]
    fn weftd_command_line() {
        let paths = LabPaths::new("/run/l", "wl");
        let args = weftd_args(&paths, StoreKind::Etcd, "node2").join(" ");
        assert!(args.contains("--node-name node2"));
        assert!(args.contains("--etcd-endpoints http://198.18.0.1:2379"));
        assert!(args.contains("--run-dir /run/l/node2/run"));
        assert!(args.contains("--cni-conf-dir /run/l/node2/cni"));
    }
}
