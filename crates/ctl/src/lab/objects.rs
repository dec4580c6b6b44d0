//! `lab apply -f` and `lab delete -f`.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::cmd::new_pod;
use super::manifest::{Context as ManifestContext, Manifest, parse_manifest};
use super::placement::place;
use super::pods::{create_pod, delete_pod, pod_object};
use super::state::{LabPaths, LabState, NamespaceState};
use super::store::{self, StoreOp};

fn load_manifest(state: &LabState, file: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let ctx = ManifestContext {
        nodes: state.nodes.iter().map(|n| n.name.clone()).collect(),
        namespaces: state.namespaces.iter().map(|n| n.name.clone()).collect(),
    };
    parse_manifest(&text, &ctx).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow::anyhow!(
            "{} is invalid; nothing was applied:\n{}",
            file.display(),
            lines.join("\n")
        )
    })
}

/// `lab apply -f FILE`: validates everything, then creates namespaces, pods (wired by the
/// node's plugin, with a responder) and stores policies. Pods that exist are left alone.
pub fn apply(paths: &LabPaths, file: &Path, weftctl: &Path) -> Result<()> {
    let mut state = LabState::load(paths)?;
    let manifest = load_manifest(&state, file)?;
    let mut ops = Vec::new();
    for ns in &manifest.namespaces {
        let record = NamespaceState {
            name: ns.name.clone(),
            labels: ns.labels.clone(),
        };
        state.namespaces.retain(|n| n.name != ns.name);
        state.namespaces.push(record);
        ops.push(StoreOp::Put {
            kind: "namespaces",
            key: ns.name.clone(),
            value: serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns.name, "labels": ns.labels}}),
        });
        println!("namespace/{} configured", ns.name);
    }
    state.save(paths)?;
    store::apply(paths, state.store, std::mem::take(&mut ops))?;

    let new_pods: Vec<_> = manifest
        .pods
        .iter()
        .filter(|p| state.pod(&p.namespace, &p.name).is_none())
        .collect();
    let nodes: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    let existing: Vec<String> = state.pods.iter().map(|p| p.node.clone()).collect();
    let requests: Vec<Option<String>> = new_pods.iter().map(|p| p.node_name.clone()).collect();
    let placed = place(&nodes, &existing, &requests);
    for pod in &manifest.pods {
        if state.pod(&pod.namespace, &pod.name).is_some() {
            println!("pod/{}/{} unchanged", pod.namespace, pod.name);
        }
    }
    for (object, node) in new_pods.iter().zip(placed) {
        let mut record = new_pod(
            paths,
            &object.namespace,
            &object.name,
            &node,
            object.ports.clone(),
        );
        record.labels = object.labels.clone();
        let record = create_pod(paths, &state, record, weftctl)?;
        let host_ip = state.node(&node).map(|n| n.underlay_ip.into());
        let value = pod_object(&record, Some(&object.raw), host_ip);
        let ips: Vec<String> = record.ips.iter().map(ToString::to_string).collect();
        println!(
            "pod/{} created on {node} ({})",
            record.key(),
            ips.join(", ")
        );
        state.pods.push(record.clone());
        state.save(paths)?;
        store::apply(
            paths,
            state.store,
            vec![StoreOp::Put {
                kind: "pods",
                key: record.key(),
                value,
            }],
        )?;
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
        println!(
            "networkpolicy/{} stored (enforcement is up to weftd)",
            policy.key
        );
    }
    state.save(paths)?;
    store::apply(paths, state.store, ops)
}

/// `lab delete -f FILE`: removes the pods, policies and namespaces the file names (a
/// namespace takes its pods with it).
pub fn delete(paths: &LabPaths, file: &Path) -> Result<()> {
    let mut state = LabState::load(paths)?;
    let manifest = load_manifest(&state, file)?;
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
