//! Kubernetes objects as the API server (or weft's datastores) serve them, as JSON, turned
//! into the inventory the evaluator and the compiler use. Shared by `weftd` (enforcement),
//! `weftctl policy trace` and the lab, so all three read an object the same way.

use std::net::IpAddr;

use serde_json::Value;

use crate::inventory::{ContainerPort, Namespace, Pod};
use crate::model::{NetworkPolicy, Protocol};
use crate::selector::Labels;
use crate::validate::{ValidatedPolicy, ValidationError};

/// Why an object could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The JSON does not have the shape of the kind.
    #[error("{kind} {key}: {reason}")]
    Malformed {
        /// `Pod`, `Namespace` or `NetworkPolicy`.
        kind: &'static str,
        /// The store key or `namespace/name`.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A NetworkPolicy the API server would have refused.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

fn malformed(kind: &'static str, key: &str, reason: impl Into<String>) -> ObjectError {
    ObjectError::Malformed {
        kind,
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn labels_of(object: &Value) -> Labels {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

/// A `v1/Namespace`.
pub fn namespace_from_object(key: &str, object: &Value) -> Result<Namespace, ObjectError> {
    let name = str_at(object, "/metadata/name")
        .or((!key.is_empty()).then_some(key))
        .ok_or_else(|| malformed("Namespace", key, "metadata.name is missing"))?;
    Ok(Namespace::new(name, labels_of(object)))
}

/// A `v1/Pod`: labels, `spec.nodeName`, `status.podIPs` (or `podIP`), named container ports.
/// Host-network pods are returned with no IPs: policies never apply to them, and their
/// addresses are the node's, which must not be mistaken for a pod's.
pub fn pod_from_object(key: &str, object: &Value) -> Result<Pod, ObjectError> {
    let name = str_at(object, "/metadata/name")
        .ok_or_else(|| malformed("Pod", key, "metadata.name is missing"))?;
    let namespace = str_at(object, "/metadata/namespace").unwrap_or("default");
    let host_network = object
        .pointer("/spec/hostNetwork")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut ips: Vec<IpAddr> = Vec::new();
    if !host_network {
        let listed = object
            .pointer("/status/podIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|entry| str_at(entry, "/ip"));
        for text in listed.chain(str_at(object, "/status/podIP")) {
            let ip: IpAddr = text
                .parse()
                .map_err(|_| malformed("Pod", key, format!("bad pod IP {text:?}")))?;
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    Ok(Pod {
        namespace: namespace.to_string(),
        name: name.to_string(),
        labels: labels_of(object),
        ips,
        node: str_at(object, "/spec/nodeName")
            .unwrap_or_default()
            .to_string(),
        ports: container_ports(key, object)?,
    })
}

fn container_ports(key: &str, object: &Value) -> Result<Vec<ContainerPort>, ObjectError> {
    let containers = ["/spec/containers", "/spec/initContainers"]
        .iter()
        .filter_map(|p| object.pointer(p).and_then(Value::as_array))
        .flatten();
    let mut ports = Vec::new();
    for port in containers
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
    {
        let number = port
            .get("containerPort")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| malformed("Pod", key, "containerPort must be 1-65535"))?;
        let protocol: Protocol = match port.get("protocol") {
            None | Some(Value::Null) => Protocol::Tcp,
            Some(p) => serde_json::from_value(p.clone())
                .map_err(|e| malformed("Pod", key, format!("protocol: {e}")))?,
        };
        ports.push(ContainerPort {
            name: port.get("name").and_then(Value::as_str).map(str::to_string),
            container_port: number,
            protocol,
        });
    }
    Ok(ports)
}

/// A `networking.k8s.io/v1/NetworkPolicy`, validated as the API server would.
pub fn policy_from_object(key: &str, object: &Value) -> Result<ValidatedPolicy, ObjectError> {
    let policy: NetworkPolicy = serde_json::from_value(object.clone())
        .map_err(|e| malformed("NetworkPolicy", key, e.to_string()))?;
    Ok(policy.validate()?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pod_reads_ips_node_labels_and_named_ports() {
        let object = json!({
            "metadata": {"name": "a", "namespace": "x", "labels": {"pod": "a"}},
            "spec": {"nodeName": "node1", "containers": [
                {"name": "c", "ports": [{"containerPort": 80, "name": "serve-80-tcp"},
                                        {"containerPort": 81, "protocol": "UDP"}]}]},
            "status": {"podIP": "10.244.1.5",
                       "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00:10:244:1::5"}]}
        });
        let pod = pod_from_object("x/a", &object).unwrap();
        assert_eq!((pod.namespace.as_str(), pod.name.as_str()), ("x", "a"));
        assert_eq!(pod.node, "node1");
        assert_eq!(pod.ips.len(), 2);
        assert_eq!(pod.labels.get("pod").map(String::as_str), Some("a"));
        assert_eq!(
            pod.resolve_named_port("serve-80-tcp", &Protocol::Tcp),
            Some(80)
        );
        assert_eq!(pod.ports[1].protocol, Protocol::Udp);
    }

    #[test]
    fn pending_and_host_network_pods_have_no_ips() {
        let pending = json!({"metadata": {"name": "a", "namespace": "x"}, "spec": {}});
        assert!(pod_from_object("x/a", &pending).unwrap().ips.is_empty());
        let host = json!({"metadata": {"name": "h", "namespace": "x"},
            "spec": {"hostNetwork": true}, "status": {"podIP": "198.18.0.11"}});
        assert!(pod_from_object("x/h", &host).unwrap().ips.is_empty());
    }

    #[test]
    fn bad_objects_are_errors_naming_the_key() {
        let e = pod_from_object("x/a", &json!({"metadata": {}})).unwrap_err();
        assert!(e.to_string().contains("x/a"), "{e}");
        let bad_ip = json!({"metadata": {"name": "a"}, "status": {"podIP": "nope"}});
        assert!(pod_from_object("x/a", &bad_ip).is_err());
        let invalid = json!({"metadata": {"name": "p", "namespace": "x"},
            "spec": {"podSelector": {}, "policyTypes": ["Sideways"]}});
        let e = policy_from_object("x/p", &invalid).unwrap_err();
        assert!(matches!(e, ObjectError::Invalid(_)), "{e}");
    }

    #[test]
    fn namespace_name_falls_back_to_key() {
        let ns = namespace_from_object("y", &json!({"metadata": {"labels": {"ns": "y"}}})).unwrap();
        assert_eq!(ns.name, "y");
        assert_eq!(ns.labels.get("ns").map(String::as_str), Some("y"));
    }
}
