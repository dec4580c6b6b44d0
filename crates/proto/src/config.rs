//! The request configuration read from stdin (spec "Configuration format" and
//! CONVENTIONS.md `runtimeConfig`/`args`).

use std::net::IpAddr;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::CniError;
use crate::ids::validate_network_name;
use crate::mac::MacAddr;
use crate::result::{CniResult, Dns};
use crate::version::CniVersion;
use crate::wire::null_default;

/// The keys every plugin shares. Unknown keys land in `extra` and are kept (the Ref
/// plugins ignore them, and runtimes leave e.g. `capabilities` in stdin).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// `cniVersion` as given (empty if absent); see the version returned by [`NetConf::parse`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cni_version: String,
    /// Network name, validated by [`NetConf::parse`].
    #[serde(default)]
    pub name: String,
    /// Plugin `type`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub plugin_type: String,
    /// `capabilities` map (name → bool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Map<String, Value>>,
    /// `ipam` object, passed whole to the delegate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Value>,
    /// Top-level `dns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// `ipMasq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_masq: Option<bool>,
    /// `prevResult`, raw; read it with [`NetConf::prev_result`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Value>,
    /// `runtimeConfig` (default when absent or `null`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "RuntimeConfig::is_empty"
    )]
    pub runtime_config: RuntimeConfig,
    /// Structured `args` (`{"cni": {...}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Every other key, untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `runtimeConfig`: capability values the runtime supplied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// `ips` capability: `ip[/prefix]` strings.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ips: Vec<String>,
    /// `mac` capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// `ipRanges` capability (host-local range sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_ranges: Option<Value>,
    /// `portMappings` capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Value>,
    /// `bandwidth` capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Value>,
    /// Other capabilities (`dns`, `deviceID`, `aliases`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RuntimeConfig {
    /// True when nothing was supplied.
    pub fn is_empty(&self) -> bool {
        *self == RuntimeConfig::default()
    }

    /// The `ips` capability, parsed (code 7 on a bad entry).
    pub fn requested_ips(&self) -> Result<Vec<IpRequest>, CniError> {
        self.ips.iter().map(|s| s.parse()).collect()
    }

    /// The `mac` capability, parsed (code 7 when malformed).
    pub fn mac_addr(&self) -> Result<Option<MacAddr>, CniError> {
        self.mac.as_deref().map(parse_mac).transpose()
    }
}

/// A requested address: `ip` or `ip/prefix` (runtimeConfig `ips`, `args.cni.ips`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRequest {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length when given.
    pub prefix: Option<u8>,
}

impl FromStr for IpRequest {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, CniError> {
        let bad = || CniError::invalid_config(format!("invalid requested IP {s:?}"));
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix.is_some_and(|p| p > max) {
            return Err(bad());
        }
        Ok(IpRequest { addr, prefix })
    }
}

fn parse_mac(s: &str) -> Result<MacAddr, CniError> {
    s.parse()
        .map_err(|e| CniError::invalid_config(format!("{e}")))
}

fn decode_err(e: serde_json::Error) -> CniError {
    CniError::decode(format!("error parsing network config: {e}"))
}

impl NetConf {
    /// Parses stdin in the Ref skel's order: JSON object (6), `name` present and valid
    /// (7; 6 if not a string), `cniVersion` (absent = 0.1.0 like libcni; unknown = 1),
    /// then the typed fields (6).
    pub fn parse(bytes: &[u8]) -> Result<(NetConf, CniVersion), CniError> {
        Self::parse_raw(bytes).map(|(conf, version, _)| (conf, version))
    }

    /// Like [`NetConf::parse`], also returning the whole JSON document, so a plugin can
    /// read its own keys (see [`decode_plugin_conf`]) or hand it to a delegate.
    pub fn parse_raw(bytes: &[u8]) -> Result<(NetConf, CniVersion, Value), CniError> {
        let raw: Value = serde_json::from_slice(bytes).map_err(decode_err)?;
        let obj = raw
            .as_object()
            .ok_or_else(|| CniError::decode("network config is not a JSON object"))?;
        match obj.get("name") {
            None | Some(Value::Null) => {
                return Err(CniError::invalid_config("missing network name"));
            }
            Some(Value::String(name)) => validate_network_name(name)?,
            Some(other) => {
                return Err(CniError::decode(format!(
                    "network name is not a string: {other}"
                )));
            }
        }
        let version = CniVersion::from_config_value(obj.get("cniVersion"))?;
        let conf = NetConf::deserialize(&raw).map_err(decode_err)?;
        Ok((conf, version, raw))
    }

    /// `prevResult` read as a result; without its own `cniVersion` it is read as `version`.
    pub fn prev_result(&self, version: CniVersion) -> Result<Option<CniResult>, CniError> {
        self.prev_result
            .as_ref()
            .map(|v| CniResult::from_json(v, version))
            .transpose()
    }

    fn args_cni(&self, key: &str) -> Option<&Value> {
        self.args.as_ref()?.get("cni")?.get(key)
    }

    /// `args.cni.ips`, parsed (code 7 when not a list of `ip[/prefix]` strings).
    pub fn args_cni_ips(&self) -> Result<Vec<IpRequest>, CniError> {
        let Some(v) = self.args_cni("ips") else {
            return Ok(Vec::new());
        };
        let list: Vec<String> = Vec::deserialize(v)
            .map_err(|e| CniError::invalid_config(format!("args.cni.ips: {e}")))?;
        list.iter().map(|s| s.parse()).collect()
    }

    /// `args.cni.mac`, parsed (code 7 when malformed).
    pub fn args_cni_mac(&self) -> Result<Option<MacAddr>, CniError> {
        match self.args_cni("mac") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_mac(s).map(Some),
            Some(other) => Err(CniError::invalid_config(format!(
                "args.cni.mac is not a string: {other}"
            ))),
        }
    }
}

/// Decodes the plugin's own view of the config from the raw document (code 6 on failure).
pub fn decode_plugin_conf<T: DeserializeOwned>(raw: &Value) -> Result<T, CniError> {
    T::deserialize(raw).map_err(decode_err)
}
