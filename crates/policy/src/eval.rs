//! The evaluator: is one packet of a new connection allowed? Replies to allowed connections
//! are conntrack's job, not this function's.
//!
//! Choices where the API leaves room (the compiler follows the same ones):
//! - `ipBlock` matches any address, pod addresses included. The API reference says the
//!   blocks "should be cluster-external IPs" but does not exclude pod IPs, and the upstream
//!   e2e suite ("should enforce except clause while egress access to server in CIDR block")
//!   expects pod IPs to match.
//! - A pod talking to itself is always allowed: the packet never leaves the pod's netns
//!   (it goes over `lo`), so no node filter can see it.
//! - Traffic whose source is an address of the destination pod's own node is always
//!   allowed (kubelet probes), per the API reference's note on node-local traffic.
//! - A named port only ever matches a destination pod that has a containerPort with that
//!   name and protocol; for egress to a non-pod address it matches nothing.

use std::net::IpAddr;

use serde::Serialize;

use crate::inventory::{Cluster, Pod};
use crate::model::{IntOrString, NetworkPolicyPeer, NetworkPolicyPort, Protocol};
use crate::validate::ValidatedPolicy;

/// One end of a packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum Endpoint {
    /// A pod by `namespace`/`name`; its address is chosen by the packet's family.
    Pod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// An address: a pod's (then treated as that pod), a node's, or an external one.
    Ip(IpAddr),
}

impl Endpoint {
    /// Shorthand for [`Endpoint::Pod`].
    pub fn pod(namespace: &str, name: &str) -> Self {
        Self::Pod {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// Traffic direction from the point of view of the policed pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Direction {
    /// Into the destination pod.
    Ingress,
    /// Out of the source pod.
    Egress,
}

/// A policy by `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PolicyRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl PolicyRef {
    fn of(p: &ValidatedPolicy) -> Self {
        Self {
            namespace: p.namespace().to_string(),
            name: p.metadata.name.clone(),
        }
    }
}

/// Why one side allowed or denied (for `weftctl policy trace`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Decision {
    /// Source and destination are the same pod: never filtered.
    Loopback,
    /// The source is an address of the destination pod's node.
    FromOwnNode {
        /// The node.
        node: String,
    },
    /// This side is not a pod, so no policy applies to it.
    NotAPod {
        /// Side.
        direction: Direction,
    },
    /// No policy selecting the pod has this policy type.
    NotIsolated {
        /// Side.
        direction: Direction,
    },
    /// Rule `rule` (index into `spec.ingress` or `spec.egress`) of `policy` allowed it.
    AllowedBy {
        /// Side.
        direction: Direction,
        /// The policy.
        policy: PolicyRef,
        /// Rule index.
        rule: usize,
    },
    /// The pod is isolated by these policies and none of their rules allowed the packet.
    DeniedByIsolation {
        /// Side.
        direction: Direction,
        /// The isolating policies.
        policies: Vec<PolicyRef>,
    },
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Allowed by the source's egress side and the destination's ingress side.
    pub allowed: bool,
    /// Egress decisions first, then ingress.
    pub reasons: Vec<Decision>,
}

/// Why a packet could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// No such pod in the cluster.
    #[error("unknown pod {0}")]
    UnknownPod(String),
    /// A pod has no address of the packet's family (or two pods share none).
    #[error("pod {0} has no address of the packet's address family")]
    NoAddress(String),
}

/// A packet end after lookup: the pod (if any) and the address on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved<'a> {
    pub(crate) pod: Option<&'a Pod>,
    pub(crate) ip: IpAddr,
}

/// Decides whether a new connection from `src` to `dst` on `protocol`/`port` is allowed.
pub fn evaluate(
    cluster: &Cluster,
    src: &Endpoint,
    dst: &Endpoint,
    protocol: &Protocol,
    port: u16,
) -> Result<Verdict, EvalError> {
    let (src, dst) = resolve_pair(cluster, src, dst)?;
    if let (Some(s), Some(d)) = (src.pod, dst.pod)
        && s.namespace == d.namespace
        && s.name == d.name
    {
        return Ok(Verdict {
            allowed: true,
            reasons: vec![Decision::Loopback],
        });
    }
    let (egress_ok, mut reasons) = match src.pod {
        Some(pod) => side(cluster, Direction::Egress, pod, &dst, protocol, port, &dst),
        None => (
            true,
            vec![Decision::NotAPod {
                direction: Direction::Egress,
            }],
        ),
    };
    let (ingress_ok, ingress_reasons) = match dst.pod {
        None => (
            true,
            vec![Decision::NotAPod {
                direction: Direction::Ingress,
            }],
        ),
        Some(pod) if cluster.node_ips(&pod.node).contains(&src.ip) => (
            true,
            vec![Decision::FromOwnNode {
                node: pod.node.clone(),
            }],
        ),
        Some(pod) => side(cluster, Direction::Ingress, pod, &src, protocol, port, &dst),
    };
    reasons.extend(ingress_reasons);
    Ok(Verdict {
        allowed: egress_ok && ingress_ok,
        reasons,
    })
}

/// One side: `pod` is the policed pod, `peer` the other end, `dst` the destination (for
/// named ports).
fn side(
    cluster: &Cluster,
    direction: Direction,
    pod: &Pod,
    peer: &Resolved<'_>,
    protocol: &Protocol,
    port: u16,
    dst: &Resolved<'_>,
) -> (bool, Vec<Decision>) {
    let isolating = isolating_policies(cluster, pod, direction);
    if isolating.is_empty() {
        return (true, vec![Decision::NotIsolated { direction }]);
    }
    let mut allowed = Vec::new();
    for policy in &isolating {
        for (index, rule) in rules(policy, direction).iter().enumerate() {
            let peers_ok = rule.peers.is_empty()
                || rule
                    .peers
                    .iter()
                    .any(|p| peer_matches(cluster, policy.namespace(), p, peer));
            let ports_ok = rule.ports.is_empty()
                || rule
                    .ports
                    .iter()
                    .any(|p| port_matches(p, protocol, port, dst.pod));
            if peers_ok && ports_ok {
                allowed.push(Decision::AllowedBy {
                    direction,
                    policy: PolicyRef::of(policy),
                    rule: index,
                });
            }
        }
    }
    if allowed.is_empty() {
        let policies = isolating.iter().map(|p| PolicyRef::of(p)).collect();
        (
            false,
            vec![Decision::DeniedByIsolation {
                direction,
                policies,
            }],
        )
    } else {
        (true, allowed)
    }
}

/// Policies in the pod's namespace that select it and have `direction` among their types.
pub(crate) fn isolating_policies<'a>(
    cluster: &'a Cluster,
    pod: &Pod,
    direction: Direction,
) -> Vec<&'a ValidatedPolicy> {
    cluster
        .policies
        .iter()
        .filter(|p| p.namespace() == pod.namespace && p.spec.pod_selector.matches(&pod.labels))
        .filter(|p| {
            let (ingress, egress) = p.spec.effective_policy_types();
            match direction {
                Direction::Ingress => ingress,
                Direction::Egress => egress,
            }
        })
        .collect()
}

/// A rule of either direction, seen uniformly.
pub(crate) struct RuleView<'a> {
    pub(crate) peers: &'a [NetworkPolicyPeer],
    pub(crate) ports: &'a [NetworkPolicyPort],
}

/// The rules of `policy` for `direction` (absent = none).
pub(crate) fn rules(policy: &ValidatedPolicy, direction: Direction) -> Vec<RuleView<'_>> {
    match direction {
        Direction::Ingress => policy
            .spec
            .ingress
            .iter()
            .flatten()
            .map(|r| RuleView {
                peers: &r.from,
                ports: &r.ports,
            })
            .collect(),
        Direction::Egress => policy
            .spec
            .egress
            .iter()
            .flatten()
            .map(|r| RuleView {
                peers: &r.to,
                ports: &r.ports,
            })
            .collect(),
    }
}

/// Does `peer` (from a policy in `policy_ns`) match the endpoint?
pub(crate) fn peer_matches(
    cluster: &Cluster,
    policy_ns: &str,
    peer: &NetworkPolicyPeer,
    ep: &Resolved<'_>,
) -> bool {
    if let Some(block) = &peer.ip_block {
        return block.parse().is_some_and(|b| b.contains(ep.ip));
    }
    match ep.pod {
        Some(pod) => selectors_match_pod(cluster, policy_ns, peer, pod),
        None => false,
    }
}

/// The selector form of a peer against a pod: podSelector alone = that namespace;
/// namespaceSelector alone = all pods there; both = AND.
pub(crate) fn selectors_match_pod(
    cluster: &Cluster,
    policy_ns: &str,
    peer: &NetworkPolicyPeer,
    pod: &Pod,
) -> bool {
    if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
        return false;
    }
    let ns_ok = match &peer.namespace_selector {
        Some(sel) => cluster.namespace_selected(sel, &pod.namespace),
        None => pod.namespace == policy_ns,
    };
    ns_ok
        && peer
            .pod_selector
            .as_ref()
            .is_none_or(|s| s.matches(&pod.labels))
}

/// Does a `ports` entry match? Named ports resolve against the destination pod.
pub(crate) fn port_matches(
    entry: &NetworkPolicyPort,
    protocol: &Protocol,
    port: u16,
    dst_pod: Option<&Pod>,
) -> bool {
    let proto = entry.effective_protocol();
    if &proto != protocol {
        return false;
    }
    match &entry.port {
        None => true,
        Some(IntOrString::Int(start)) => {
            let end = entry.end_port.map_or(*start, i64::from);
            (*start..=end).contains(&i64::from(port))
        }
        Some(IntOrString::String(name)) => {
            dst_pod.and_then(|p| p.resolve_named_port(name, &proto)) == Some(port)
        }
    }
}

fn resolve_pair<'a>(
    cluster: &'a Cluster,
    src: &Endpoint,
    dst: &Endpoint,
) -> Result<(Resolved<'a>, Resolved<'a>), EvalError> {
    let src_pod = lookup(cluster, src)?;
    let dst_pod = lookup(cluster, dst)?;
    let want_v4 = match (src, dst) {
        (Endpoint::Ip(ip), _) | (_, Endpoint::Ip(ip)) => ip.is_ipv4(),
        _ => {
            let families =
                |p: Option<&Pod>| p.map(|p| p.ips.iter().map(IpAddr::is_ipv4).collect::<Vec<_>>());
            let (s, d) = (
                families(src_pod).unwrap_or_default(),
                families(dst_pod).unwrap_or_default(),
            );
            // Prefer IPv4 when both pods have it, as a dual-stack client would by default.
            s.contains(&true) && d.contains(&true) || !(s.contains(&false) && d.contains(&false))
        }
    };
    Ok((pick(src, src_pod, want_v4)?, pick(dst, dst_pod, want_v4)?))
}

fn lookup<'a>(cluster: &'a Cluster, ep: &Endpoint) -> Result<Option<&'a Pod>, EvalError> {
    match ep {
        Endpoint::Pod { namespace, name } => cluster
            .pod(namespace, name)
            .map(Some)
            .ok_or_else(|| EvalError::UnknownPod(format!("{namespace}/{name}"))),
        Endpoint::Ip(ip) => Ok(cluster.pod_by_ip(*ip)),
    }
}

fn pick<'a>(ep: &Endpoint, pod: Option<&'a Pod>, want_v4: bool) -> Result<Resolved<'a>, EvalError> {
    if let Endpoint::Ip(ip) = ep {
        return Ok(Resolved { pod, ip: *ip });
    }
    let found = pod.and_then(|p| p.ips.iter().copied().find(|ip| ip.is_ipv4() == want_v4));
    match (pod, found) {
        (_, Some(ip)) => Ok(Resolved { pod, ip }),
        (Some(p), None) => Err(EvalError::NoAddress(format!("{}/{}", p.namespace, p.name))),
        (None, None) => Err(EvalError::NoAddress(String::new())),
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

impl std::fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::fmt::Display for Decision {
    /// One line for `weftctl policy trace`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Loopback => write!(f, "allowed: a pod talking to itself is never filtered"),
            Decision::FromOwnNode { node } => write!(
                f,
                "ingress allowed: source is node {node}, the destination's own node"
            ),
            Decision::NotAPod { direction } => {
                write!(f, "{direction} allowed: that end is not a pod")
            }
            Decision::NotIsolated { direction } => {
                write!(
                    f,
                    "{direction} allowed: no policy isolates the pod for {direction}"
                )
            }
            Decision::AllowedBy {
                direction,
                policy,
                rule,
            } => {
                write!(
                    f,
                    "{direction} allowed by NetworkPolicy {policy}, spec.{direction}[{rule}]"
                )
            }
            Decision::DeniedByIsolation {
                direction,
                policies,
            } => {
                let names: Vec<String> = policies.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "{direction} denied: isolated by {} and no rule matches",
                    names.join(", ")
                )
            }
        }
    }
}
