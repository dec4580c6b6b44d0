//! The `weft` plugin's own configuration: the reference `bridge` plugin's fields plus `mode`,
//! parsed from the same request bytes as the common `NetConf`, then validated into `MainConf`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::error::PluginError;
use crate::policy_claim::{self, ClaimTarget};

/// How a pod is wired to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// veth into a Linux bridge that carries the gateway (the reference `bridge` plugin).
    #[default]
    Bridge,
    /// Routed point-to-point: no bridge, one host route per pod, the node answers for the
    /// gateway (the reference `ptp` plugin, as Calico wires pods).
    Ptp,
}

/// Raw plugin-specific fields as they appear on the wire (camelCase, all optional).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawMainConf {
    mode: Option<Mode>,
    bridge: Option<String>,
    is_gateway: bool,
    is_default_gateway: bool,
    force_address: bool,
    ip_masq: bool,
    mtu: Option<u32>,
    hairpin_mode: bool,
    promisc_mode: bool,
    macspoofchk: bool,
    /// Path of a node-local facts file written by `weftd` (subnets, MTU); optional.
    node_config: Option<PathBuf>,
    /// weftd's policy claim socket; optional.
    policy_socket: Option<PathBuf>,
    /// How long ADD waits for weftd's answer to the claim.
    policy_timeout_ms: Option<u64>,
}

/// The validated main-plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainConf {
    /// Wiring mode.
    pub mode: Mode,
    /// Bridge name (bridge mode only).
    pub bridge: String,
    /// Put the gateway address on the bridge and enable forwarding.
    pub is_gateway: bool,
    /// Add a default route via the gateway inside the pod.
    pub is_default_gateway: bool,
    /// Replace a different IPv4 address already on the bridge instead of failing.
    pub force_address: bool,
    /// Masquerade pod traffic that leaves the pod subnet.
    pub ip_masq: bool,
    /// MTU for the veth pair (and the bridge); `None` keeps the kernel default.
    pub mtu: Option<u32>,
    /// Let the bridge send a pod's frames back out of the same port.
    pub hairpin_mode: bool,
    /// Put the bridge into promiscuous mode.
    pub promisc_mode: bool,
    /// Drop frames from the pod whose source MAC is not the pod's.
    pub macspoofchk: bool,
    /// Node-local facts file written by `weftd`.
    pub node_config: Option<PathBuf>,
    /// Where ADD claims the pod's addresses before wiring it (`policySocket`,
    /// `policyTimeoutMs`); `None` = no claim.
    pub policy: Option<ClaimTarget>,
}

/// Default bridge name, as the reference plugin uses.
pub const DEFAULT_BRIDGE: &str = "cni0";

impl MainConf {
    /// Parses and validates the plugin-specific fields of a request configuration.
    pub fn from_value(raw: &Value) -> Result<Self, PluginError> {
        let r: RawMainConf = serde_json::from_value(raw.clone())
            .map_err(|e| PluginError::config(format!("invalid plugin configuration: {e}")))?;
        let mode = r.mode.unwrap_or_default();
        let bridge = r.bridge.unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        if mode == Mode::Bridge {
            validate_ifname("bridge", &bridge)?;
        }
        if r.hairpin_mode && r.promisc_mode {
            return Err(PluginError::config(
                "hairpinMode and promiscMode cannot both be true",
            ));
        }
        if let Some(mtu) = r.mtu
            && mtu != 0
            && !(68..=65535).contains(&mtu)
        {
            return Err(PluginError::config(format!(
                "mtu {mtu} is out of range (68..=65535, or 0 for the kernel default)"
            )));
        }
        let policy = policy_target(r.policy_socket, r.policy_timeout_ms)?;
        Ok(MainConf {
            mode,
            bridge,
            // isDefaultGateway implies isGateway, as in the reference plugin.
            is_gateway: r.is_gateway || r.is_default_gateway,
            is_default_gateway: r.is_default_gateway,
            force_address: r.force_address,
            ip_masq: r.ip_masq,
            mtu: r.mtu.filter(|m| *m != 0),
            hairpin_mode: r.hairpin_mode,
            promisc_mode: r.promisc_mode,
            macspoofchk: r.macspoofchk,
            node_config: r.node_config,
            policy,
        })
    }
}

fn policy_target(
    socket: Option<PathBuf>,
    timeout_ms: Option<u64>,
) -> Result<Option<ClaimTarget>, PluginError> {
    let timeout_ms = timeout_ms.unwrap_or(policy_claim::DEFAULT_TIMEOUT_MS);
    if timeout_ms == 0 {
        return Err(PluginError::config(
            "policyTimeoutMs must be at least 1 (it bounds the wait for weftd)",
        ));
    }
    let Some(socket) = socket else {
        return Ok(None);
    };
    if socket.as_os_str().is_empty() {
        return Err(PluginError::config("policySocket is empty"));
    }
    Ok(Some(ClaimTarget {
        socket,
        timeout: Duration::from_millis(timeout_ms),
    }))
}

/// Interface names become kernel link names: at most 15 bytes, no `/`, `:` or whitespace.
fn validate_ifname(field: &str, name: &str) -> Result<(), PluginError> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0');
    if bad {
        return Err(PluginError::config(format!(
            "{field} {name:?} is not a valid interface name (1-15 bytes, no '/', ':' or whitespace)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_match_the_reference_bridge() {
        let c = MainConf::from_value(&json!({"type": "weft"})).unwrap();
        assert_eq!(c.mode, Mode::Bridge);
        assert_eq!(c.bridge, "cni0");
        assert!(!c.is_gateway && !c.ip_masq && c.mtu.is_none());
    }

    #[test]
    fn default_gateway_implies_gateway() {
        let c = MainConf::from_value(&json!({"isDefaultGateway": true})).unwrap();
        assert!(c.is_gateway && c.is_default_gateway);
    }

    #[test]
    fn rejects_hairpin_with_promisc() {
        let e = MainConf::from_value(&json!({"hairpinMode": true, "promiscMode": true}));
        assert!(e.is_err());
    }

    #[test]
    fn rejects_bad_bridge_names_and_mtu() {
        for b in ["", "a/b", "sixteen-chars-xx", "a b", ".."] {
            assert!(
                MainConf::from_value(&json!({ "bridge": b })).is_err(),
                "{b}"
            );
        }
        assert!(MainConf::from_value(&json!({"mtu": 20})).is_err());
        assert!(MainConf::from_value(&json!({"mode": "ipvlan"})).is_err());
    }

    #[test]
    fn ptp_mode_and_unknown_fields() {
        let c =
            MainConf::from_value(&json!({"mode": "ptp", "foo": {"bar": 1}, "mtu": 1400})).unwrap();
        assert_eq!(c.mode, Mode::Ptp);
        assert_eq!(c.mtu, Some(1400));
    }

    #[test]
    fn policy_socket_and_timeout() {
        let c = MainConf::from_value(&json!({"type": "weft"})).unwrap();
        assert!(c.policy.is_none());
        let c = MainConf::from_value(&json!({"policySocket": "/run/weft/policy.sock"})).unwrap();
        let p = c.policy.unwrap();
        assert_eq!(p.socket, PathBuf::from("/run/weft/policy.sock"));
        assert_eq!(p.timeout, Duration::from_millis(10_000));
        let c =
            MainConf::from_value(&json!({"policySocket": "/s", "policyTimeoutMs": 250})).unwrap();
        assert_eq!(c.policy.unwrap().timeout, Duration::from_millis(250));
        assert!(
            MainConf::from_value(&json!({"policySocket": "/s", "policyTimeoutMs": 0})).is_err()
        );
        assert!(MainConf::from_value(&json!({"policySocket": ""})).is_err());
        assert!(MainConf::from_value(&json!({"policyTimeoutMs": -1})).is_err());
    }
}
