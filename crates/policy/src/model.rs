//! Wire model of `networking.k8s.io/v1` NetworkPolicy, field for field as the Kubernetes API
//! reference defines it. Deserializes from standard manifests (camelCase keys); unknown keys
//! (`apiVersion`, `kind`, `status`, annotations, ...) are ignored.
//!
//! Enumerated strings (`policyTypes`, `protocol`, `operator`) keep unknown values in an
//! `Unsupported` variant instead of failing the parse, so that [`crate::validate`] can reject
//! them with the object and field path named, like the API server does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A `NetworkPolicy` object.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicy {
    /// Object metadata (only name and namespace matter here).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The policy proper.
    #[serde(default)]
    pub spec: NetworkPolicySpec,
}

impl NetworkPolicy {
    /// The namespace the policy lives in; Kubernetes puts an object without one into `default`.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }
}

/// The subset of `ObjectMeta` the policy model needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name (a DNS subdomain).
    #[serde(default)]
    pub name: String,
    /// Namespace; `None` means `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `NetworkPolicySpec`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Pods (in the policy's namespace) the policy applies to; `{}` selects all of them.
    /// A missing selector decodes as `{}`, as Go's zero value does.
    #[serde(default)]
    pub pod_selector: LabelSelector,
    /// Directions this policy isolates. `None` = absent: see [`NetworkPolicySpec::effective_policy_types`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_types: Option<Vec<PolicyType>>,
    /// Ingress rules. Absent and `[]` both allow no ingress (the policy only isolates);
    /// `[{}]` allows all ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    /// Egress rules. Absent and `[]` both allow no egress when the policy has the Egress
    /// type; with `policyTypes` absent only a non-empty list turns the Egress type on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
}

impl NetworkPolicySpec {
    /// The policy types in force. API reference: "If this field is not specified, it will
    /// default based on the existence of ingress or egress rules; policies that contain an
    /// egress section are assumed to affect egress, and all policies (whether or not they
    /// contain an ingress section) are assumed to affect ingress." The API server's
    /// defaulting (`SetDefaults_NetworkPolicy`) tests `len(spec.egress) != 0` and
    /// `len(spec.policyTypes) == 0`, so `egress: []` and `policyTypes: []` count as absent.
    /// Returns `(ingress, egress)`.
    pub fn effective_policy_types(&self) -> (bool, bool) {
        match &self.policy_types {
            Some(types) if !types.is_empty() => (
                types.contains(&PolicyType::Ingress),
                types.contains(&PolicyType::Egress),
            ),
            _ => (
                true,
                self.egress.as_ref().is_some_and(|rules| !rules.is_empty()),
            ),
        }
    }
}

/// One entry of `policyTypes`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum PolicyType {
    /// `Ingress`.
    Ingress,
    /// `Egress`.
    Egress,
    /// Any other string (rejected by validation).
    Unsupported(String),
}

impl From<String> for PolicyType {
    fn from(s: String) -> Self {
        match s.as_str() {
            "Ingress" => Self::Ingress,
            "Egress" => Self::Egress,
            _ => Self::Unsupported(s),
        }
    }
}

impl From<PolicyType> for String {
    fn from(p: PolicyType) -> Self {
        match p {
            PolicyType::Ingress => "Ingress".into(),
            PolicyType::Egress => "Egress".into(),
            PolicyType::Unsupported(s) => s,
        }
    }
}

/// `NetworkPolicyIngressRule`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// Allowed sources; absent or empty = all sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<NetworkPolicyPeer>,
    /// Allowed destination ports; absent or empty = all ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPolicyPort>,
}

/// `NetworkPolicyEgressRule`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// Allowed destinations; absent or empty = all destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<NetworkPolicyPeer>,
    /// Allowed destination ports; absent or empty = all ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPolicyPort>,
}

/// `NetworkPolicyPeer`: either selectors or an `ipBlock`, never both.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyPeer {
    /// Pods; alone: in the policy's namespace; with `namespaceSelector`: in those namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces; alone: all pods in the matching namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// A CIDR range with exceptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

/// `IPBlock`. Kept as text; [`crate::validate`] parses and checks it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpBlock {
    /// e.g. `10.0.0.0/8` or `2001:db8::/64`.
    #[serde(default)]
    pub cidr: String,
    /// CIDRs inside `cidr` that the block does not include.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

/// `NetworkPolicyPort`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyPort {
    /// Protocol; absent = TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Port number or named container port; absent = all ports of the protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    /// Last port of a range starting at the numeric `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
}

impl NetworkPolicyPort {
    /// The protocol in force (`TCP` when absent).
    pub fn effective_protocol(&self) -> Protocol {
        self.protocol.clone().unwrap_or(Protocol::Tcp)
    }
}

/// Kubernetes `IntOrString`, as used by `port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A port number.
    Int(i64),
    /// A named container port (an `IANA_SVC_NAME`).
    String(String),
}

/// A transport protocol as NetworkPolicy and container ports name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Protocol {
    /// `TCP` (the default).
    #[default]
    Tcp,
    /// `UDP`.
    Udp,
    /// `SCTP`.
    Sctp,
    /// Any other string (rejected by validation).
    Unsupported(String),
}

impl From<String> for Protocol {
    fn from(s: String) -> Self {
        match s.as_str() {
            "TCP" => Self::Tcp,
            "UDP" => Self::Udp,
            "SCTP" => Self::Sctp,
            _ => Self::Unsupported(s),
        }
    }
}

impl From<Protocol> for String {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => "TCP".into(),
            Protocol::Udp => "UDP".into(),
            Protocol::Sctp => "SCTP".into(),
            Protocol::Unsupported(s) => s,
        }
    }
}

/// `metav1.LabelSelector`. All requirements are ANDed; an empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Exact key=value pairs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// Label key.
    #[serde(default)]
    pub key: String,
    /// Operator.
    #[serde(default)]
    pub operator: Operator,
    /// Values: non-empty for In/NotIn, empty for Exists/DoesNotExist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A `matchExpressions` operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Operator {
    /// `In`.
    In,
    /// `NotIn`.
    NotIn,
    /// `Exists`.
    Exists,
    /// `DoesNotExist`.
    DoesNotExist,
    /// Any other string, including a missing operator (rejected by validation).
    Unsupported(String),
}

impl Default for Operator {
    fn default() -> Self {
        Self::Unsupported(String::new())
    }
}

impl From<String> for Operator {
    fn from(s: String) -> Self {
        match s.as_str() {
            "In" => Self::In,
            "NotIn" => Self::NotIn,
            "Exists" => Self::Exists,
            "DoesNotExist" => Self::DoesNotExist,
            _ => Self::Unsupported(s),
        }
    }
}

impl From<Operator> for String {
    fn from(o: Operator) -> Self {
        match o {
            Operator::In => "In".into(),
            Operator::NotIn => "NotIn".into(),
            Operator::Exists => "Exists".into(),
            Operator::DoesNotExist => "DoesNotExist".into(),
            Operator::Unsupported(s) => s,
        }
    }
}
