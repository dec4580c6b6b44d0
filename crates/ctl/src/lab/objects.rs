//! `lab apply -f` and `lab delete -f`.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::agents::{POLICY_SYNC_TIMEOUT, wait_policy_revision};
use super::cmd::new_pod;
use super::manifest::{
    Context as ManifestContext, Manifest, NamespaceObject, PodObject, parse_manifest,
};
use super::placement::place;
use super::pods::{create_pod, delete_pod, pod_object};
use super::state::{LabPaths, LabState, NamespaceState, PodState};
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

/// What `apply` does with the pods of a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodPlan {
    /// Pods to create: the record (no IPs yet, node chosen) and the manifest object.
    pub create: Vec<(PodState, PodObject)>,
    /// Existing pods whose labels change: the updated record and the manifest object.
    pub relabel: Vec<(PodState, PodObject)>,
    /// Existing pods left as they are (`namespace/name`).
    pub unchanged: Vec<String>,
}

/// Sorts the file's pods into new, relabelled and unchanged ones, placing the new ones.
pub fn plan_pods(paths: &LabPaths, state: &LabState, manifest: &Manifest) -> PodPlan {
    let mut plan = PodPlan::default();
    let mut new_objects = Vec::new();
    for object in &manifest.pods {
        match state.pod(&object.namespace, &object.name) {
            Some(existing) if existing.labels != object.labels => {
                let mut record = existing.clone();
                record.labels = object.labels.clone();
                plan.relabel.push((record, object.clone()));
            }
            Some(existing) => plan.unchanged.push(existing.key()),
            None => new_objects.push(object),
        }
    }
    let nodes: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    let existing: Vec<String> = state.pods.iter().map(|p| p.node.clone()).collect();
    let requests: Vec<Option<String>> = new_objects.iter().map(|p| p.node_name.clone()).collect();
    for (object, node) in new_objects
        .into_iter()
        .zip(place(&nodes, &existing, &requests))
    {
        let mut record = new_pod(
            paths,
            &object.namespace,
            &object.name,
            &node,
            object.ports.clone(),
        );
        record.labels = object.labels.clone();
        plan.create.push((record, object.clone()));
    }
    plan
}

fn pod_put(state: &LabState, record: &PodState, object: &PodObject) -> StoreOp {
    let host_ip = state.node(&record.node).map(|n| n.underlay_ip.into());
    StoreOp::Put {
        kind: "pods",
        key: record.key(),
        value: pod_object(record, Some(&object.raw), host_ip),
    }
}

fn namespace_put(ns: &NamespaceObject) -> StoreOp {
    StoreOp::Put {
        kind: "namespaces",
        key: ns.name.clone(),
        value: serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns.name, "labels": ns.labels}}),
    }
}

fn op_key(op: &StoreOp) -> (&'static str, String) {
    match op {
        StoreOp::Put { kind, key, .. } | StoreOp::Delete { kind, key } => (kind, key.clone()),
    }
}

/// Waits for every node's weftd to enforce `revision` and says so.
fn wait_enforced(paths: &LabPaths, state: &LabState, revision: Option<i64>) -> Result<()> {
    let Some(revision) = revision else {
        return Ok(());
    };
    let nodes = wait_policy_revision(paths, &state.nodes, revision, POLICY_SYNC_TIMEOUT)?;
    if nodes > 0 {
        println!("store revision {revision} enforced by weftd on {nodes} node(s)");
    }
    Ok(())
}

/// `lab apply -f FILE`, in the order the policy contract asks for:
/// 1. validate everything (nothing happens on any error);
/// 2. one store pass: namespaces, policies, relabelled pods, and each new pod's object
///    without IPs (the API server has it before the kubelet creates the sandbox);
/// 3. when pods are to be created, wait until every weftd enforces that pass;
/// 4. per new pod: CNI ADD (the plugin's claim), responder, object again with its IPs;
/// 5. wait until every weftd enforces the last revision written.
///
/// A pod that fails to come up undoes the pods this call made and restores every store
/// object it wrote.
pub fn apply(paths: &LabPaths, file: &Path, weftctl: &Path) -> Result<()> {
    let mut state = LabState::load(paths)?;
    let manifest = load_manifest(&state, file, false)?;
    let plan = plan_pods(paths, &state, &manifest);
    let mut ops: Vec<StoreOp> = manifest.namespaces.iter().map(namespace_put).collect();
    ops.extend(manifest.policies.iter().map(|p| StoreOp::Put {
        kind: "networkpolicies",
        key: p.key.clone(),
        value: p.raw.clone(),
    }));
    for (record, object) in plan.relabel.iter().chain(&plan.create) {
        ops.push(pod_put(&state, record, object));
    }
    let restore = store::snapshot(paths, state.store, ops.iter().map(op_key).collect())?;
    let mut revision = store::apply(paths, state.store, ops)?;
    let wired = if plan.create.is_empty() {
        Ok(Vec::new())
    } else {
        wait_enforced(paths, &state, revision)
            .and_then(|()| wire_pods(paths, &state, &plan.create, weftctl, &mut revision))
    };
    let created = match wired {
        Ok(created) => created,
        Err(e) => {
            if let Err(undo) = store::apply(paths, state.store, restore) {
                eprintln!("warning: restoring the store objects failed: {undo:#}");
            }
            return Err(e.context("nothing was applied"));
        }
    };
    for ns in &manifest.namespaces {
        state.namespaces.retain(|n| n.name != ns.name);
        state.namespaces.push(NamespaceState {
            name: ns.name.clone(),
            labels: ns.labels.clone(),
        });
        println!("namespace/{} configured", ns.name);
    }
    for (record, _) in &plan.relabel {
        if let Some(pod) = state.pods.iter_mut().find(|p| p.key() == record.key()) {
            pod.labels.clone_from(&record.labels);
        }
        println!("pod/{} labels updated", record.key());
    }
    for key in &plan.unchanged {
        println!("pod/{key} unchanged");
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
        if !state.policies.contains(&policy.key) {
            state.policies.push(policy.key.clone());
        }
        println!("networkpolicy/{} configured", policy.key);
    }
    state.pods.extend(created);
    state.save(paths)?;
    wait_enforced(paths, &state, revision)
}

/// Wires each pod (CNI ADD + responder) and stores its object with IPs; on the first
/// failure undoes the pods wired so far.
fn wire_pods(
    paths: &LabPaths,
    state: &LabState,
    pods: &[(PodState, PodObject)],
    weftctl: &Path,
    revision: &mut Option<i64>,
) -> Result<Vec<PodState>> {
    let mut created: Vec<PodState> = Vec::new();
    for (record, object) in pods {
        let result = create_pod(paths, state, record.clone(), weftctl).and_then(|pod| {
            let written = store::apply(paths, state.store, vec![pod_put(state, &pod, object)]);
            match written {
                Ok(rev) => Ok((pod, rev)),
                Err(e) => {
                    delete_pod(paths, state, &pod);
                    Err(e)
                }
            }
        });
        match result {
            Ok((pod, rev)) => {
                *revision = rev.max(*revision);
                created.push(pod);
            }
            Err(e) => {
                for pod in &created {
                    delete_pod(paths, state, pod);
                }
                return Err(e.context(format!(
                    "pod {}/{} could not be created",
                    object.namespace, object.name
                )));
            }
        }
    }
    Ok(created)
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
    let revision = store::apply(paths, state.store, ops)?;
    wait_enforced(paths, &state, revision)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::lab::state::{BackendKind, NodeState, StoreKind};

    fn state(paths: &LabPaths) -> LabState {
        let node = |name: &str| NodeState {
            name: name.into(),
            netns: paths.node_netns(name),
            underlay_ip: Ipv4Addr::new(198, 18, 0, 11),
            weftd_pid: None,
            responder_pid: None,
        };
        let mut web = new_pod(paths, "shop", "web", "node1", Vec::new());
        web.labels = [("app".to_string(), "web".to_string())].into();
        web.ips = vec!["10.244.0.2".parse().unwrap()];
        let mut db = web.clone();
        db.name = "db".into();
        LabState {
            prefix: paths.prefix.clone(),
            backend: BackendKind::Vxlan,
            store: StoreKind::Embedded,
            ipv6: false,
            cni_bin_dir: "/bin".into(),
            etcd_pid: None,
            nodes: vec![node("node1"), node("node2")],
            namespaces: vec![NamespaceState {
                name: "shop".into(),
                labels: Default::default(),
            }],
            pods: vec![web, db],
            policies: Vec::new(),
        }
    }

    #[test]
    fn plan_sorts_pods_into_new_relabelled_and_unchanged() {
        let paths = LabPaths::new("/x", "wl");
        let state = state(&paths);
        let text = "kind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web, tier: front}}\n---\nkind: Pod\nmetadata: {name: db, namespace: shop, labels: {app: web}}\n---\nkind: Pod\nmetadata: {name: new, namespace: shop}\n";
        let ctx = ManifestContext {
            nodes: vec!["node1".into(), "node2".into()],
            namespaces: vec!["shop".into()],
            check_references: true,
        };
        let manifest = parse_manifest(text, &ctx).unwrap();
        let plan = plan_pods(&paths, &state, &manifest);
        assert_eq!(plan.relabel.len(), 1);
        assert_eq!(plan.relabel[0].0.key(), "shop/web");
        assert_eq!(plan.relabel[0].0.labels["tier"], "front");
        assert_eq!(
            plan.relabel[0].0.ips, state.pods[0].ips,
            "relabel keeps the IPs"
        );
        assert_eq!(plan.unchanged, ["shop/db"]);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].0.node, "node2", "spread to the emptier node");
        assert!(plan.create[0].0.ips.is_empty());
        // The object written before CNI ADD has no IPs yet.
        let StoreOp::Put { value, .. } = pod_put(&state, &plan.create[0].0, &plan.create[0].1)
        else {
            panic!("not a put")
        };
        assert_eq!(value["status"]["phase"], "Pending");
        assert_eq!(value["spec"]["nodeName"], "node2");
    }
}
