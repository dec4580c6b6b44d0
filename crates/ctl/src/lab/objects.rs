//! `lab apply -f` and `lab delete -f`.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::cmd::new_pod;
use super::manifest::{Context as ManifestContext, Manifest, parse_manifest};
use super::placement::place;
use super::pods::{create_pod, delete_pod, pod_object};
use super::state::{LabPaths, LabState, NamespaceState};
use super::store::{self, StoreOp};

/// Reads and validates a file. For `delete` (`for_delete`), references to namespaces and
/// nodes that no longer exist do not matter.
fn load_manifest(state: &LabState, file: &Path, for_delete: bool) -> Result<Manifest> {
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let ctx = ManifestContext {
        nodes: state.nodes.iter().map(|n| n.name.clone()).collect(),
        namespaces: state.namespaces.iter().map(|n| n.name.clone()).collect(),
        check_references: !for_delete,
    };
    let parsed = parse_manifest(&text, &ctx);
    parsed.map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow::anyhow!(
            "{} is invalid; nothing was applied:\n{}",
            file.display(),
            lines.join("\n")
        )
    })
}

/// `lab apply -f FILE`: validates everything, then wires the new pods (node's plugin plus a
/// responder); only when every pod is up are namespaces, pods and policies recorded and
/// stored. A pod that fails to come up rolls back the pods this call made. Pods that exist
/// already are left alone.
pub fn apply(paths: &LabPaths, file: &Path, weftctl: &Path) -> Result<()> {
    let mut state = LabState::load(paths)?;
    let manifest = load_manifest(&state, file, false)?;
    let mut ops = Vec::new();
    for ns in &manifest.namespaces {
        state.namespaces.retain(|n| n.name != ns.name);
        state.namespaces.push(NamespaceState {
            name: ns.name.clone(),
            labels: ns.labels.clone(),
        });
        ops.push(StoreOp::Put {
            kind: "namespaces",
            key: ns.name.clone(),
            value: serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns.name, "labels": ns.labels}}),
        });
    }
    for pod in &manifest.pods {
        if state.pod(&pod.namespace, &pod.name).is_some() {
            println!("pod/{}/{} unchanged", pod.namespace, pod.name);
        }
    }
    let new_pods: Vec<_> = manifest
        .pods
        .iter()
        .filter(|p| state.pod(&p.namespace, &p.name).is_none())
        .collect();
    let nodes: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    let existing: Vec<String> = state.pods.iter().map(|p| p.node.clone()).collect();
    let requests: Vec<Option<String>> = new_pods.iter().map(|p| p.node_name.clone()).collect();
    let placed = place(&nodes, &existing, &requests);
    let mut created = Vec::new();
    for (object, node) in new_pods.iter().zip(placed) {
        let mut record = new_pod(
            paths,
            &object.namespace,
            &object.name,
            &node,
            object.ports.clone(),
        );
        record.labels = object.labels.clone();
        match create_pod(paths, &state, record, weftctl) {
            Ok(record) => {
                let host_ip = state.node(&node).map(|n| n.underlay_ip.into());
                ops.push(StoreOp::Put {
                    kind: "pods",
                    key: record.key(),
                    value: pod_object(&record, Some(&object.raw), host_ip),
                });
                created.push(record);
            }
            Err(e) => {
                for pod in &created {
                    delete_pod(paths, &state, pod);
                }
                return Err(e.context(format!(
                    "pod {}/{} could not be created; nothing was applied",
                    object.namespace, object.name
                )));
            }
        }
    }
    for policy in &manifest.policies {
        if !state.policies.contains(&policy.key) {
            state.policies.push(policy.key.clone());
        }
        ops.push(StoreOp::Put {
            kind: "networkpolicies",
            key: policy.key.clone(),
            value: policy.raw.clone(),
        });
    }
    for ns in &manifest.namespaces {
        println!("namespace/{} configured", ns.name);
    }
    for pod in &created {
        let ips: Vec<String> = pod.ips.iter().map(ToString::to_string).collect();
        println!(
            "pod/{} created on {} ({})",
            pod.key(),
            pod.node,
            ips.join(", ")
        );
    }
    for policy in &manifest.policies {
        println!(
            "networkpolicy/{} stored (enforcement is up to weftd)",
            policy.key
        );
    }
    state.pods.extend(created);
    state.save(paths)?;
    store::apply(paths, state.store, ops)
}

/// `lab delete -f FILE`: removes the pods, policies and namespaces the file names (a
/// namespace takes its pods with it).
pub fn delete(paths: &LabPaths, file: &Path) -> Result<()> {
    let mut state = LabState::load(paths)?;
    let manifest = load_manifest(&state, file, true)?;
    let mut ops = Vec::new();
    let doomed_ns: Vec<String> = manifest.namespaces.iter().map(|n| n.name.clone()).collect();
    if doomed_ns.iter().any(|n| n == "default") {
        bail!("the default namespace cannot be deleted");
    }
    let doomed: Vec<_> = state
        .pods
        .iter()
        .filter(|p| {
            doomed_ns.contains(&p.namespace)
                || manifest
                    .pods
                    .iter()
                    .any(|m| m.namespace == p.namespace && m.name == p.name)
        })
        .cloned()
        .collect();
    for pod in &doomed {
        delete_pod(paths, &state, pod);
        state.pods.retain(|p| p.key() != pod.key());
        state.save(paths)?;
        ops.push(StoreOp::Delete {
            kind: "pods",
            key: pod.key(),
        });
        println!("pod/{} deleted", pod.key());
    }
    for policy in &manifest.policies {
        state.policies.retain(|k| k != &policy.key);
        ops.push(StoreOp::Delete {
            kind: "networkpolicies",
            key: policy.key.clone(),
        });
        println!("networkpolicy/{} deleted", policy.key);
    }
    for ns in &doomed_ns {
        state.namespaces.retain(|n| &n.name != ns);
        let prefix = format!("{ns}/");
        for key in state.policies.iter().filter(|k| k.starts_with(&prefix)) {
            ops.push(StoreOp::Delete {
                kind: "networkpolicies",
                key: key.clone(),
            });
        }
        state.policies.retain(|k| !k.starts_with(&prefix));
        ops.push(StoreOp::Delete {
            kind: "namespaces",
            key: ns.clone(),
        });
        println!("namespace/{ns} deleted");
    }
    state.save(paths)?;
    store::apply(paths, state.store, ops)
}
