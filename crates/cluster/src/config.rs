//! Cluster-wide configuration: which CIDRs pods come from, how big each node's share is,
//! which backend carries cross-node traffic, and the MTU derivation.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Default per-node prefix length carved from an IPv4 cluster CIDR.
pub const DEFAULT_NODE_PREFIX_V4: u8 = 24;
/// Default per-node prefix length carved from an IPv6 cluster CIDR.
pub const DEFAULT_NODE_PREFIX_V6: u8 = 64;
/// Default VXLAN network identifier.
pub const DEFAULT_VXLAN_VNI: u32 = 1;
/// Default VXLAN UDP port (IANA). Linux would otherwise pick 8472.
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// Bytes VXLAN adds over an IPv4 underlay (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
pub const VXLAN_OVERHEAD_V4: u32 = 50;
/// Bytes VXLAN adds over an IPv6 underlay (outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14).
pub const VXLAN_OVERHEAD_V6: u32 = 70;

/// Largest VNI: the VXLAN header carries 24 bits.
const MAX_VNI: u32 = (1 << 24) - 1;
/// Smallest MTU an IPv4 host must accept (RFC 791).
const MIN_MTU_V4: u32 = 576;
/// Smallest MTU IPv6 allows on any link (RFC 8200 §5).
const MIN_MTU_V6: u32 = 1280;
/// Largest per-node IPv4 prefix that still leaves room for a gateway and pods.
const MAX_NODE_PREFIX_V4: u8 = 30;
/// Largest per-node IPv6 prefix that still leaves room for a gateway and pods.
const MAX_NODE_PREFIX_V6: u8 = 126;

/// How pod traffic crosses between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Backend {
    /// One VXLAN device per node with static FDB and neighbour entries (no learning).
    Vxlan {
        /// VXLAN network identifier (24 bits).
        #[serde(default = "default_vni")]
        vni: u32,
        /// UDP destination port.
        #[serde(default = "default_port")]
        port: u16,
    },
    /// Plain routes via the peer's underlay address; all nodes must share one L2 segment.
    HostGw,
}

impl Default for Backend {
    fn default() -> Self {
        Backend::Vxlan {
            vni: DEFAULT_VXLAN_VNI,
            port: DEFAULT_VXLAN_PORT,
        }
    }
}

fn default_vni() -> u32 {
    DEFAULT_VXLAN_VNI
}
fn default_port() -> u16 {
    DEFAULT_VXLAN_PORT
}
fn default_prefix_v4() -> u8 {
    DEFAULT_NODE_PREFIX_V4
}
fn default_prefix_v6() -> u8 {
    DEFAULT_NODE_PREFIX_V6
}

/// Cluster-wide network settings shared by every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    /// Pod CIDRs: at most one IPv4 and one IPv6 network (dual stack).
    pub cluster_cidrs: Vec<IpNet>,
    /// Prefix length of each node's IPv4 pod subnet.
    #[serde(default = "default_prefix_v4")]
    pub node_prefix_v4: u8,
    /// Prefix length of each node's IPv6 pod subnet.
    #[serde(default = "default_prefix_v6")]
    pub node_prefix_v6: u8,
    /// Cross-node transport.
    #[serde(default)]
    pub backend: Backend,
    /// Pod MTU; derived from the underlay interface when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// Why a [`ClusterConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No cluster CIDR at all.
    #[error("clusterCidrs: at least one cluster CIDR is required")]
    NoClusterCidr,
    /// Two CIDRs of the same family.
    #[error("clusterCidrs: more than one {family} CIDR ({first} and {second}); use one per family")]
    DuplicateFamily {
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// The first CIDR of that family.
        first: IpNet,
        /// The second one.
        second: IpNet,
    },
    /// The CIDR has host bits set, e.g. `10.244.1.1/16`.
    #[error("clusterCidrs: {cidr} is not a network address (did you mean {network}?)")]
    NotNetworkAddress {
        /// As given.
        cidr: IpNet,
        /// With the host bits cleared.
        network: IpNet,
    },
    /// The per-node prefix does not fit the cluster CIDR.
    #[error(
        "{field}: /{node_prefix} must be longer than the cluster CIDR {cidr} and at most /{max}"
    )]
    BadNodePrefix {
        /// `nodePrefixV4` or `nodePrefixV6`.
        field: &'static str,
        /// The configured prefix length.
        node_prefix: u8,
        /// The cluster CIDR it applies to.
        cidr: IpNet,
        /// The largest allowed prefix length.
        max: u8,
    },
    /// VNI is 0 or does not fit 24 bits.
    #[error("backend.vni: {0} is out of range 1..=16777215")]
    BadVni(u32),
    /// UDP port 0.
    #[error("backend.port: 0 is not a valid UDP port")]
    BadPort,
    /// MTU below what the address families need.
    #[error("mtu: {mtu} is below the minimum {min} for this cluster's address families")]
    MtuTooSmall {
        /// As configured.
        mtu: u32,
        /// The minimum.
        min: u32,
    },
}

impl ClusterConfig {
    /// Checks everything a node agent relies on; call once after parsing.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster_cidrs.is_empty() {
            return Err(ConfigError::NoClusterCidr);
        }
        self.check_one_per_family()?;
        for cidr in &self.cluster_cidrs {
            if cidr.trunc() != *cidr {
                return Err(ConfigError::NotNetworkAddress {
                    cidr: *cidr,
                    network: cidr.trunc(),
                });
            }
            let (field, node_prefix, max) = match cidr {
                IpNet::V4(_) => ("nodePrefixV4", self.node_prefix_v4, MAX_NODE_PREFIX_V4),
                IpNet::V6(_) => ("nodePrefixV6", self.node_prefix_v6, MAX_NODE_PREFIX_V6),
            };
            if node_prefix <= cidr.prefix_len() || node_prefix > max {
                return Err(ConfigError::BadNodePrefix {
                    field,
                    node_prefix,
                    cidr: *cidr,
                    max,
                });
            }
        }
        if let Backend::Vxlan { vni, port } = self.backend {
            if vni == 0 || vni > MAX_VNI {
                return Err(ConfigError::BadVni(vni));
            }
            if port == 0 {
                return Err(ConfigError::BadPort);
            }
        }
        if let Some(mtu) = self.mtu {
            let min = self.min_mtu();
            if mtu < min {
                return Err(ConfigError::MtuTooSmall { mtu, min });
            }
        }
        Ok(())
    }

    /// The per-node prefix length for subnets carved from `cidr`.
    pub fn node_prefix_for(&self, cidr: &IpNet) -> u8 {
        match cidr {
            IpNet::V4(_) => self.node_prefix_v4,
            IpNet::V6(_) => self.node_prefix_v6,
        }
    }

    /// True if `addr` belongs to one of the cluster CIDRs (used for masquerade decisions).
    pub fn contains(&self, addr: &std::net::IpAddr) -> bool {
        self.cluster_cidrs.iter().any(|c| c.contains(addr))
    }

    fn has_v6(&self) -> bool {
        self.cluster_cidrs.iter().any(|c| matches!(c, IpNet::V6(_)))
    }

    fn min_mtu(&self) -> u32 {
        if self.has_v6() {
            MIN_MTU_V6
        } else {
            MIN_MTU_V4
        }
    }

    fn check_one_per_family(&self) -> Result<(), ConfigError> {
        let mut v4: Option<IpNet> = None;
        let mut v6: Option<IpNet> = None;
        for cidr in &self.cluster_cidrs {
            let (slot, family) = match cidr {
                IpNet::V4(_) => (&mut v4, "IPv4"),
                IpNet::V6(_) => (&mut v6, "IPv6"),
            };
            if let Some(first) = slot {
                return Err(ConfigError::DuplicateFamily {
                    family,
                    first: *first,
                    second: *cidr,
                });
            }
            *slot = Some(*cidr);
        }
        Ok(())
    }
}

/// Why no pod MTU could be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "underlay MTU {underlay_mtu} minus {overhead} bytes of encapsulation is below the minimum {min}"
)]
pub struct MtuError {
    /// The underlay interface's MTU.
    pub underlay_mtu: u32,
    /// Encapsulation overhead subtracted.
    pub overhead: u32,
    /// The minimum pod MTU for the cluster's families.
    pub min: u32,
}

/// Pod MTU: the configured one, else the underlay MTU minus the backend's encapsulation
/// overhead (VXLAN: 50 bytes over an IPv4 underlay, 70 over IPv6; host-gw: none).
pub fn derive_mtu(
    cfg: &ClusterConfig,
    underlay_mtu: u32,
    underlay_is_v6: bool,
) -> Result<u32, MtuError> {
    if let Some(mtu) = cfg.mtu {
        return Ok(mtu);
    }
    let overhead = match cfg.backend {
        Backend::HostGw => 0,
        Backend::Vxlan { .. } if underlay_is_v6 => VXLAN_OVERHEAD_V6,
        Backend::Vxlan { .. } => VXLAN_OVERHEAD_V4,
    };
    let min = cfg.min_mtu();
    match underlay_mtu.checked_sub(overhead) {
        Some(mtu) if mtu >= min => Ok(mtu),
        _ => Err(MtuError {
            underlay_mtu,
            overhead,
            min,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> ClusterConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_apply() {
        let c = cfg(r#"{"clusterCidrs":["10.244.0.0/16","fd00:10:244::/48"]}"#);
        assert_eq!(c.node_prefix_v4, 24);
        assert_eq!(c.node_prefix_v6, 64);
        assert_eq!(c.backend, Backend::Vxlan { vni: 1, port: 4789 });
        assert_eq!(c.mtu, None);
        c.validate().unwrap();
    }

    #[test]
    fn backend_json_shapes() {
        let c = cfg(r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"host-gw"}}"#);
        assert_eq!(c.backend, Backend::HostGw);
        let c = cfg(r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"vxlan","vni":42}}"#);
        assert_eq!(
            c.backend,
            Backend::Vxlan {
                vni: 42,
                port: 4789
            }
        );
        let back: ClusterConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(
            serde_json::to_string(&c)
                .unwrap()
                .contains("\"nodePrefixV4\":24")
        );
    }

    #[test]
    fn validation_errors() {
        let bad = |j: &str| cfg(j).validate().unwrap_err();
        assert_eq!(bad(r#"{"clusterCidrs":[]}"#), ConfigError::NoClusterCidr);
        assert!(matches!(
            bad(r#"{"clusterCidrs":["10.244.0.0/16","10.245.0.0/16"]}"#),
            ConfigError::DuplicateFamily { .. }
        ));
        assert!(matches!(
            bad(r#"{"clusterCidrs":["10.244.1.1/16"]}"#),
            ConfigError::NotNetworkAddress { .. }
        ));
        assert!(matches!(
            bad(r#"{"clusterCidrs":["10.244.0.0/16"],"nodePrefixV4":16}"#),
            ConfigError::BadNodePrefix { .. }
        ));
        assert!(matches!(
            bad(r#"{"clusterCidrs":["10.244.0.0/16"],"nodePrefixV4":31}"#),
            ConfigError::BadNodePrefix { .. }
        ));
        assert_eq!(
            bad(r#"{"clusterCidrs":["10.0.0.0/8"],"backend":{"type":"vxlan","vni":16777216}}"#),
            ConfigError::BadVni(16_777_216)
        );
        assert_eq!(
            bad(r#"{"clusterCidrs":["10.0.0.0/8"],"backend":{"type":"vxlan","port":0}}"#),
            ConfigError::BadPort
        );
        assert!(matches!(
            bad(r#"{"clusterCidrs":["fd00::/48"],"mtu":1200}"#),
            ConfigError::MtuTooSmall { min: 1280, .. }
        ));
    }

    #[test]
    fn mtu_derivation() {
        let vx = cfg(r#"{"clusterCidrs":["10.244.0.0/16"]}"#);
        assert_eq!(derive_mtu(&vx, 1500, false), Ok(1450));
        assert_eq!(derive_mtu(&vx, 1500, true), Ok(1430));
        let gw = cfg(r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"host-gw"}}"#);
        assert_eq!(derive_mtu(&gw, 1400, false), Ok(1400));
        let fixed = cfg(r#"{"clusterCidrs":["10.244.0.0/16"],"mtu":1300}"#);
        assert_eq!(derive_mtu(&fixed, 9000, false), Ok(1300));
        let v6 = cfg(r#"{"clusterCidrs":["fd00::/48"]}"#);
        assert!(derive_mtu(&v6, 1300, false).is_err());
        assert!(derive_mtu(&vx, 20, false).is_err());
    }
}
