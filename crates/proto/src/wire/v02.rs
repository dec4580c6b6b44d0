//! Result wire format of spec 0.1.0 and 0.2.0: one `ip4` and one `ip6` block.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::null_default;
use super::v04::RouteV04;
use crate::codes;
use crate::error::CniError;
use crate::result::{CniResult, Dns, IpConfig, Route};

/// 0.1.0/0.2.0 Success result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultV02 {
    /// Spec version string.
    #[serde(default)]
    pub cni_version: String,
    /// The IPv4 block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip4: Option<IpBlockV02>,
    /// The IPv6 block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<IpBlockV02>,
    /// DNS.
    #[serde(
        default,
        skip_serializing_if = "Dns::is_empty",
        deserialize_with = "null_default"
    )]
    pub dns: Dns,
}

/// One family's address, gateway and routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IpBlockV02 {
    /// Address with prefix.
    pub ip: IpNet,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Routes of this family.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub routes: Vec<RouteV04>,
}

fn block(r: &CniResult, v4: bool) -> Option<IpBlockV02> {
    let ip = r.ips.iter().find(|ip| ip.address.addr().is_ipv4() == v4)?;
    let routes = r
        .routes
        .iter()
        .filter(|rt| rt.dst.addr().is_ipv4() == v4)
        .map(|rt| RouteV04 {
            dst: rt.dst,
            gw: rt.gw,
        })
        .collect();
    Some(IpBlockV02 {
        ip: ip.address,
        gateway: ip.gateway,
        routes,
    })
}

impl ResultV02 {
    /// 0.2.0 form of `r`: first IPv4 and first IPv6 address only, routes split by the
    /// family of `dst` (dropped when that family has no address), no interfaces.
    /// A result without any address cannot be expressed: code 1.
    pub fn from_model(r: &CniResult, version: &str) -> Result<ResultV02, CniError> {
        let out = ResultV02 {
            cni_version: version.to_owned(),
            ip4: block(r, true),
            ip6: block(r, false),
            dns: r.dns.clone(),
        };
        if out.ip4.is_none() && out.ip6.is_none() {
            return Err(CniError::new(
                codes::INCOMPATIBLE_VERSION,
                format!("cannot convert result to cniVersion {version}: no IP addresses"),
            ));
        }
        Ok(out)
    }
}

impl From<ResultV02> for CniResult {
    fn from(w: ResultV02) -> Self {
        let mut out = CniResult {
            dns: w.dns,
            ..CniResult::default()
        };
        for b in [w.ip4, w.ip6].into_iter().flatten() {
            out.ips.push(IpConfig {
                address: b.ip,
                gateway: b.gateway,
                interface: None,
            });
            out.routes
                .extend(b.routes.into_iter().map(|r| Route::new(r.dst, r.gw)));
        }
        out
    }
}
