//! Command line, as fixed by the cluster contract with `weftctl lab`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use weft_store::StoreConfig;

/// File name of the policy claim socket in the run dir.
pub const POLICY_SOCKET: &str = "policy.sock";

/// Which datastore to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// File-backed store in a directory shared by the agents of one host.
    Embedded,
    /// etcd v3.
    Etcd,
    /// The Kubernetes API: Nodes (podCIDRs, InternalIP, weft's annotations), Pods,
    /// Namespaces and NetworkPolicies.
    Kubernetes,
}

/// weftd: the weft node agent. Programs the network namespace it runs in.
#[derive(Debug, Clone, Parser)]
#[command(name = "weftd", version, about)]
pub struct Args {
    /// This node's name (unique in the cluster).
    #[arg(long)]
    pub node_name: String,
    /// Datastore kind.
    #[arg(long, value_enum)]
    pub store: StoreKind,
    /// Directory of the embedded store.
    #[arg(long, required_if_eq("store", "embedded"))]
    pub store_path: Option<PathBuf>,
    /// etcd client URLs, comma separated.
    #[arg(long, value_delimiter = ',', required_if_eq("store", "etcd"))]
    pub etcd_endpoints: Vec<String>,
    /// etcd key prefix (default: the store's, `/weft/v1`).
    #[arg(long)]
    pub etcd_prefix: Option<String>,
    /// With `--store kubernetes`: a kubeconfig file. Default: the in-cluster service
    /// account when running in a pod, else `$KUBECONFIG` / `~/.kube/config`.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// JSON file with the cluster config (clusterCidrs, nodePrefixV4/V6, backend, mtu).
    #[arg(long)]
    pub cluster_config: PathBuf,
    /// Underlay interface; its first global address (IPv4 preferred) is the node's.
    #[arg(long)]
    pub underlay_iface: String,
    /// Where node.json and status.json go.
    #[arg(long, default_value = "/run/weft")]
    pub run_dir: PathBuf,
    /// Where the CNI conflist goes.
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// IPAM data dir written into the conflist.
    #[arg(long, default_value = "/var/lib/cni/networks")]
    pub ipam_data_dir: PathBuf,
    /// Full resync period in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_seconds: u64,
    /// TTL of the node's datastore lease in seconds (renewed every third of it).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_ttl_seconds: u64,
    /// Enforce Kubernetes NetworkPolicy (table `inet weft_policy`, claim socket
    /// `<run-dir>/policy.sock`). `false` removes the table and writes no `policySocket`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub network_policy: bool,
    /// Address of `/healthz`, `/readyz` and `/metrics` (Prometheus), or `none`. Loopback
    /// by default: the DaemonSet's probes name 127.0.0.1, and nothing else needs it.
    #[arg(long, default_value = "127.0.0.1:9962", value_parser = parse_metrics_address)]
    pub metrics_address: MetricsAddress,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    pub log_level: tracing::Level,
}

/// Where the observability endpoints listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAddress {
    /// Not served.
    Off,
    /// Served on this address.
    At(std::net::SocketAddr),
}

fn parse_metrics_address(text: &str) -> Result<MetricsAddress, String> {
    if text == "none" {
        return Ok(MetricsAddress::Off);
    }
    text.parse()
        .map(MetricsAddress::At)
        .map_err(|e| format!("{text:?}: {e} (want IP:PORT or none)"))
}

impl Args {
    /// The datastore to open.
    /// `None` for Kubernetes, which `weft_kube::open` handles.
    pub fn store_config(&self) -> Option<StoreConfig> {
        match self.store {
            StoreKind::Embedded => Some(StoreConfig::Embedded {
                dir: self.store_path.clone().unwrap_or_default(),
            }),
            StoreKind::Etcd => Some(StoreConfig::Etcd {
                endpoints: self.etcd_endpoints.clone(),
                prefix: self.etcd_prefix.clone(),
            }),
            StoreKind::Kubernetes => None,
        }
    }

    /// Resync period.
    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds)
    }

    /// Lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_seconds)
    }

    /// The policy claim socket.
    pub fn policy_socket(&self) -> PathBuf {
        self.run_dir.join(POLICY_SOCKET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_example() {
        let a = Args::try_parse_from([
            "weftd",
            "--node-name",
            "n1",
            "--store",
            "etcd",
            "--etcd-endpoints",
            "http://198.18.0.1:2379,http://198.18.0.2:2379",
            "--cluster-config",
            "/c.json",
            "--underlay-iface",
            "eth0",
        ])
        .unwrap();
        assert_eq!(a.etcd_endpoints.len(), 2);
        assert_eq!(a.run_dir, PathBuf::from("/run/weft"));
        assert_eq!(a.resync(), Duration::from_secs(10));
        assert!(matches!(a.store_config(), Some(StoreConfig::Etcd { .. })));
        assert!(a.network_policy);
        assert_eq!(
            a.metrics_address,
            MetricsAddress::At("127.0.0.1:9962".parse().unwrap())
        );
        assert_eq!(parse_metrics_address("none"), Ok(MetricsAddress::Off));
        assert!(parse_metrics_address("localhost").is_err());
        assert_eq!(a.policy_socket(), PathBuf::from("/run/weft/policy.sock"));
        let off = Args::try_parse_from([
            "weftd",
            "--node-name",
            "n1",
            "--store",
            "embedded",
            "--store-path",
            "/s",
            "--cluster-config",
            "/c.json",
            "--underlay-iface",
            "eth0",
            "--network-policy",
            "false",
        ])
        .unwrap();
        assert!(!off.network_policy);
        let missing_path = Args::try_parse_from([
            "weftd",
            "--node-name",
            "n1",
            "--cluster-config",
            "/c.json",
            "--underlay-iface",
            "eth0",
        ]);
        assert!(missing_path.is_err());
        let kube = Args::try_parse_from([
            "weftd",
            "--node-name",
            "n1",
            "--store",
            "kubernetes",
            "--cluster-config",
            "/c.json",
            "--underlay-iface",
            "eth0",
        ])
        .unwrap();
        assert!(kube.store_config().is_none());
    }
}
