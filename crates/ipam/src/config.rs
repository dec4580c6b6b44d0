//! Parsing and validation of host-local's `ipam` configuration.
//!
//! Delegated IPAM receives the whole request configuration, so parsing starts from the
//! top-level object: `name` names the network, `ipam.*` configures the pools and
//! `runtimeConfig.ipRanges` (capability `ipRanges`) is prepended to them.

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dns::Dns;
use crate::error::IpamError;
use crate::names::validate_network_name;
use crate::range::{Range, RangeSet, same_family};

/// host-local's default `dataDir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// A route from `ipam.routes`, passed through to the result unchanged: a missing `gw`
/// stays missing (the interface plugin fills in the family gateway), unknown keys such as
/// `mtu` or `priority` are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Destination network.
    pub dst: IpNet,
    /// Next hop, if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Any other keys of the route object, verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// The validated IPAM configuration of one network.
#[derive(Debug, Clone, PartialEq)]
pub struct IpamConfig {
    /// Network name (validated; the store's directory name under `data_dir`).
    pub network: String,
    /// Effective range sets: `runtimeConfig.ipRanges`, then the legacy top-level range,
    /// then `ranges`. One address is allocated per set; set order is result order.
    pub range_sets: Vec<RangeSet>,
    /// `ipam.routes`, verbatim.
    pub routes: Vec<Route>,
    /// `ipam.dataDir`, default [`DEFAULT_DATA_DIR`].
    pub data_dir: PathBuf,
    /// DNS parsed from `ipam.resolvConf`, if that key is set.
    pub dns: Option<Dns>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RangeSpec {
    subnet: String,
    range_start: Option<IpAddr>,
    range_end: Option<IpAddr>,
    gateway: Option<IpAddr>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpamSpec {
    // Legacy single range at the top level of `ipam`.
    subnet: Option<String>,
    range_start: Option<IpAddr>,
    range_end: Option<IpAddr>,
    gateway: Option<IpAddr>,
    #[serde(default)]
    ranges: Vec<Vec<RangeSpec>>,
    #[serde(default)]
    routes: Vec<Route>,
    data_dir: Option<PathBuf>,
    resolv_conf: Option<PathBuf>,
}

fn invalid(msg: impl Into<String>) -> IpamError {
    IpamError::InvalidConfig(msg.into())
}

impl IpamConfig {
    /// Parses the whole request configuration, reading `ipam.resolvConf` from disk.
    pub fn from_request(request: &Value) -> Result<IpamConfig, IpamError> {
        Self::parse_with(request, |path| std::fs::read_to_string(path))
    }

    /// Like [`IpamConfig::from_request`] with an injectable file reader for `resolvConf`.
    pub fn parse_with(
        request: &Value,
        read_file: impl FnOnce(&Path) -> io::Result<String>,
    ) -> Result<IpamConfig, IpamError> {
        let network = request
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("missing network \"name\""))?;
        validate_network_name(network)?;
        let ipam_value = request
            .get("ipam")
            .filter(|v| v.is_object())
            .ok_or_else(|| invalid("missing \"ipam\" object"))?;
        let spec = IpamSpec::deserialize(ipam_value).map_err(|e| invalid(format!("ipam: {e}")))?;
        let runtime_ranges = match request.pointer("/runtimeConfig/ipRanges") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => Vec::<Vec<RangeSpec>>::deserialize(v)
                .map_err(|e| invalid(format!("runtimeConfig.ipRanges: {e}")))?,
        };
        let mut specs = runtime_ranges;
        if let Some(subnet) = spec.subnet {
            specs.push(vec![RangeSpec {
                subnet,
                range_start: spec.range_start,
                range_end: spec.range_end,
                gateway: spec.gateway,
            }]);
        }
        specs.extend(spec.ranges);
        let range_sets = build_range_sets(specs)?;
        let dns = match spec.resolv_conf {
            None => None,
            Some(path) => {
                let text = read_file(&path).map_err(|e| {
                    invalid(format!("cannot read resolvConf {}: {e}", path.display()))
                })?;
                Some(Dns::parse_resolv_conf(&text))
            }
        };
        Ok(IpamConfig {
            network: network.to_owned(),
            range_sets,
            routes: spec.routes,
            data_dir: spec
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            dns,
        })
    }
}

fn build_range(spec: RangeSpec) -> Result<Range, IpamError> {
    let subnet: IpNet = spec
        .subnet
        .parse()
        .map_err(|_| invalid(format!("subnet {:?} is not a CIDR", spec.subnet)))?;
    Range::build(subnet, spec.range_start, spec.range_end, spec.gateway).map_err(invalid)
}

fn build_range_sets(specs: Vec<Vec<RangeSpec>>) -> Result<Vec<RangeSet>, IpamError> {
    if specs.is_empty() {
        return Err(invalid("no IP ranges specified"));
    }
    let mut sets = Vec::with_capacity(specs.len());
    for (index, set_specs) in specs.into_iter().enumerate() {
        let ranges = set_specs
            .into_iter()
            .map(build_range)
            .collect::<Result<Vec<_>, _>>()?;
        let set = RangeSet { ranges };
        check_set(index, &set)?;
        sets.push(set);
    }
    check_no_overlap_between_sets(&sets)?;
    Ok(sets)
}

fn check_set(index: usize, set: &RangeSet) -> Result<(), IpamError> {
    let Some(first) = set.ranges.first() else {
        return Err(invalid(format!("range set {index} is empty")));
    };
    for (i, range) in set.ranges.iter().enumerate() {
        if !same_family(range.range_start, first.range_start) {
            return Err(invalid(format!(
                "range set {index} mixes IPv4 and IPv6 ({first} and {range})"
            )));
        }
        for other in set.ranges.iter().skip(i + 1) {
            if range.overlaps(other) {
                return Err(invalid(format!(
                    "range set {index}: {range} overlaps {other}"
                )));
            }
        }
    }
    Ok(())
}

fn check_no_overlap_between_sets(sets: &[RangeSet]) -> Result<(), IpamError> {
    for (i, set) in sets.iter().enumerate() {
        for (j, other) in sets.iter().enumerate().skip(i + 1) {
            for a in &set.ranges {
                if let Some(b) = other.ranges.iter().find(|b| a.overlaps(b)) {
                    return Err(invalid(format!(
                        "range set {i} ({a}) overlaps range set {j} ({b})"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Collects requested addresses from the places host-local reads them: `CNI_ARGS` key `IP`
/// (comma separated allowed), `args.cni.ips` and `runtimeConfig.ips` (capability `ips`).
/// Entries may carry a prefix (`10.1.2.3/24`); only the address is used. Duplicates are
/// dropped, first occurrence wins.
pub fn requested_ips(request: &Value, cni_args: Option<&str>) -> Result<Vec<IpAddr>, IpamError> {
    let mut texts: Vec<String> = Vec::new();
    for pair in cni_args.unwrap_or("").split(';') {
        if let Some(("IP", value)) = pair.split_once('=') {
            texts.extend(value.split(',').map(str::to_owned));
        }
    }
    for pointer in ["/args/cni/ips", "/runtimeConfig/ips"] {
        match request.pointer(pointer) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let text = item
                        .as_str()
                        .ok_or_else(|| invalid(format!("{pointer}: {item} is not a string")))?;
                    texts.push(text.to_owned());
                }
            }
            Some(other) => return Err(invalid(format!("{pointer}: {other} is not a list"))),
        }
    }
    let mut seen = HashSet::new();
    let mut ips = Vec::new();
    for text in texts.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let address = text.split_once('/').map_or(text, |(addr, _)| addr);
        let ip: IpAddr = address
            .parse()
            .map_err(|_| invalid(format!("requested IP {text:?} is not an IP address")))?;
        if seen.insert(ip) {
            ips.push(ip);
        }
    }
    Ok(ips)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
