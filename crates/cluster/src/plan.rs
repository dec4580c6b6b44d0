//! Route plans: the routes, neighbours and FDB entries a node needs to reach every other
//! node's pods, as plain data. The agent applies them through the datapath crate.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::{Backend, ClusterConfig, ConfigError};
use crate::mac::MacAddr;
use crate::node::NodeRecord;

/// Name of the node's VXLAN device (fits IFNAMSIZ).
pub const VXLAN_DEVICE: &str = "weft.vxlan";

/// A route to a remote node's pod subnet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutePlan {
    /// Remote pod subnet.
    pub dst: IpNet,
    /// Next hop: the remote VTEP address (vxlan) or underlay address (host-gw).
    pub via: IpAddr,
    /// Output device; `None` lets the kernel pick it from the next hop (host-gw).
    pub device: Option<String>,
    /// `onlink`: the next hop is reachable on `device` although no local prefix covers it.
    pub onlink: bool,
}

/// A permanent neighbour entry on the VXLAN device: remote VTEP address → remote MAC.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NeighbourPlan {
    /// Device the entry lives on.
    pub device: String,
    /// Remote VTEP address (network address of the remote pod subnet).
    pub ip: IpAddr,
    /// Remote VXLAN device MAC.
    pub mac: MacAddr,
}

/// A permanent bridge FDB entry on the VXLAN device: remote MAC → remote underlay address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FdbPlan {
    /// Device the entry lives on.
    pub device: String,
    /// Remote VXLAN device MAC.
    pub mac: MacAddr,
    /// Remote underlay address (outer destination).
    pub dst: IpAddr,
}

/// The local VXLAN device the vxlan backend needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VxlanDevicePlan {
    /// Device name ([`VXLAN_DEVICE`]).
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// UDP port.
    pub port: u16,
    /// Local underlay address (outer source).
    pub local: IpAddr,
    /// Addresses to put on the device: the network address of each local pod subnet as a
    /// host route (/32 or /128), flannel style.
    pub addresses: Vec<IpNet>,
}

/// A peer left out of the plan and why; the rest of the cluster is still planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedPeer {
    /// The peer's node name.
    pub node: String,
    /// Why it cannot be reached.
    pub error: PeerError,
}

/// Why a peer node cannot be routed to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// vxlan backend, but the peer has not published its VXLAN MAC yet.
    #[error("has not published a VXLAN MAC")]
    MissingVxlanMac,
    /// The peer's tunnel endpoint is of another address family than ours.
    #[error("underlay address {peer} is not of the same family as the local {local}")]
    UnderlayFamilyMismatch {
        /// Peer underlay address.
        peer: IpAddr,
        /// Local underlay address.
        local: IpAddr,
    },
    /// host-gw needs a next hop of the subnet's family.
    #[error("has no underlay address of the family of {subnet} (host-gw needs one)")]
    NoUnderlayForFamily {
        /// The subnet that cannot be routed.
        subnet: IpNet,
    },
    /// host-gw: the peer is not on our L2 segment, so it cannot be a direct next hop.
    #[error(
        "underlay address {peer} is outside the local underlay network {local_net}: host-gw \
         needs all nodes on one L2 segment (use the vxlan backend instead)"
    )]
    NotOnSameSegment {
        /// Peer underlay address.
        peer: IpAddr,
        /// Local underlay network.
        local_net: IpNet,
    },
    /// A published subnet is not inside any cluster CIDR.
    #[error("subnet {0} is outside the cluster CIDRs")]
    SubnetOutsideCluster(IpNet),
    /// A published subnet has host bits set.
    #[error("subnet {0} is not a network address")]
    SubnetNotNetwork(IpNet),
    /// A published subnet overlaps one already planned (local or an earlier peer by name).
    #[error("subnet {subnet} overlaps {other_subnet} of node {other_node}")]
    SubnetOverlap {
        /// The peer's subnet.
        subnet: IpNet,
        /// The subnet it collides with.
        other_subnet: IpNet,
        /// The node holding that one.
        other_node: String,
    },
}

/// Why no plan could be made at all (a problem with the local node or the config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The cluster configuration is invalid.
    #[error("invalid cluster config: {0}")]
    Config(#[from] ConfigError),
    /// host-gw needs the local underlay network to check peers against.
    #[error(
        "local node {node} has no underlay network of the {family} family with a prefix length (host-gw needs it)"
    )]
    LocalUnderlayUnknown {
        /// Local node name.
        node: String,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
}

/// Everything the agent programs for cross-node traffic, sorted for stable diffs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodePlan {
    /// The local VXLAN device (vxlan backend only).
    pub vxlan_device: Option<VxlanDevicePlan>,
    /// Routes to remote pod subnets.
    pub routes: Vec<RoutePlan>,
    /// Neighbour entries on the VXLAN device.
    pub neighbours: Vec<NeighbourPlan>,
    /// FDB entries on the VXLAN device.
    pub fdb: Vec<FdbPlan>,
    /// Peers that were left out, with the reason (log them; they are retried next time).
    pub rejected: Vec<RejectedPeer>,
}

/// The VTEP address for a pod subnet: its network address as a host prefix.
pub fn vtep_address(subnet: &IpNet) -> IpNet {
    IpNet::from(subnet.network())
}

/// Plans what `local` needs to reach every peer's pod subnets under `cfg`'s backend.
///
/// Peers are handled in name order; the local node (same name) is skipped. A peer that is
/// unusable (no MAC yet, other L2 segment, overlapping subnet, …) lands in
/// [`NodePlan::rejected`] and does not affect the others.
pub fn plan_routes(
    local: &NodeRecord,
    peers: &[NodeRecord],
    cfg: &ClusterConfig,
) -> Result<NodePlan, PlanError> {
    cfg.validate()?;
    let mut plan = NodePlan {
        vxlan_device: vxlan_device_plan(local, cfg),
        ..NodePlan::default()
    };
    let mut claimed: Vec<(IpNet, String)> = local
        .subnets
        .iter()
        .map(|s| (*s, local.name.clone()))
        .collect();

    let mut ordered: Vec<&NodeRecord> = peers.iter().filter(|p| p.name != local.name).collect();
    ordered.sort_by(|a, b| a.name.cmp(&b.name));
    for peer in ordered {
        let checked = check_subnets(peer, cfg, &claimed)
            .and_then(|()| plan_peer(local, peer, cfg, &mut plan));
        match checked {
            Ok(Ok(())) => claimed.extend(peer.subnets.iter().map(|s| (*s, peer.name.clone()))),
            Ok(Err(local_error)) => return Err(local_error),
            Err(error) => plan.rejected.push(RejectedPeer {
                node: peer.name.clone(),
                error,
            }),
        }
    }
    plan.routes.sort();
    plan.neighbours.sort();
    plan.fdb.sort();
    Ok(plan)
}

fn vxlan_device_plan(local: &NodeRecord, cfg: &ClusterConfig) -> Option<VxlanDevicePlan> {
    match cfg.backend {
        Backend::Vxlan { vni, port } => Some(VxlanDevicePlan {
            name: VXLAN_DEVICE.to_string(),
            vni,
            port,
            local: local.underlay_ip,
            addresses: local.subnets.iter().map(vtep_address).collect(),
        }),
        Backend::HostGw => None,
    }
}

fn check_subnets(
    peer: &NodeRecord,
    cfg: &ClusterConfig,
    claimed: &[(IpNet, String)],
) -> Result<(), PeerError> {
    for subnet in &peer.subnets {
        if subnet.trunc() != *subnet {
            return Err(PeerError::SubnetNotNetwork(*subnet));
        }
        if !cfg.cluster_cidrs.iter().any(|c| c.contains(subnet)) {
            return Err(PeerError::SubnetOutsideCluster(*subnet));
        }
        if let Some((other, node)) = claimed.iter().find(|(c, _)| overlaps(c, subnet)) {
            return Err(PeerError::SubnetOverlap {
                subnet: *subnet,
                other_subnet: *other,
                other_node: node.clone(),
            });
        }
    }
    Ok(())
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Adds one peer's entries. Outer `Err`: the peer is rejected; inner `Err`: the local node
/// cannot plan at all.
fn plan_peer(
    local: &NodeRecord,
    peer: &NodeRecord,
    cfg: &ClusterConfig,
    plan: &mut NodePlan,
) -> Result<Result<(), PlanError>, PeerError> {
    match cfg.backend {
        Backend::Vxlan { .. } => plan_vxlan_peer(local, peer, plan).map(Ok),
        Backend::HostGw => plan_host_gw_peer(local, peer, plan),
    }
}

fn plan_vxlan_peer(
    local: &NodeRecord,
    peer: &NodeRecord,
    plan: &mut NodePlan,
) -> Result<(), PeerError> {
    let mac = peer.vxlan_mac.ok_or(PeerError::MissingVxlanMac)?;
    if peer.underlay_ip.is_ipv6() != local.underlay_ip.is_ipv6() {
        return Err(PeerError::UnderlayFamilyMismatch {
            peer: peer.underlay_ip,
            local: local.underlay_ip,
        });
    }
    let device = VXLAN_DEVICE.to_string();
    plan.fdb.push(FdbPlan {
        device: device.clone(),
        mac,
        dst: peer.underlay_ip,
    });
    for subnet in &peer.subnets {
        let vtep = subnet.network();
        plan.neighbours.push(NeighbourPlan {
            device: device.clone(),
            ip: vtep,
            mac,
        });
        plan.routes.push(RoutePlan {
            dst: *subnet,
            via: vtep,
            device: Some(device.clone()),
            onlink: true,
        });
    }
    Ok(())
}

fn plan_host_gw_peer(
    local: &NodeRecord,
    peer: &NodeRecord,
    plan: &mut NodePlan,
) -> Result<Result<(), PlanError>, PeerError> {
    let mut routes = Vec::with_capacity(peer.subnets.len());
    for subnet in &peer.subnets {
        let v6 = subnet.addr().is_ipv6();
        let Some((_, Some(local_net))) = local.underlay_of_family(v6) else {
            return Ok(Err(PlanError::LocalUnderlayUnknown {
                node: local.name.clone(),
                family: if v6 { "IPv6" } else { "IPv4" },
            }));
        };
        let (via, _) = peer
            .underlay_of_family(v6)
            .ok_or(PeerError::NoUnderlayForFamily { subnet: *subnet })?;
        if !local_net.contains(&via) {
            return Err(PeerError::NotOnSameSegment {
                peer: via,
                local_net,
            });
        }
        routes.push(RoutePlan {
            dst: *subnet,
            via,
            device: None,
            onlink: false,
        });
    }
    plan.routes.extend(routes);
    Ok(Ok(()))
}
