//! Pods: a network namespace per pod, wired by the node's `weft` plugin exactly as a
//! container runtime does (exec inside the node namespace, conflist on stdin), plus a
//! responder process on the declared ports.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use weft_datapath::{Netlink, NetnsFd, create_named_netns, delete_named_netns, named_netns_path};
use weft_runtime::{Attachment, Runtime, load_conflist};

use super::agents::NodeDirs;
use super::fabric::set_lo_up;
use super::procs::{is_alive, log_tail, spawn_in_netns, stop_all};
use super::responder::{bound_ports, format_ports};
use super::state::{LabPaths, LabState, PodState, PortSpec, Proto};

/// Interface name of a pod's network attachment.
pub const POD_IFNAME: &str = "eth0";

/// What to create.
#[derive(Debug, Clone)]
pub struct PodRequest {
    /// The pod as it will be recorded (ips and responder pid filled in by [`create_pod`]).
    pub pod: PodState,
}

/// The runtime that drives a node's plugins.
pub fn node_runtime(paths: &LabPaths, state: &LabState, node_netns: &str, node: &str) -> Runtime {
    Runtime {
        cni_path: vec![state.cni_bin_dir.clone()],
        node_netns: Some(named_netns_path(node_netns)),
        cache_dir: NodeDirs::of(paths, node).cache,
    }
}

/// The CNI attachment of a pod, with the `K8S_POD_*` args a CRI runtime passes.
pub fn attachment(pod: &PodState) -> Attachment {
    let netns = named_netns_path(&pod.netns).to_string_lossy().into_owned();
    let mut att = Attachment::kubernetes(&pod.container_id, &netns, POD_IFNAME, &pod.name);
    for (k, v) in &mut att.cni_args {
        if k == "K8S_POD_NAMESPACE" {
            v.clone_from(&pod.namespace);
        }
    }
    att
}

/// Creates the pod namespace, runs CNI ADD and starts the responder; returns the pod with
/// its IPs and responder pid. On failure everything made here is undone.
pub fn create_pod(
    paths: &LabPaths,
    state: &LabState,
    mut pod: PodState,
    weftctl: &Path,
) -> Result<PodState> {
    let node = state
        .node(&pod.node)
        .with_context(|| format!("no node {}", pod.node))?
        .clone();
    let ns_path =
        create_named_netns(&pod.netns).with_context(|| format!("create {}", pod.netns))?;
    let wired = (|| -> Result<PodState> {
        let ns = NetnsFd::open(&ns_path)?;
        set_lo_up(&mut Netlink::open_in(&ns)?)?;
        let list = load_conflist(&NodeDirs::of(paths, &node.name).conflist())?;
        let runtime = node_runtime(paths, state, &node.netns, &node.name);
        let result = runtime
            .add(&list, &attachment(&pod))
            .with_context(|| format!("CNI ADD for {}", pod.key()))?;
        pod.ips = result_ips(&result);
        if !pod.ports.is_empty() {
            let log = paths
                .pods_dir()
                .join(format!("{}_{}.log", pod.namespace, pod.name));
            let args = vec![
                "lab".into(),
                "responder".into(),
                "--ports".into(),
                format_ports(&pod.ports),
            ];
            let pid = spawn_in_netns(&ns_path, weftctl, &args, &log)?;
            pod.responder_pid = Some(pid);
            wait_serving(pid, &pod.ports, &log)?;
        }
        Ok(pod.clone())
    })();
    if wired.is_err() {
        delete_pod(paths, state, &pod);
    }
    wired
}

/// How long a responder gets to bind its ports.
const SERVING_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until the responder `pid` has bound every port of `ports` (read from its
/// namespace's `/proc/<pid>/net` tables), so that `apply` returns with pods that answer.
fn wait_serving(pid: u32, ports: &[PortSpec], log: &Path) -> Result<()> {
    let deadline = Instant::now() + SERVING_TIMEOUT;
    loop {
        let bound = |proto: Proto, tables: [&str; 2]| -> Vec<u16> {
            tables
                .iter()
                .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
                .flat_map(|text| bound_ports(&text, proto))
                .collect()
        };
        let (tcp, udp) = (
            bound(Proto::Tcp, ["tcp", "tcp6"]),
            bound(Proto::Udp, ["udp", "udp6"]),
        );
        let missing: Vec<String> = ports
            .iter()
            .filter(|p| {
                let list = if p.protocol == Proto::Tcp { &tcp } else { &udp };
                !list.contains(&p.port)
            })
            .map(|p| format!("{}/{}", p.port, p.protocol))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if !is_alive(pid) || Instant::now() >= deadline {
            bail!(
                "responder {pid} does not serve {}; last lines of {}:\n{}",
                missing.join(", "),
                log.display(),
                log_tail(log, 10)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops the responder, runs CNI DEL (best effort) and deletes the pod namespace.
pub fn delete_pod(paths: &LabPaths, state: &LabState, pod: &PodState) {
    if let Some(pid) = pod.responder_pid {
        stop_all(&[pid], Duration::from_secs(2));
    }
    if let Some(node) = state.node(&pod.node) {
        let conflist = NodeDirs::of(paths, &node.name).conflist();
        if let Ok(list) = load_conflist(&conflist) {
            let runtime = node_runtime(paths, state, &node.netns, &node.name);
            if let Err(e) = runtime.del(&list, &attachment(pod)) {
                eprintln!("warning: CNI DEL for {}: {e}", pod.key());
            }
        }
    }
    let _ = delete_named_netns(&pod.netns);
}

/// Addresses from a CNI result's `ips[].address` (`10.244.1.2/24`).
pub fn result_ips(result: &Value) -> Vec<IpAddr> {
    result
        .get("ips")
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip.get("address")?.as_str()?.split('/').next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The Kubernetes Pod object stored for weftd: the manifest as written (or a synthesised
/// one) with `spec.nodeName`, the record's labels, and `status.podIPs` once it has IPs.
pub fn pod_object(pod: &PodState, raw: Option<&Value>, host_ip: Option<IpAddr>) -> Value {
    let mut object = raw.cloned().unwrap_or_else(|| {
        let ports: Vec<Value> = pod
            .ports
            .iter()
            .map(|p| json!({"containerPort": p.port, "protocol": p.protocol, "name": p.name}))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod.name, "labels": pod.labels},
            "spec": {"containers": [{"name": "responder", "ports": ports}]},
        })
    });
    if let Some(map) = object.as_object_mut() {
        let meta = map.entry("metadata").or_insert_with(|| json!({}));
        meta["namespace"] = json!(pod.namespace);
        meta["labels"] = json!(pod.labels);
        let spec = map.entry("spec").or_insert_with(|| json!({}));
        spec["nodeName"] = json!(pod.node);
        // Before CNI ADD the API server has no IPs for the pod yet (phase Pending).
        let status = if pod.ips.is_empty() {
            json!({"phase": "Pending", "hostIP": host_ip})
        } else {
            let pod_ips: Vec<Value> = pod.ips.iter().map(|ip| json!({"ip": ip})).collect();
            json!({"phase": "Running", "podIP": pod.ips.first(), "podIPs": pod_ips, "hostIP": host_ip})
        };
        map.insert("status".into(), status);
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodState {
        PodState {
            namespace: "shop".into(),
            name: "web".into(),
            node: "node1".into(),
            netns: "wl-pod-shop-web".into(),
            container_id: "cid".into(),
            ips: vec!["10.244.1.2".parse().unwrap()],
            labels: [("app".to_string(), "web".to_string())].into(),
            ports: vec![PortSpec {
                port: 80,
                protocol: Proto::Tcp,
                name: None,
            }],
            responder_pid: None,
        }
    }

    #[test]
    fn reads_ips_from_cni_result() {
        let r = json!({"ips": [{"address": "10.244.1.2/24"}, {"address": "fd00:10:244::2/64"}]});
        assert_eq!(result_ips(&r).len(), 2);
        assert!(result_ips(&json!({})).is_empty());
    }

    #[test]
    fn pod_object_has_status_and_node() {
        let o = pod_object(&pod(), None, Some("198.18.0.11".parse().unwrap()));
        assert_eq!(o["metadata"]["namespace"], "shop");
        assert_eq!(o["spec"]["nodeName"], "node1");
        assert_eq!(o["status"]["podIPs"][0]["ip"], "10.244.1.2");
        assert_eq!(o["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        let mut pending = pod();
        pending.ips.clear();
        let o = pod_object(&pending, None, None);
        assert_eq!(o["status"]["phase"], "Pending");
        assert!(o["status"].get("podIPs").is_none(), "{o}");
        assert_eq!(o["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn attachment_carries_pod_namespace() {
        let att = attachment(&pod());
        assert!(
            att.cni_args
                .contains(&("K8S_POD_NAMESPACE".into(), "shop".into()))
        );
        assert_eq!(att.ifname, "eth0");
    }
}
