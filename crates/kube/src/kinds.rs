//! The datastore kinds this store serves and how a Kubernetes object becomes an entry
//! (pure: JSON in, JSON out).

use kube::core::ApiResource;
use serde_json::{Map, Value};
use weft_store::StoreError;

use crate::node::record_from_node;

/// A datastore kind backed by a Kubernetes resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `nodes`: weft NodeRecords synthesized from `v1/Node`.
    Nodes,
    /// `pods`: `v1/Pod`, cut down to what NetworkPolicy needs; key `namespace/name`.
    Pods,
    /// `namespaces`: `v1/Namespace`; key `name`.
    Namespaces,
    /// `networkpolicies`: `networking.k8s.io/v1/NetworkPolicy`; key `namespace/name`.
    NetworkPolicies,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 4] = [
        Kind::Nodes,
        Kind::Pods,
        Kind::Namespaces,
        Kind::NetworkPolicies,
    ];

    /// The kind for a datastore kind name.
    pub fn from_name(kind: &str) -> Result<Kind, StoreError> {
        match kind {
            "nodes" => Ok(Kind::Nodes),
            "pods" => Ok(Kind::Pods),
            "namespaces" => Ok(Kind::Namespaces),
            "networkpolicies" => Ok(Kind::NetworkPolicies),
            other => Err(StoreError::Unsupported {
                store: "kubernetes",
                what: format!(
                    "kind {other:?} (only nodes, pods, namespaces and networkpolicies exist)"
                ),
            }),
        }
    }

    /// The datastore kind name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nodes => "nodes",
            Kind::Pods => "pods",
            Kind::Namespaces => "namespaces",
            Kind::NetworkPolicies => "networkpolicies",
        }
    }

    /// Whether objects live in namespaces (keys are then `namespace/name`).
    pub fn namespaced(self) -> bool {
        matches!(self, Kind::Pods | Kind::NetworkPolicies)
    }

    /// The API resource, spelled out so no k8s-openapi version feature is needed here.
    pub fn api_resource(self) -> ApiResource {
        let (group, version, kind, plural) = match self {
            Kind::Nodes => ("", "v1", "Node", "nodes"),
            Kind::Pods => ("", "v1", "Pod", "pods"),
            Kind::Namespaces => ("", "v1", "Namespace", "namespaces"),
            Kind::NetworkPolicies => (
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                "networkpolicies",
            ),
        };
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version,
            kind: kind.into(),
            plural: plural.into(),
        }
    }

    /// Splits a store key into (namespace, name).
    pub fn split_key(self, key: &str) -> Result<(Option<&str>, &str), StoreError> {
        let bad = || StoreError::InvalidName {
            what: "key",
            name: key.to_string(),
            reason: "expected namespace/name for namespaced kinds, name otherwise",
        };
        if self.namespaced() {
            let (ns, name) = key.split_once('/').ok_or_else(bad)?;
            if ns.is_empty() || name.is_empty() || name.contains('/') {
                return Err(bad());
            }
            Ok((Some(ns), name))
        } else if key.is_empty() || key.contains('/') {
            Err(bad())
        } else {
            Ok((None, key))
        }
    }

    /// The store key and value of an object as the API server returns it (`None` for an
    /// object without a name, or a Node without an address).
    pub fn entry_of(self, object: &Value) -> Option<(String, Value)> {
        let name = object.pointer("/metadata/name")?.as_str()?;
        let key = match self.namespaced() {
            true => {
                let ns = object.pointer("/metadata/namespace")?.as_str()?;
                format!("{ns}/{name}")
            }
            false => name.to_string(),
        };
        let mut value = match self {
            Kind::Nodes => {
                return Some((key, serde_json::to_value(record_from_node(object)?).ok()?));
            }
            Kind::Pods => slim_pod(object),
            Kind::Namespaces => pick(object, &[("metadata", &["name", "labels"])]),
            Kind::NetworkPolicies => without_bulky_metadata(object),
        };
        // List items come without apiVersion and kind, watch events with them: always
        // set them, so an object reads the same whichever way it arrived.
        if let Some(map) = value.as_object_mut() {
            let resource = self.api_resource();
            map.insert("apiVersion".into(), Value::String(resource.api_version));
            map.insert("kind".into(), Value::String(resource.kind));
        }
        Some((key, value))
    }
}

/// A store revision from a resourceVersion. Resource versions are opaque to clients, but
/// every API server in use derives them from etcd revisions; a foreign one counts as 0.
pub fn revision_of(object: &Value) -> i64 {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// Copies the listed fields of the listed sections.
fn pick(object: &Value, sections: &[(&str, &[&str])]) -> Value {
    let mut out = Map::new();
    for (section, fields) in sections {
        let Some(src) = object.get(*section).and_then(Value::as_object) else {
            continue;
        };
        let picked: Map<String, Value> = fields
            .iter()
            .filter_map(|f| Some((f.to_string(), src.get(*f)?.clone())))
            .collect();
        out.insert(section.to_string(), Value::Object(picked));
    }
    Value::Object(out)
}

/// What NetworkPolicy enforcement reads of a Pod: names, labels, node, host networking,
/// container ports and pod IPs. Cluster-wide pod watches hold every pod in memory, so the
/// rest (env, volumes, managed fields, conditions) is dropped.
fn slim_pod(object: &Value) -> Value {
    let mut pod = pick(
        object,
        &[
            ("metadata", &["name", "namespace", "uid", "labels"]),
            ("spec", &["nodeName", "hostNetwork"]),
            ("status", &["phase", "podIP", "podIPs"]),
        ],
    );
    for list in ["containers", "initContainers"] {
        let Some(containers) = object
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        let slim: Vec<Value> = containers
            .iter()
            .map(|c| pick_fields(c, &["name", "ports"]))
            .collect();
        if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert(list.into(), Value::Array(slim));
        }
    }
    pod
}

fn pick_fields(object: &Value, fields: &[&str]) -> Value {
    let picked: Map<String, Value> = fields
        .iter()
        .filter_map(|f| Some((f.to_string(), object.get(*f)?.clone())))
        .collect();
    Value::Object(picked)
}

/// The object without `metadata.managedFields` and annotations (kubectl's
/// last-applied-configuration alone doubles a policy's size).
fn without_bulky_metadata(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("annotations");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys() {
        assert_eq!(Kind::Pods.split_key("x/a").unwrap(), (Some("x"), "a"));
        assert!(Kind::Pods.split_key("a").is_err());
        assert!(Kind::Pods.split_key("x/a/b").is_err());
        assert_eq!(Kind::Namespaces.split_key("x").unwrap(), (None, "x"));
        assert!(Kind::Nodes.split_key("a/b").is_err());
        assert!(Kind::from_name("subnets").is_err());
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()).unwrap(), k);
        }
        assert_eq!(
            Kind::NetworkPolicies.api_resource().api_version,
            "networking.k8s.io/v1"
        );
    }

    #[test]
    fn pods_are_slimmed_but_keep_what_policy_reads() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "namespace": "x", "resourceVersion": "9",
                         "labels": {"app": "web"}, "managedFields": [{"manager": "kubelet"}]},
            "spec": {"nodeName": "n1", "hostNetwork": false, "volumes": [{"name": "v"}],
                     "containers": [{"name": "c", "image": "nginx", "env": [{"name": "A"}],
                                     "ports": [{"containerPort": 80, "name": "http"}]}]},
            "status": {"phase": "Running", "podIP": "10.244.1.5",
                       "podIPs": [{"ip": "10.244.1.5"}], "conditions": [{"type": "Ready"}]}
        });
        let (key, value) = Kind::Pods.entry_of(&pod).unwrap();
        assert_eq!(key, "x/a");
        assert_eq!(value["metadata"]["labels"]["app"], "web");
        assert!(value["metadata"].get("managedFields").is_none());
        assert_eq!(
            value["spec"]["containers"][0]["ports"][0]["containerPort"],
            80
        );
        assert!(value["spec"]["containers"][0].get("image").is_none());
        assert!(value["spec"].get("volumes").is_none());
        assert_eq!(value["status"]["podIPs"][0]["ip"], "10.244.1.5");
        assert!(value["status"].get("conditions").is_none());
        assert_eq!(revision_of(&pod), 9);
    }

    #[test]
    fn namespaces_and_policies() {
        let ns = json!({"metadata": {"name": "x", "labels": {"team": "a"}, "uid": "u"}});
        let (key, value) = Kind::Namespaces.entry_of(&ns).unwrap();
        assert_eq!(key, "x");
        assert_eq!(
            value,
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "x", "labels": {"team": "a"}}})
        );
        let np = json!({"metadata": {"name": "p", "namespace": "x",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"podSelector": {}}});
        let (key, value) = Kind::NetworkPolicies.entry_of(&np).unwrap();
        assert_eq!(key, "x/p");
        assert!(value["metadata"].get("annotations").is_none());
        assert_eq!(value["spec"]["podSelector"], json!({}));
    }
}
