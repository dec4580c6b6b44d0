//! Files weftd writes for the plugin and for whoever watches the node (the lab): the
//! node-local facts, the status and the CNI conflist. Rendering is pure; writing is atomic
//! (temporary file in the same directory, fsync, rename), so readers never see half a file.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ipnet::IpNet;
use serde::Serialize;
use serde_json::{Value, json};
use weft_cluster::{Backend, NodeLocalConfig};

/// File name of the facts file in the run dir.
pub const NODE_JSON: &str = "node.json";
/// File name of the status file in the run dir.
pub const STATUS_JSON: &str = "status.json";
/// File name of the conflist in the CNI config dir.
pub const CONFLIST: &str = "10-weft.conflist";

/// What `status.json` says about the agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Node name.
    pub node: String,
    /// weftd's process id.
    pub pid: u32,
    /// Subnets claimed, the node programmed and the peers read at least once.
    pub healthy: bool,
    /// Unix time (seconds) of the last reconcile.
    pub last_reconcile: u64,
    /// The node's pod subnets.
    pub subnets: Vec<IpNet>,
    /// Peers routes are programmed to.
    pub peers: usize,
    /// Underlay address.
    pub underlay_ip: IpAddr,
    /// Backend, as in the cluster config.
    pub backend: Backend,
    /// What is wrong, if anything (datastore unreachable, refused peers, kernel errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// NetworkPolicy enforcement, filled in by [`crate::status::StatusBoard`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::status::PolicyStatus>,
}

/// Where the files go.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Directory of node.json and status.json.
    pub run_dir: PathBuf,
    /// CNI config directory.
    pub cni_conf_dir: PathBuf,
    /// IPAM data dir written into the conflist.
    pub ipam_data_dir: PathBuf,
    /// The policy claim socket, written into the conflist when policy is enforced.
    pub policy_socket: Option<PathBuf>,
}

impl Paths {
    /// Path of node.json.
    pub fn node_json(&self) -> PathBuf {
        self.run_dir.join(NODE_JSON)
    }

    /// Writes node.json and the conflist for `local`.
    pub fn write_node_files(&self, local: &NodeLocalConfig) -> Result<()> {
        write_atomic(&self.node_json(), local.to_json()?.as_bytes())?;
        let conflist = render_conflist(
            local,
            &self.node_json(),
            &self.ipam_data_dir,
            self.policy_socket.as_deref(),
        );
        let text = serde_json::to_string_pretty(&conflist)? + "\n";
        write_atomic(&self.cni_conf_dir.join(CONFLIST), text.as_bytes())
    }

    /// Writes status.json.
    pub fn write_status(&self, status: &Status) -> Result<()> {
        let text = serde_json::to_string_pretty(status)? + "\n";
        write_atomic(&self.run_dir.join(STATUS_JSON), text.as_bytes())
    }

    /// Subnets from a node.json left by an earlier run (hints for claiming the same ones).
    pub fn previous_subnets(&self) -> Vec<IpNet> {
        std::fs::read_to_string(self.node_json())
            .ok()
            .and_then(|text| NodeLocalConfig::from_json(&text).ok())
            .map(|c| c.subnets)
            .unwrap_or_default()
    }
}

/// The plugin's conflist as the cluster contract spells it. `ipMasq` is false because
/// weftd masquerades pod traffic leaving the cluster itself. `policySocket` (policy
/// contract) makes the plugin claim a pod's addresses before it wires the pod.
pub fn render_conflist(
    local: &NodeLocalConfig,
    node_json: &Path,
    ipam_data_dir: &Path,
    policy_socket: Option<&Path>,
) -> Value {
    let mut subnets = local.subnets.clone();
    subnets.sort_by_key(|s| s.addr().is_ipv6());
    let ranges: Vec<Value> = subnets
        .iter()
        .map(|s| json!([{ "subnet": s.to_string() }]))
        .collect();
    let mut plugin = json!({
            "type": "weft",
            "mode": "bridge",
            "bridge": crate::desired::BRIDGE,
            "isGateway": true,
            "isDefaultGateway": true,
            "ipMasq": false,
            "mtu": local.mtu,
            "nodeConfig": node_json.display().to_string(),
            "ipam": {
                "type": "weft-ipam",
                "ranges": ranges,
                "dataDir": ipam_data_dir.display().to_string(),
            }
    });
    if let (Some(socket), Some(fields)) = (policy_socket, plugin.as_object_mut()) {
        // Right after nodeConfig, as the policy contract shows it (keys keep their order).
        let mut ordered = serde_json::Map::new();
        for (key, value) in std::mem::take(fields) {
            let after = key == "nodeConfig";
            ordered.insert(key, value);
            if after {
                ordered.insert(
                    "policySocket".into(),
                    Value::String(socket.display().to_string()),
                );
            }
        }
        *fields = ordered;
    }
    json!({
        "cniVersion": "1.0.0",
        "name": "weft",
        "plugins": [plugin]
    })
}

/// Replaces `path` atomically with `contents`, creating its directory if needed.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // A leading dot and a non-.conflist suffix keep runtimes from loading the temp file.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("write {}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(subnets: &[&str]) -> NodeLocalConfig {
        NodeLocalConfig {
            node: "n1".into(),
            subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
            mtu: 1450,
            backend: Backend::default(),
            cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        }
    }

    #[test]
    fn conflist_shape() {
        let c = render_conflist(
            &local(&["fd00:10:244:1::/64", "10.244.1.0/24"]),
            Path::new("/run/weft/node.json"),
            Path::new("/var/lib/cni/networks"),
            Some(Path::new("/run/weft/policy.sock")),
        );
        let p = &c["plugins"][0];
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(p["type"], "weft");
        assert_eq!(p["bridge"], "weft0");
        assert_eq!(p["ipMasq"], false);
        assert_eq!(p["isGateway"], true);
        assert_eq!(p["mtu"], 1450);
        assert_eq!(p["nodeConfig"], "/run/weft/node.json");
        assert_eq!(p["ipam"]["ranges"][0][0]["subnet"], "10.244.1.0/24");
        assert_eq!(p["ipam"]["ranges"][1][0]["subnet"], "fd00:10:244:1::/64");
        assert_eq!(p["ipam"]["dataDir"], "/var/lib/cni/networks");
        assert_eq!(p["policySocket"], "/run/weft/policy.sock");
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        let at = keys.iter().position(|k| *k == "nodeConfig").unwrap();
        assert_eq!(keys[at + 1], "policySocket");
        let without = render_conflist(
            &local(&["10.244.1.0/24"]),
            Path::new("/run/weft/node.json"),
            Path::new("/var/lib/cni/networks"),
            None,
        );
        assert!(without["plugins"][0].get("policySocket").is_none());
        assert_eq!(without["plugins"][0]["nodeConfig"], "/run/weft/node.json");
    }

    #[test]
    fn atomic_files_and_hints() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            run_dir: dir.path().join("run"),
            cni_conf_dir: dir.path().join("net.d"),
            ipam_data_dir: dir.path().join("ipam"),
            policy_socket: None,
        };
        assert!(paths.previous_subnets().is_empty());
        paths.write_node_files(&local(&["10.244.1.0/24"])).unwrap();
        assert_eq!(
            paths.previous_subnets(),
            vec!["10.244.1.0/24".parse::<IpNet>().unwrap()]
        );
        let conf: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("net.d").join(CONFLIST)).unwrap(),
        )
        .unwrap();
        assert_eq!(conf["name"], "weft");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("run"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(NODE_JSON)]);
    }
}
