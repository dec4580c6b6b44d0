//! The reference `portmap` configuration and the pod addresses it maps to, parsed and
//! validated without side effects.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;
use weft_proto::CniResult;

/// Transport protocol of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

/// One validated `portMappings` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    /// Port on the node.
    pub host_port: u16,
    /// Port in the pod.
    pub container_port: u16,
    /// Protocol.
    pub proto: Proto,
    /// Only this node address (and its family); `None` = every local address.
    pub host_ip: Option<IpAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMapping {
    host_port: i64,
    container_port: i64,
    #[serde(default)]
    protocol: String,
    #[serde(default, rename = "hostIP")]
    host_ip: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawPortmap {
    snat: Option<bool>,
    masq_all: bool,
    mark_masq_bit: Option<i64>,
    external_set_mark_chain: Option<String>,
    #[serde(rename = "conditionsV4")]
    conditions_v4: Option<Vec<String>>,
    #[serde(rename = "conditionsV6")]
    conditions_v6: Option<Vec<String>>,
}

/// The validated plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortmapConf {
    /// Masquerade hairpin (pod subnet → own hostPort) and localhost-originated traffic.
    pub snat: bool,
    /// Masquerade every connection to a hostPort, whatever its source.
    pub masq_all: bool,
    /// `markMasqBit` (validated; see the module docs of `portmap` for how masquerading works).
    pub mark_masq_bit: u8,
    /// `externalSetMarkChain` (validated only).
    pub external_set_mark_chain: Option<String>,
    /// Extra nft match tokens for IPv4 DNAT rules.
    pub conditions_v4: Vec<String>,
    /// Extra nft match tokens for IPv6 DNAT rules.
    pub conditions_v6: Vec<String>,
}

/// The reference default mark bit.
pub const DEFAULT_MARK_MASQ_BIT: u8 = 13;

impl PortmapConf {
    /// Reads the plugin keys of the raw request.
    pub fn from_value(raw: &Value) -> Result<PortmapConf, String> {
        let r: RawPortmap = serde_json::from_value(raw.clone())
            .map_err(|e| format!("invalid portmap config: {e}"))?;
        if r.mark_masq_bit.is_some() && r.external_set_mark_chain.is_some() {
            return Err("markMasqBit and externalSetMarkChain are mutually exclusive".into());
        }
        let bit = r.mark_masq_bit.map_or(Ok(DEFAULT_MARK_MASQ_BIT), |b| {
            u8::try_from(b)
                .ok()
                .filter(|b| *b <= 31)
                .ok_or_else(|| format!("markMasqBit {b} must be between 0 and 31"))
        })?;
        if let Some(chain) = &r.external_set_mark_chain {
            weft_datapath::nft::validate_ident(chain)
                .map_err(|e| format!("externalSetMarkChain: {e}"))?;
        }
        Ok(PortmapConf {
            snat: r.snat.unwrap_or(true),
            masq_all: r.masq_all,
            mark_masq_bit: bit,
            external_set_mark_chain: r.external_set_mark_chain,
            conditions_v4: validate_conditions("conditionsV4", r.conditions_v4)?,
            conditions_v6: validate_conditions("conditionsV6", r.conditions_v6)?,
        })
    }
}

/// Conditions are nft match tokens inserted into the DNAT rules. iptables-style ones
/// (leading `-` or `!`) cannot be applied by an nftables-only plugin and are refused,
/// as are characters that would end the rule or start a comment.
fn validate_conditions(field: &str, list: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let list = list.unwrap_or_default();
    for c in &list {
        let t = c.trim_start();
        if t.starts_with('-') || t.starts_with('!') {
            return Err(format!(
                "{field} {c:?} uses iptables syntax; weft-portmap only applies nftables conditions"
            ));
        }
        if c.chars()
            .any(|ch| matches!(ch, ';' | '#' | '\n' | '\r' | '"' | '\\'))
        {
            return Err(format!("{field} {c:?} contains a forbidden character"));
        }
    }
    Ok(list)
}

/// Parses `runtimeConfig.portMappings` (absent or `null` = none).
pub fn parse_mappings(value: Option<&Value>) -> Result<Vec<PortMapping>, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let raw: Vec<RawMapping> = serde_json::from_value(value.clone())
        .map_err(|e| format!("invalid runtimeConfig.portMappings: {e}"))?;
    raw.iter().map(mapping).collect()
}

fn port(field: &str, p: i64) -> Result<u16, String> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid {field} {p}: must be 1..65535"))
}

fn mapping(r: &RawMapping) -> Result<PortMapping, String> {
    let proto = match r.protocol.to_ascii_lowercase().as_str() {
        "" | "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => Proto::Sctp,
        other => return Err(format!("unknown protocol {other:?} in portMappings")),
    };
    let host_ip = match r.host_ip.as_str() {
        "" => None,
        text => {
            let ip: IpAddr = text
                .parse()
                .map_err(|_| format!("invalid hostIP {text:?} in portMappings"))?;
            // 0.0.0.0 / :: mean "any address of that family".
            Some(ip)
        }
    };
    Ok(PortMapping {
        host_port: port("hostPort", r.host_port)?,
        container_port: port("containerPort", r.container_port)?,
        proto,
        host_ip,
    })
}

/// The pod addresses mappings point at (first IPv4 and first IPv6 of the pod interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Targets {
    /// Pod IPv4 address with its subnet prefix.
    pub v4: Option<IpNet>,
    /// Pod IPv6 address with its subnet prefix.
    pub v6: Option<IpNet>,
}

/// Picks the addresses of `ifname` (an entry whose interface is in a sandbox, or that
/// names no interface) from `prevResult`, as the reference does.
pub fn targets(prev: &CniResult, ifname: &str) -> Targets {
    let mut t = Targets::default();
    for ip in &prev.ips {
        let ours = match ip.interface {
            None => true,
            Some(i) => prev.interfaces.get(i).is_some_and(|iface| {
                iface.name == ifname && iface.sandbox.as_deref().is_some_and(|s| !s.is_empty())
            }),
        };
        if !ours {
            continue;
        }
        match ip.address {
            IpNet::V4(_) if t.v4.is_none() => t.v4 = Some(ip.address),
            IpNet::V6(_) if t.v6.is_none() => t.v6 = Some(ip.address),
            _ => {}
        }
    }
    t
}

impl Targets {
    /// The pod address of `family_of`'s family.
    pub fn for_family(&self, v4: bool) -> Option<IpNet> {
        if v4 { self.v4 } else { self.v6 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validates_ports_protocols_and_host_ips() {
        let ok = parse_mappings(Some(&json!([
            {"hostPort": 8080, "containerPort": 80, "protocol": "TCP"},
            {"hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "fd00::1"}
        ])))
        .unwrap();
        assert_eq!(ok[0].proto, Proto::Tcp);
        assert_eq!(ok[1].host_ip, Some("fd00::1".parse().unwrap()));
        for bad in [
            json!([{"hostPort": 0, "containerPort": 80}]),
            json!([{"hostPort": 80, "containerPort": 70000}]),
            json!([{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": "nope"}]),
        ] {
            assert!(parse_mappings(Some(&bad)).is_err(), "{bad}");
        }
        assert!(parse_mappings(None).unwrap().is_empty());
        assert!(parse_mappings(Some(&Value::Null)).unwrap().is_empty());
    }

    #[test]
    fn validates_marks_and_conditions() {
        let c = PortmapConf::from_value(&json!({})).unwrap();
        assert!(c.snat && !c.masq_all && c.mark_masq_bit == 13);
        assert!(PortmapConf::from_value(&json!({"markMasqBit": 32})).is_err());
        assert!(PortmapConf::from_value(&json!({"markMasqBit": -1})).is_err());
        assert!(
            PortmapConf::from_value(
                &json!({"markMasqBit": 1, "externalSetMarkChain": "KUBE_MARK"})
            )
            .is_err()
        );
        assert!(PortmapConf::from_value(&json!({"conditionsV4": ["-s", "1.2.3.4"]})).is_err());
        assert!(
            PortmapConf::from_value(&json!({"conditionsV4": ["ip saddr 1.2.3.4; drop"]})).is_err()
        );
        let c = PortmapConf::from_value(
            &json!({"conditionsV6": ["ip6 saddr fd00::/8"], "snat": false}),
        )
        .unwrap();
        assert_eq!(c.conditions_v6, vec!["ip6 saddr fd00::/8".to_string()]);
        assert!(!c.snat);
    }

    #[test]
    fn picks_the_pod_interface_addresses() {
        let prev = CniResult::from_json(
            &json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
                "ips": [
                    {"address": "10.9.0.1/24", "interface": 0},
                    {"address": "10.1.0.5/24", "interface": 1},
                    {"address": "10.1.0.6/24", "interface": 1},
                    {"address": "fd00::5/64"}
                ]
            }),
            weft_proto::CniVersion::LATEST,
        )
        .unwrap();
        let t = targets(&prev, "eth0");
        assert_eq!(t.v4, Some("10.1.0.5/24".parse().unwrap()));
        assert_eq!(t.v6, Some("fd00::5/64".parse().unwrap()));
        assert_eq!(targets(&prev, "eth1").v4, None);
    }
}
