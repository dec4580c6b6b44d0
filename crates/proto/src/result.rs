//! The one internal result model; versioned wire forms live in [`crate::wire`] and
//! conversion in `convert.rs`.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// An ADD Success result, independent of the wire version (a superset of 1.1.0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    /// Interfaces created or touched, in the order plugins reported them.
    pub interfaces: Vec<Interface>,
    /// Assigned addresses.
    pub ips: Vec<IpConfig>,
    /// Routes; a route without `gw` uses the gateway of the matching family.
    pub routes: Vec<Route>,
    /// DNS settings.
    pub dns: Dns,
}

/// One interface entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// MAC address text, as reported.
    pub mac: Option<String>,
    /// Netns path for container interfaces (= `CNI_NETNS`); `None` for host interfaces.
    pub sandbox: Option<String>,
    /// MTU (1.1.0 only).
    pub mtu: Option<u32>,
    /// vhost-user socket path (1.1.0 only).
    pub socket_path: Option<String>,
    /// PCI address of the device (1.1.0 only).
    pub pci_id: Option<String>,
}

/// One address: host address with prefix (not the network address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Address with prefix length, e.g. `10.1.0.5/16`.
    pub address: IpNet,
    /// Default gateway for this subnet, if any.
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`]; IPAM results leave it out.
    pub interface: Option<usize>,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; `None` means "the family's gateway from `ips`".
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0 only).
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0 only).
    pub advmss: Option<u32>,
    /// Priority, lower wins (1.1.0 only).
    pub priority: Option<u32>,
    /// Routing table (1.1.0 only).
    pub table: Option<u32>,
    /// Scope: 0 global, 253 link, 254 host (1.1.0 only).
    pub scope: Option<u32>,
}

impl Route {
    /// A plain route with no 1.1.0 extras.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings; the same shape in results and in the config's `dns` key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name server addresses (text, as the spec has them).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::wire::null_default"
    )]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::wire::null_default"
    )]
    pub search: Vec<String>,
    /// Resolver options, e.g. `ndots:5`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::wire::null_default"
    )]
    pub options: Vec<String>,
}

impl Dns {
    /// True when no field is set; the Ref omits such a `dns` from 1.x output.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.as_deref().unwrap_or("").is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}
