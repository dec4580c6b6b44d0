//! IPAM for the main plugin: `weft-ipam` runs in-process (no second exec); any other type is
//! delegated by exec as the spec's delegation protocol says.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::Value;
use weft_ipam::{IpamConfig, IpamError, IpamResult};
use weft_proto::{CniResult, CniVersion, Dns, IpConfig, Route};

use crate::delegate::exec_plugin;
use crate::error::PluginError;
use crate::plan::{IpamRoute, PodAddress};
use crate::skel::Request;

/// The IPAM type served in-process.
pub const IN_PROCESS_TYPE: &str = "weft-ipam";

/// Where addresses come from.
#[derive(Debug)]
pub enum IpamBackend {
    /// `ipam` absent or `{}`: layer 2 only, no addresses (reference bridge behaviour).
    None,
    /// `weft-ipam`, in this process.
    InProcess(Box<IpamConfig>),
    /// Any other type, executed from `CNI_PATH`.
    Delegated(String),
}

/// What IPAM gave an attachment.
#[derive(Debug, Clone, Default)]
pub struct IpamOutcome {
    /// Addresses, in range-set order.
    pub addrs: Vec<PodAddress>,
    /// Routes as IPAM listed them.
    pub routes: Vec<IpamRoute>,
    /// DNS from IPAM.
    pub dns: Dns,
}

impl IpamBackend {
    /// Chooses the backend from the request's `ipam` object.
    pub fn from_request(req: &Request) -> Result<IpamBackend, PluginError> {
        let ty = match req.conf.ipam.as_ref() {
            None | Some(Value::Null) => return Ok(IpamBackend::None),
            Some(Value::Object(o)) if o.is_empty() => return Ok(IpamBackend::None),
            Some(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        };
        match ty {
            "" => Err(PluginError::config("ipam.type is missing")),
            IN_PROCESS_TYPE => Ok(IpamBackend::InProcess(Box::new(IpamConfig::from_request(
                &req.raw,
            )?))),
            other => Ok(IpamBackend::Delegated(other.to_string())),
        }
    }

    /// ADD.
    pub fn add(&self, req: &Request) -> Result<IpamOutcome, PluginError> {
        match self {
            IpamBackend::None => Ok(IpamOutcome::default()),
            IpamBackend::InProcess(cfg) => {
                fits_result_version(cfg, req.version)?;
                let requested = requested_ips(req)?;
                let mut store = weft_ipam::open_store(cfg)?;
                let r = weft_ipam::add(
                    cfg,
                    &mut store,
                    req.container_id(),
                    req.ifname(),
                    &requested,
                )?;
                Ok(outcome_from_ipam(&r))
            }
            IpamBackend::Delegated(ty) => {
                let out = exec_plugin(ty, &req.env.path, &req.delegate_env("ADD"), &req.stdin)?;
                let parsed = serde_json::from_slice::<Value>(&out)
                    .map_err(|e| {
                        PluginError::config(format!("IPAM plugin {ty} returned invalid JSON: {e}"))
                    })
                    .and_then(|v| Ok(CniResult::from_json(&v, req.version)?));
                match parsed {
                    Ok(r) => Ok(outcome_from_result(&r)),
                    Err(e) => {
                        // The delegate may hold a reservation we cannot read: release it.
                        let _ =
                            exec_plugin(ty, &req.env.path, &req.delegate_env("DEL"), &req.stdin);
                        Err(e)
                    }
                }
            }
        }
    }

    /// DEL: releases the attachment; returns the addresses it held when known (in-process).
    pub fn del(&self, req: &Request) -> Result<Vec<IpAddr>, PluginError> {
        match self {
            IpamBackend::None => Ok(Vec::new()),
            IpamBackend::InProcess(cfg) => {
                let mut store = weft_ipam::open_store(cfg)?;
                Ok(weft_ipam::del(
                    &mut store,
                    req.container_id(),
                    req.ifname(),
                )?)
            }
            IpamBackend::Delegated(ty) => {
                exec_plugin(ty, &req.env.path, &req.delegate_env("DEL"), &req.stdin)?;
                Ok(Vec::new())
            }
        }
    }

    /// CHECK: the attachment still holds every address in `expected` (the `prevResult`
    /// addresses; in-process), or the delegate agrees.
    pub fn check(&self, req: &Request, expected: &[IpAddr]) -> Result<(), PluginError> {
        match self {
            IpamBackend::None => Ok(()),
            IpamBackend::InProcess(cfg) => {
                let mut store = weft_ipam::open_store(cfg)?;
                let held = weft_ipam::check(&mut store, req.container_id(), req.ifname())?;
                match expected.iter().find(|ip| !held.contains(ip)) {
                    Some(ip) => Err(PluginError::Check(format!(
                        "address {ip} is no longer reserved for this attachment"
                    ))),
                    None => Ok(()),
                }
            }
            IpamBackend::Delegated(ty) => {
                exec_plugin(ty, &req.env.path, &req.delegate_env("CHECK"), &req.stdin)?;
                Ok(())
            }
        }
    }

    /// GC: frees every reservation whose attachment is not valid. Delegates get the same stdin.
    pub fn gc(&self, req: &Request, valid: &HashSet<(String, String)>) -> Result<(), PluginError> {
        match self {
            IpamBackend::None => Ok(()),
            IpamBackend::InProcess(cfg) => {
                let mut store = weft_ipam::open_store(cfg)?;
                let report = weft_ipam::gc(&mut store, valid);
                if report.errors.is_empty() {
                    Ok(())
                } else {
                    Err(PluginError::Ipam(IpamError::Unavailable(
                        report.errors.join("; "),
                    )))
                }
            }
            IpamBackend::Delegated(ty) => {
                exec_plugin(ty, &req.env.path, &req.delegate_env("GC"), &req.stdin)?;
                Ok(())
            }
        }
    }

    /// STATUS: can IPAM serve an ADD now?
    pub fn status(&self, req: &Request) -> Result<(), PluginError> {
        match self {
            IpamBackend::None => Ok(()),
            IpamBackend::InProcess(cfg) => {
                let mut store = weft_ipam::open_store(cfg)?;
                Ok(weft_ipam::status(cfg, &mut store)?)
            }
            IpamBackend::Delegated(ty) => {
                exec_plugin(ty, &req.env.path, &req.delegate_env("STATUS"), &req.stdin)?;
                Ok(())
            }
        }
    }
}

/// Results before 0.3.0 hold one `ip4` and one `ip6`: a configuration that allocates two
/// addresses of one family could not be reported (the second would stay reserved unseen),
/// so it is refused before anything is reserved, as host-local does.
pub fn fits_result_version(cfg: &IpamConfig, version: CniVersion) -> Result<(), PluginError> {
    if version >= CniVersion::V0_3_0 {
        return Ok(());
    }
    let v4 = cfg
        .range_sets
        .iter()
        .filter(|set| {
            set.ranges
                .first()
                .is_some_and(|r| r.subnet.addr().is_ipv4())
        })
        .count();
    let v6 = cfg.range_sets.len() - v4;
    if v4 > 1 || v6 > 1 {
        return Err(PluginError::config(format!(
            "cniVersion {version} results carry one address per family; {v4} IPv4 and {v6} IPv6 range sets configured"
        )));
    }
    Ok(())
}

/// Requested addresses from `CNI_ARGS` `IP`, `args.cni.ips` and `runtimeConfig.ips`.
pub fn requested_ips(req: &Request) -> Result<Vec<IpAddr>, PluginError> {
    Ok(weft_ipam::requested_ips(&req.raw, Some(&req.env.args_raw))?)
}

/// Converts the in-process result.
pub fn outcome_from_ipam(r: &IpamResult) -> IpamOutcome {
    IpamOutcome {
        addrs: r
            .allocations
            .iter()
            .map(|a| PodAddress {
                address: a.address,
                gateway: a.gateway,
            })
            .collect(),
        routes: r
            .routes
            .iter()
            .map(|rt| IpamRoute {
                dst: rt.dst,
                gw: rt.gw,
            })
            .collect(),
        dns: r.dns.as_ref().map(dns_from_ipam).unwrap_or_default(),
    }
}

/// The in-process IPAM result as a CNI IPAM result (no interfaces, `ips` without index).
pub fn ipam_result_to_cni(r: &IpamResult) -> CniResult {
    CniResult {
        interfaces: Vec::new(),
        ips: r
            .allocations
            .iter()
            .map(|a| IpConfig {
                address: a.address,
                gateway: a.gateway,
                interface: None,
            })
            .collect(),
        routes: r
            .routes
            .iter()
            .map(|rt| Route::new(rt.dst, rt.gw))
            .collect(),
        dns: r.dns.as_ref().map(dns_from_ipam).unwrap_or_default(),
    }
}

fn dns_from_ipam(d: &weft_ipam::Dns) -> Dns {
    Dns {
        nameservers: d.nameservers.clone(),
        domain: d.domain.clone(),
        search: d.search.clone(),
        options: d.options.clone(),
    }
}

fn outcome_from_result(r: &CniResult) -> IpamOutcome {
    IpamOutcome {
        addrs: r
            .ips
            .iter()
            .map(|ip| PodAddress {
                address: ip.address,
                gateway: ip.gateway,
            })
            .collect(),
        routes: r
            .routes
            .iter()
            .map(|rt| IpamRoute {
                dst: rt.dst,
                gw: rt.gw,
            })
            .collect(),
        dns: r.dns.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(ranges: Value) -> IpamConfig {
        IpamConfig::from_request(&json!({
            "name": "n", "cniVersion": "0.2.0",
            "ipam": {"type": "weft-ipam", "ranges": ranges, "dataDir": "/nonexistent"}
        }))
        .unwrap()
    }

    #[test]
    fn legacy_results_allow_one_address_per_family() {
        let dual = cfg(json!([[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00::/64"}]]));
        assert!(fits_result_version(&dual, CniVersion::V0_2_0).is_ok());
        let two_v4 = cfg(json!([[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]));
        assert!(fits_result_version(&two_v4, CniVersion::V0_2_0).is_err());
        assert!(fits_result_version(&two_v4, CniVersion::V0_3_0).is_ok());
    }
}
