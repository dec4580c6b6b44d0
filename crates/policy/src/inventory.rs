//! What the evaluator and compiler know about the cluster besides the policies.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::Protocol;
use crate::selector::Labels;
use crate::validate::ValidatedPolicy;

/// The label the API server sets on every namespace (since Kubernetes 1.21), always equal
/// to the namespace name, whatever the user wrote.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Labels as the user set them.
    #[serde(default)]
    pub labels: Labels,
}

impl Namespace {
    /// A namespace with `labels`.
    pub fn new(name: &str, labels: Labels) -> Self {
        Self {
            name: name.to_string(),
            labels,
        }
    }

    /// The labels selectors see: the user's plus `kubernetes.io/metadata.name=<name>`,
    /// which the API server adds and overrides.
    pub fn effective_labels(&self) -> Cow<'_, Labels> {
        if self.labels.get(NAMESPACE_NAME_LABEL) == Some(&self.name) {
            return Cow::Borrowed(&self.labels);
        }
        let mut labels = self.labels.clone();
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), self.name.clone());
        Cow::Owned(labels)
    }
}

/// A container port of a pod (only named ones matter to policies).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    /// Port name (`IANA_SVC_NAME`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port number.
    pub container_port: u16,
    /// Protocol (TCP when absent).
    #[serde(default)]
    pub protocol: Protocol,
}

/// A pod (not host-network: policies never apply to those).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: Labels,
    /// Pod IPs (at most one per family in practice).
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// Node the pod runs on.
    #[serde(default)]
    pub node: String,
    /// Container ports of all containers.
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
}

impl Pod {
    /// The port number `name` resolves to for `protocol`, per the pod's containerPorts.
    /// Kubernetes matches both the name and the protocol.
    pub fn resolve_named_port(&self, name: &str, protocol: &Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name) && &p.protocol == protocol)
            .map(|p| p.container_port)
    }
}

/// A node and its own addresses (sources of kubelet probes).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Node name, as in [`Pod::node`].
    pub name: String,
    /// Addresses of the node itself.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
}

/// Everything the evaluator and compiler look at.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// Namespaces. A pod in a namespace missing here is matched against no labels but
    /// `kubernetes.io/metadata.name`.
    pub namespaces: Vec<Namespace>,
    /// Pods.
    pub pods: Vec<Pod>,
    /// Nodes (for the own-node exemption).
    pub nodes: Vec<Node>,
    /// Validated policies.
    pub policies: Vec<ValidatedPolicy>,
}

impl Cluster {
    /// Labels of namespace `name` as selectors see them.
    pub fn namespace_labels(&self, name: &str) -> Labels {
        match self.namespaces.iter().find(|n| n.name == name) {
            Some(ns) => ns.effective_labels().into_owned(),
            None => Namespace::new(name, Labels::new())
                .effective_labels()
                .into_owned(),
        }
    }

    /// The pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// The pod owning `ip`.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Pod> {
        self.pods.iter().find(|p| p.ips.contains(&ip))
    }

    /// Does `selector` select namespace `name`? Same as matching [`Cluster::namespace_labels`],
    /// without building the label map.
    pub fn namespace_selected(&self, selector: &crate::model::LabelSelector, name: &str) -> bool {
        let labels = self
            .namespaces
            .iter()
            .find(|n| n.name == name)
            .map(|n| &n.labels);
        selector.matches_with(|key| {
            if key == NAMESPACE_NAME_LABEL {
                Some(name)
            } else {
                labels.and_then(|l| l.get(key)).map(String::as_str)
            }
        })
    }

    /// Addresses of node `name`.
    pub fn node_ips(&self, name: &str) -> &[IpAddr] {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .map_or(&[], |n| n.ips.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_name_label_is_added_and_overrides() {
        let ns = Namespace::new("x", Labels::new());
        assert_eq!(
            ns.effective_labels()
                .get(NAMESPACE_NAME_LABEL)
                .map(String::as_str),
            Some("x")
        );
        let spoofed = Namespace::new(
            "x",
            [(NAMESPACE_NAME_LABEL.to_string(), "y".to_string())].into(),
        );
        assert_eq!(
            spoofed
                .effective_labels()
                .get(NAMESPACE_NAME_LABEL)
                .map(String::as_str),
            Some("x")
        );
        // Unknown namespaces still carry the automatic label.
        let c = Cluster::default();
        assert_eq!(
            c.namespace_labels("z")
                .get(NAMESPACE_NAME_LABEL)
                .map(String::as_str),
            Some("z")
        );
    }

    #[test]
    fn named_ports_match_name_and_protocol() {
        let pod = Pod {
            ports: vec![
                ContainerPort {
                    name: Some("dns".into()),
                    container_port: 53,
                    protocol: Protocol::Udp,
                },
                ContainerPort {
                    name: Some("dns-tcp".into()),
                    container_port: 5353,
                    protocol: Protocol::Tcp,
                },
                ContainerPort {
                    name: None,
                    container_port: 8080,
                    protocol: Protocol::Tcp,
                },
            ],
            ..Pod::default()
        };
        assert_eq!(pod.resolve_named_port("dns", &Protocol::Udp), Some(53));
        assert_eq!(pod.resolve_named_port("dns", &Protocol::Tcp), None);
        assert_eq!(
            pod.resolve_named_port("dns-tcp", &Protocol::Tcp),
            Some(5353)
        );
    }
}
