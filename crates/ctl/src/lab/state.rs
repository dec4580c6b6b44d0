//! The lab's persistent state (`<lab-dir>/state.json`) and where everything lives.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Default lab directory.
pub const DEFAULT_LAB_DIR: &str = "/run/weft-lab";
/// Default namespace name prefix.
pub const DEFAULT_PREFIX: &str = "weftlab";

/// Where a lab keeps its files and how its namespaces are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabPaths {
    /// Lab directory (state, store, logs, per-node run dirs).
    pub dir: PathBuf,
    /// Namespace name prefix: `<prefix>-fabric`, `<prefix>-nodeI`, `<prefix>-pod-...`.
    pub prefix: String,
}

impl LabPaths {
    /// Paths for a lab directory and namespace prefix.
    pub fn new(dir: impl Into<PathBuf>, prefix: &str) -> Self {
        LabPaths {
            dir: dir.into(),
            prefix: prefix.to_string(),
        }
    }
    /// `state.json`.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// Cluster config handed to every weftd.
    pub fn cluster_config(&self) -> PathBuf {
        self.dir.join("cluster.json")
    }
    /// Embedded store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }
    /// etcd data directory.
    pub fn etcd_dir(&self) -> PathBuf {
        self.dir.join("etcd")
    }
    /// Per-pod logs (responders).
    pub fn pods_dir(&self) -> PathBuf {
        self.dir.join("pods")
    }
    /// Per-node directory with `run`, `cni`, `ipam`, `cache`.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join(node)
    }
    /// Name of the fabric namespace.
    pub fn fabric_netns(&self) -> String {
        format!("{}-fabric", self.prefix)
    }
    /// Name of a node's namespace.
    pub fn node_netns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }
    /// Name of a pod's namespace.
    pub fn pod_netns(&self, namespace: &str, pod: &str) -> String {
        format!("{}-pod-{namespace}-{pod}", self.prefix)
    }
    /// Whether a namespace name belongs to this lab.
    pub fn owns_netns(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.starts_with('-'))
    }
}

/// Datastore the lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// File store in `<lab-dir>/store`.
    Embedded,
    /// etcd inside the fabric namespace on 198.18.0.1:2379.
    Etcd,
}

/// Cross-node backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// VXLAN (VNI 1, port 4789).
    Vxlan,
    /// Direct routes over the shared underlay.
    HostGw,
}

/// Transport protocol of a port or probe.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "UPPERCASE")]
#[value(rename_all = "UPPERCASE")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        })
    }
}

impl std::str::FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "TCP" | "tcp" => Ok(Proto::Tcp),
            "UDP" | "udp" => Ok(Proto::Udp),
            other => Err(format!("unsupported protocol {other:?} (TCP or UDP)")),
        }
    }
}

/// A declared container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// Port number.
    pub port: u16,
    /// Protocol.
    pub protocol: Proto,
    /// Port name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One node of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Node name (`node1`, ...).
    pub name: String,
    /// Its namespace name.
    pub netns: String,
    /// Underlay address on `eth0`.
    pub underlay_ip: Ipv4Addr,
    /// weftd's pid, once started.
    #[serde(default)]
    pub weftd_pid: Option<u32>,
    /// Pid of the node's own responder (target of `node/NAME` probes).
    #[serde(default)]
    pub responder_pid: Option<u32>,
}

/// One pod of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Node it runs on.
    pub node: String,
    /// Its network namespace name.
    pub netns: String,
    /// `CNI_CONTAINERID` used for ADD/DEL.
    pub container_id: String,
    /// Pod IPs from the CNI result.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Declared ports (the responder listens on them).
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Responder pid.
    #[serde(default)]
    pub responder_pid: Option<u32>,
}

impl PodState {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A Kubernetes namespace created by `apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceState {
    /// Name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Everything the lab has made, persisted between invocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabState {
    /// Namespace prefix the lab was made with.
    pub prefix: String,
    /// Backend.
    pub backend: BackendKind,
    /// Store.
    pub store: StoreKind,
    /// Dual stack.
    pub ipv6: bool,
    /// Directory with `weft`, `weft-ipam` (CNI_PATH).
    pub cni_bin_dir: PathBuf,
    /// etcd's pid when the store is etcd.
    #[serde(default)]
    pub etcd_pid: Option<u32>,
    /// Nodes.
    #[serde(default)]
    pub nodes: Vec<NodeState>,
    /// Namespaces created by `apply` (`default` always exists).
    #[serde(default)]
    pub namespaces: Vec<NamespaceState>,
    /// Pods.
    #[serde(default)]
    pub pods: Vec<PodState>,
    /// NetworkPolicy keys (`namespace/name`) stored by `apply`.
    #[serde(default)]
    pub policies: Vec<String>,
}

impl LabState {
    /// Reads the state file.
    pub fn load(paths: &LabPaths) -> Result<LabState> {
        let file = paths.state_file();
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("no lab at {} (run `weftctl lab up`)", paths.dir.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("corrupt state file {}", file.display()))
    }

    /// Writes the state file atomically (tmp + rename).
    pub fn save(&self, paths: &LabPaths) -> Result<()> {
        write_atomic(&paths.state_file(), &serde_json::to_vec_pretty(self)?)
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// A pod by `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodState> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// Whether a Kubernetes namespace exists (`default` always does).
    pub fn has_namespace(&self, name: &str) -> bool {
        name == "default" || self.namespaces.iter().any(|n| n.name == name)
    }
}

/// Writes `bytes` to `path` via a temporary file and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LabState {
        LabState {
            prefix: "wl".into(),
            backend: BackendKind::HostGw,
            store: StoreKind::Etcd,
            ipv6: true,
            cni_bin_dir: "/opt/cni/bin".into(),
            etcd_pid: Some(42),
            nodes: vec![NodeState {
                name: "node1".into(),
                netns: "wl-node1".into(),
                underlay_ip: Ipv4Addr::new(198, 18, 0, 11),
                weftd_pid: Some(7),
                responder_pid: None,
            }],
            namespaces: vec![NamespaceState {
                name: "team".into(),
                labels: BTreeMap::from([("a".into(), "b".into())]),
            }],
            pods: vec![PodState {
                namespace: "default".into(),
                name: "p".into(),
                node: "node1".into(),
                netns: "wl-pod-default-p".into(),
                container_id: "c".into(),
                ips: vec![
                    "10.244.0.2".parse().unwrap(),
                    "fd00:10:244::2".parse().unwrap(),
                ],
                labels: BTreeMap::new(),
                ports: vec![PortSpec {
                    port: 80,
                    protocol: Proto::Udp,
                    name: Some("dns".into()),
                }],
                responder_pid: Some(9),
            }],
            policies: vec!["default/deny".into()],
        }
    }

    #[test]
    fn state_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LabPaths::new(dir.path(), "wl");
        let state = sample();
        state.save(&paths).unwrap();
        assert_eq!(LabState::load(&paths).unwrap(), state);
        let text = std::fs::read_to_string(paths.state_file()).unwrap();
        assert!(text.contains("\"host-gw\""), "{text}");
        assert!(text.contains("\"UDP\""), "{text}");
    }

    #[test]
    fn missing_or_corrupt_state_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LabPaths::new(dir.path(), "wl");
        let e = LabState::load(&paths).unwrap_err().to_string();
        assert!(e.contains("lab up"), "{e}");
        std::fs::write(paths.state_file(), "{nope").unwrap();
        let e = LabState::load(&paths).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
    }

    #[test]
    fn namespace_names_and_ownership() {
        let paths = LabPaths::new("/x", "weftlab");
        assert_eq!(paths.node_netns("node2"), "weftlab-node2");
        assert_eq!(paths.pod_netns("default", "a"), "weftlab-pod-default-a");
        assert!(paths.owns_netns("weftlab-fabric"));
        assert!(!paths.owns_netns("weftlabx-fabric"));
        assert!(!paths.owns_netns("other"));
    }
}
