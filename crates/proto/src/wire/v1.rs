//! Result wire format of spec 1.0.0 and 1.1.0 (1.0.0 lacks the interface and route extras).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{nonempty, nonzero, null_default};
use crate::result::{CniResult, Dns, Interface, IpConfig, Route};

/// 1.x Success result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultV1 {
    /// Spec version string.
    #[serde(default)]
    pub cni_version: String,
    /// Interfaces.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub interfaces: Vec<InterfaceV1>,
    /// Addresses.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub ips: Vec<IpConfigV1>,
    /// Routes.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub routes: Vec<RouteV1>,
    /// DNS; omitted when empty, like the Go reference.
    #[serde(
        default,
        skip_serializing_if = "Dns::is_empty",
        deserialize_with = "null_default"
    )]
    pub dns: Dns,
}

/// 1.x interface.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceV1 {
    /// Name.
    pub name: String,
    /// MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Netns path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Socket path (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// PCI id (1.1.0).
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// 1.x address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IpConfigV1 {
    /// Interface index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// Address with prefix.
    pub address: IpNet,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// 1.x route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteV1 {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Priority (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Scope (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

impl From<InterfaceV1> for Interface {
    fn from(w: InterfaceV1) -> Self {
        Interface {
            name: w.name,
            mac: nonempty(w.mac),
            sandbox: nonempty(w.sandbox),
            mtu: nonzero(w.mtu),
            socket_path: nonempty(w.socket_path),
            pci_id: nonempty(w.pci_id),
        }
    }
}

impl From<&Interface> for InterfaceV1 {
    fn from(i: &Interface) -> Self {
        InterfaceV1 {
            name: i.name.clone(),
            mac: i.mac.clone(),
            mtu: i.mtu,
            sandbox: i.sandbox.clone(),
            socket_path: i.socket_path.clone(),
            pci_id: i.pci_id.clone(),
        }
    }
}

impl From<RouteV1> for Route {
    fn from(w: RouteV1) -> Self {
        Route {
            dst: w.dst,
            gw: w.gw,
            mtu: nonzero(w.mtu),
            advmss: nonzero(w.advmss),
            priority: nonzero(w.priority),
            // table and scope are pointers in Go: 0 is a real value there.
            table: w.table,
            scope: w.scope,
        }
    }
}

impl From<&Route> for RouteV1 {
    fn from(r: &Route) -> Self {
        RouteV1 {
            dst: r.dst,
            gw: r.gw,
            mtu: r.mtu,
            advmss: r.advmss,
            priority: r.priority,
            table: r.table,
            scope: r.scope,
        }
    }
}

impl From<ResultV1> for CniResult {
    fn from(w: ResultV1) -> Self {
        CniResult {
            interfaces: w.interfaces.into_iter().map(Interface::from).collect(),
            ips: w
                .ips
                .into_iter()
                .map(|ip| IpConfig {
                    address: ip.address,
                    gateway: ip.gateway,
                    interface: ip.interface,
                })
                .collect(),
            routes: w.routes.into_iter().map(Route::from).collect(),
            dns: w.dns,
        }
    }
}

impl ResultV1 {
    /// Full 1.1.0 form of `r`, labelled `version`.
    pub fn from_model(r: &CniResult, version: &str) -> ResultV1 {
        ResultV1 {
            cni_version: version.to_owned(),
            interfaces: r.interfaces.iter().map(InterfaceV1::from).collect(),
            ips: r
                .ips
                .iter()
                .map(|ip| IpConfigV1 {
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: r.routes.iter().map(RouteV1::from).collect(),
            dns: r.dns.clone(),
        }
    }

    /// Drops the fields 1.1.0 added, for 1.0.0 output.
    pub fn strip_1_1_fields(&mut self) {
        for i in &mut self.interfaces {
            i.mtu = None;
            i.socket_path = None;
            i.pci_id = None;
        }
        for r in &mut self.routes {
            r.mtu = None;
            r.advmss = None;
            r.priority = None;
            r.table = None;
            r.scope = None;
        }
    }
}
