//! `weftctl status`: this node as weftd sees it, from the files it writes in its run dir
//! (`status.json`, `node.json`), the IPAM store (pod count) and its health endpoint.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;
use weft_cluster::NodeLocalConfig;
use weft_ipam::Store;

use super::ipam::{attachment_count, network_ipam};
use super::ipam_cmd::WEFT_CONFLIST;
use super::table::{age, key_values};
use super::{OutputArgs, OutputFormat, print_json};

/// status.json older than this means weftd stopped rewriting it (it does every resync).
const STALE_AFTER_SECONDS: u64 = 60;

/// `weftctl status` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// weftd's run dir (status.json, node.json).
    #[arg(long, default_value = "/run/weft")]
    pub run_dir: PathBuf,
    /// CNI config dir (the conflist names the IPAM store, for the pod count).
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// weftd's health endpoint (`--metrics-address`); `none` to skip the probe.
    #[arg(long, default_value = "127.0.0.1:9962")]
    pub metrics_address: String,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// What the health endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Endpoint {
    /// Not asked.
    Skipped,
    /// `/readyz` answered 200.
    Ready,
    /// `/readyz` answered this status.
    NotReady(u16),
    /// No answer.
    Unreachable(String),
}

/// The agent's health, all signals combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// status.json says healthy and is fresh.
    Healthy,
    /// status.json says unhealthy.
    Unhealthy,
    /// status.json has not been rewritten for a while: weftd is stuck or gone.
    Stale,
    /// No status.json: weftd never ran here (or another run dir).
    Missing,
}

/// The answer of `weftctl status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Node name.
    pub node: Option<String>,
    /// Combined health.
    pub health: Health,
    /// Health endpoint answer.
    pub endpoint: Endpoint,
    /// weftd's pid.
    pub pid: Option<u64>,
    /// Seconds since the last reconcile.
    pub reconciled_seconds_ago: Option<u64>,
    /// Pod subnets.
    pub subnets: Vec<String>,
    /// Backend object as weftd wrote it.
    pub backend: Option<Value>,
    /// Underlay address.
    pub underlay_ip: Option<String>,
    /// Pod MTU.
    pub mtu: Option<u32>,
    /// Peers with routes.
    pub peers: Option<u64>,
    /// Pods with addresses on this node (IPAM attachments).
    pub pods: Option<usize>,
    /// The policy section of status.json.
    pub policy: Option<Value>,
    /// What weftd reports as wrong.
    pub error: Option<String>,
}

impl NodeStatus {
    /// Combines the files (either may be missing) and the probes.
    pub fn from_parts(
        status: Option<&Value>,
        local: Option<&NodeLocalConfig>,
        pods: Option<usize>,
        endpoint: Endpoint,
        now_unix: u64,
    ) -> NodeStatus {
        let field = |name: &str| status.and_then(|s| s.get(name));
        let last = field("lastReconcile").and_then(Value::as_u64);
        let ago = last.map(|t| now_unix.saturating_sub(t));
        let health = match (status, field("healthy").and_then(Value::as_bool)) {
            (None, _) => Health::Missing,
            _ if ago.is_none_or(|a| a > STALE_AFTER_SECONDS) => Health::Stale,
            (_, Some(true)) => Health::Healthy,
            _ => Health::Unhealthy,
        };
        let subnets = match local {
            Some(l) => l.subnets.iter().map(ToString::to_string).collect(),
            None => field("subnets")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        };
        NodeStatus {
            node: field("node")
                .and_then(Value::as_str)
                .map(String::from)
                .or_else(|| local.map(|l| l.node.clone())),
            health,
            endpoint,
            pid: field("pid").and_then(Value::as_u64),
            reconciled_seconds_ago: ago,
            subnets,
            backend: field("backend")
                .cloned()
                .or_else(|| local.and_then(|l| serde_json::to_value(l.backend).ok())),
            underlay_ip: field("underlayIp")
                .and_then(Value::as_str)
                .map(String::from),
            mtu: local.map(|l| l.mtu),
            peers: field("peers").and_then(Value::as_u64),
            pods,
            policy: field("policy").cloned(),
            error: field("error").and_then(Value::as_str).map(String::from),
        }
    }

    /// Healthy and, when asked, ready.
    pub fn ok(&self) -> bool {
        self.health == Health::Healthy
            && matches!(self.endpoint, Endpoint::Ready | Endpoint::Skipped)
    }

    /// Key/value lines for people.
    pub fn render(&self) -> String {
        let dash = || "-".to_string();
        let opt = |v: Option<String>| v.unwrap_or_else(dash);
        let mut agent = format!("{:?}", self.health).to_lowercase();
        if let Some(pid) = self.pid {
            agent.push_str(&format!(", pid {pid}"));
        }
        if let Some(ago) = self.reconciled_seconds_ago {
            agent.push_str(&format!(", reconciled {} ago", age(ago)));
        }
        let endpoint = match &self.endpoint {
            Endpoint::Skipped => "not probed".to_string(),
            Endpoint::Ready => "ready".to_string(),
            Endpoint::NotReady(code) => format!("not ready (HTTP {code})"),
            Endpoint::Unreachable(why) => format!("unreachable ({why})"),
        };
        let mut pairs = vec![
            ("node", opt(self.node.clone())),
            ("agent", agent),
            ("readyz", endpoint),
            (
                "subnets",
                if self.subnets.is_empty() {
                    dash()
                } else {
                    self.subnets.join(", ")
                },
            ),
            (
                "backend",
                self.backend.as_ref().map_or_else(dash, describe_backend),
            ),
            ("underlay", opt(self.underlay_ip.clone())),
            ("mtu", opt(self.mtu.map(|m| m.to_string()))),
            ("peers", opt(self.peers.map(|p| p.to_string()))),
            ("pods", opt(self.pods.map(|p| p.to_string()))),
            (
                "policy",
                self.policy.as_ref().map_or_else(dash, describe_policy),
            ),
        ];
        if let Some(e) = &self.error {
            pairs.push(("error", e.clone()));
        }
        key_values(&pairs)
    }
}

fn describe_backend(backend: &Value) -> String {
    match backend.get("type").and_then(Value::as_str) {
        Some("vxlan") => format!(
            "vxlan (vni {}, port {})",
            backend
                .get("vni")
                .map_or_else(|| "?".into(), ToString::to_string),
            backend
                .get("port")
                .map_or_else(|| "?".into(), ToString::to_string)
        ),
        Some(other) => other.to_string(),
        None => backend.to_string(),
    }
}

fn describe_policy(policy: &Value) -> String {
    if policy.get("enabled").and_then(Value::as_bool) == Some(false) {
        return "disabled".into();
    }
    let n = |k: &str| policy.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut text = format!(
        "enabled, revision {}, {} policies, {} pods, {} rules, {} sets",
        n("revision"),
        n("policies"),
        n("pods"),
        n("rules"),
        n("sets")
    );
    if let Some(e) = policy.get("error").and_then(Value::as_str) {
        text.push_str(&format!("; error: {e}"));
    }
    text
}

/// GET /readyz with a short timeout (plain HTTP/1.0, no client library needed).
pub fn probe_readyz(address: &str) -> Endpoint {
    if address == "none" {
        return Endpoint::Skipped;
    }
    let attempt = || -> std::io::Result<u16> {
        let addr: SocketAddr = address
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
        let timeout = Duration::from_secs(2);
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(b"GET /readyz HTTP/1.0\r\nHost: weftd\r\n\r\n")?;
        let mut head = [0u8; 64];
        let n = stream.read(&mut head)?;
        let line = String::from_utf8_lossy(head.get(..n).unwrap_or_default()).to_string();
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {line:?}")))
    };
    match attempt() {
        Ok(200) => Endpoint::Ready,
        Ok(code) => Endpoint::NotReady(code),
        Err(e) => Endpoint::Unreachable(e.to_string()),
    }
}

fn read_json(path: &std::path::Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Pods with addresses in the IPAM store the conflist names (None: no conflist yet).
fn pod_count(conf_dir: &std::path::Path) -> Option<usize> {
    let net = network_ipam(&read_json(&conf_dir.join(WEFT_CONFLIST))?).ok()?;
    let dir = net.config.data_dir.join(&net.config.network);
    if !dir.is_dir() {
        return Some(0);
    }
    let mut store = weft_ipam::open_store(&net.config).ok()?;
    let holders: Vec<_> = weft_ipam::with_lock(&mut store, |s| Ok(s.reservations()?))
        .ok()?
        .into_iter()
        .map(|r| r.holder)
        .collect();
    Some(attachment_count(&holders))
}

/// Gathers everything for this node.
pub fn gather(args: &StatusArgs) -> NodeStatus {
    let status = read_json(&args.run_dir.join("status.json"));
    let local = std::fs::read_to_string(args.run_dir.join("node.json"))
        .ok()
        .and_then(|t| NodeLocalConfig::from_json(&t).ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    NodeStatus::from_parts(
        status.as_ref(),
        local.as_ref(),
        pod_count(&args.cni_conf_dir),
        probe_readyz(&args.metrics_address),
        now,
    )
}

/// Runs the command; false when the agent is not healthy and ready.
pub fn run(args: &StatusArgs) -> Result<bool> {
    let status = gather(args);
    match args.out.output {
        OutputFormat::Json => print_json(&status)?,
        OutputFormat::Table => print!("{}", status.render()),
    }
    Ok(status.ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn status_json(healthy: bool, last: u64) -> Value {
        json!({"node": "n1", "pid": 42, "healthy": healthy, "lastReconcile": last,
               "subnets": ["10.244.1.0/24"], "peers": 2, "underlayIp": "198.18.0.11",
               "backend": {"type": "vxlan", "vni": 1, "port": 4789},
               "policy": {"enabled": true, "revision": 7, "appliedAtMs": 1, "policies": 3,
                          "pods": 6, "rules": 20, "sets": 4}})
    }

    #[test]
    fn health_from_flag_and_freshness() {
        let now = 1_000_000;
        let s = |v: Option<&Value>| NodeStatus::from_parts(v, None, None, Endpoint::Skipped, now);
        assert_eq!(s(Some(&status_json(true, now - 5))).health, Health::Healthy);
        assert_eq!(
            s(Some(&status_json(false, now - 5))).health,
            Health::Unhealthy
        );
        assert_eq!(s(Some(&status_json(true, now - 600))).health, Health::Stale);
        assert_eq!(s(None).health, Health::Missing);
        let mut healthy = s(Some(&status_json(true, now - 5)));
        assert!(healthy.ok());
        healthy.endpoint = Endpoint::NotReady(503);
        assert!(!healthy.ok());
    }

    #[test]
    fn renders_every_section() {
        let now = 1_000_000;
        let local = NodeLocalConfig {
            node: "n1".into(),
            subnets: vec!["10.244.1.0/24".parse().unwrap()],
            mtu: 1450,
            backend: weft_cluster::Backend::default(),
            cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        };
        let text = NodeStatus::from_parts(
            Some(&status_json(true, now - 3)),
            Some(&local),
            Some(4),
            Endpoint::Ready,
            now,
        )
        .render();
        for want in [
            "node      n1",
            "healthy, pid 42, reconciled 3s ago",
            "readyz    ready",
            "10.244.1.0/24",
            "vxlan (vni 1, port 4789)",
            "mtu       1450",
            "peers     2",
            "pods      4",
            "revision 7, 3 policies",
        ] {
            assert!(text.contains(want), "{want:?} missing in\n{text}");
        }
        assert!(!text.contains("error"));
    }

    #[test]
    fn readyz_probe_reads_the_status_code() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            for code in ["200 OK", "503 Service Unavailable"] {
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 256];
                let _ = conn.read(&mut buf).unwrap();
                conn.write_all(format!("HTTP/1.1 {code}\r\n\r\n").as_bytes())
                    .unwrap();
            }
        });
        assert_eq!(probe_readyz(&addr), Endpoint::Ready);
        assert_eq!(probe_readyz(&addr), Endpoint::NotReady(503));
        server.join().unwrap();
        assert!(matches!(
            probe_readyz("127.0.0.1:1"),
            Endpoint::Unreachable(_)
        ));
        assert_eq!(probe_readyz("none"), Endpoint::Skipped);
    }
}
