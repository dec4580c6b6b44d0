//! Result wire format of spec 0.3.0, 0.3.1 and 0.4.0: `ips[]` carry `version`, no extras.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{nonempty, null_default};
use crate::error::CniError;
use crate::result::{CniResult, Dns, Interface, IpConfig, Route};

/// 0.3.x/0.4.0 Success result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultV04 {
    /// Spec version string.
    #[serde(default)]
    pub cni_version: String,
    /// Interfaces.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub interfaces: Vec<InterfaceV04>,
    /// Addresses.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub ips: Vec<IpConfigV04>,
    /// Routes (`dst`, `gw` only).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub routes: Vec<RouteV04>,
    /// DNS; omitted when empty (Go writes `{}`; parsers accept both).
    #[serde(
        default,
        skip_serializing_if = "Dns::is_empty",
        deserialize_with = "null_default"
    )]
    pub dns: Dns,
}

/// 0.3.x/0.4.0 interface.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InterfaceV04 {
    /// Name.
    pub name: String,
    /// MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Netns path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// 0.3.x/0.4.0 address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IpConfigV04 {
    /// `"4"` or `"6"`; required on output, checked against the address on input.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Interface index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// Address with prefix.
    pub address: IpNet,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// 0.x route (also used inside 0.2.0 `ip4`/`ip6`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteV04 {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

fn family(addr: &IpNet) -> &'static str {
    match addr {
        IpNet::V4(_) => "4",
        IpNet::V6(_) => "6",
    }
}

impl TryFrom<ResultV04> for CniResult {
    type Error = CniError;

    fn try_from(w: ResultV04) -> Result<Self, CniError> {
        let ips = w
            .ips
            .into_iter()
            .map(|ip| {
                // Go 0.4 ignores the field on read; a contradiction is still a broken result.
                if !ip.version.is_empty() && ip.version != family(&ip.address) {
                    return Err(CniError::decode(format!(
                        "ips entry {} has version {:?}",
                        ip.address, ip.version
                    )));
                }
                Ok(IpConfig {
                    address: ip.address,
                    gateway: ip.gateway,
                    interface: ip.interface,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(CniResult {
            interfaces: w
                .interfaces
                .into_iter()
                .map(|i| Interface {
                    name: i.name,
                    mac: nonempty(i.mac),
                    sandbox: nonempty(i.sandbox),
                    ..Interface::default()
                })
                .collect(),
            ips,
            routes: w
                .routes
                .into_iter()
                .map(|r| Route::new(r.dst, r.gw))
                .collect(),
            dns: w.dns,
        })
    }
}

impl ResultV04 {
    /// 0.3.x/0.4.0 form of `r`: adds `ips[].version`, drops interface and route extras.
    pub fn from_model(r: &CniResult, version: &str) -> ResultV04 {
        ResultV04 {
            cni_version: version.to_owned(),
            interfaces: r
                .interfaces
                .iter()
                .map(|i| InterfaceV04 {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    sandbox: i.sandbox.clone(),
                })
                .collect(),
            ips: r
                .ips
                .iter()
                .map(|ip| IpConfigV04 {
                    version: family(&ip.address).to_owned(),
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: r
                .routes
                .iter()
                .map(|rt| RouteV04 {
                    dst: rt.dst,
                    gw: rt.gw,
                })
                .collect(),
            dns: r.dns.clone(),
        }
    }
}
