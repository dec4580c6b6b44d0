//! The reference `tuning` configuration, parsed and validated without side effects.
//!
//! Sources, lowest precedence first: the plugin config, `CNI_ARGS MAC`, `runtimeConfig.mac`,
//! `args.cni` (which may also carry `sysctl`, `mtu`, `promisc`, `allmulti`, `txQLen`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;
use weft_proto::MacAddr;

/// Where originals are saved when `dataDir` is not given (as the reference plugin).
pub const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";

/// `sysctl` entries in the order given, duplicates kept so they can be refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysctlList(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for SysctlList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = SysctlList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of sysctl keys to values")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<SysctlList, E> {
                Ok(SysctlList::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SysctlList, A::Error> {
                let mut out = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    // The reference takes strings; numbers are accepted as their text.
                    let text = match value {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => u8::from(b).to_string(),
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "sysctl {key}: value {other} is not a string"
                            )));
                        }
                    };
                    out.push((key, text));
                }
                Ok(SysctlList(out))
            }
        }
        d.deserialize_any(Pairs)
    }
}

/// The tuning keys as they appear on the wire (plugin object or `args.cni`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawTuning {
    /// `sysctl`.
    pub sysctl: Option<SysctlList>,
    /// `mac`.
    pub mac: Option<String>,
    /// `mtu` (0 = leave).
    pub mtu: Option<i64>,
    /// `promisc`.
    pub promisc: Option<bool>,
    /// `allmulti`.
    pub allmulti: Option<bool>,
    /// `txQLen`.
    #[serde(rename = "txQLen")]
    pub tx_qlen: Option<i64>,
    /// `dataDir` (plugin object only).
    pub data_dir: Option<PathBuf>,
}

/// Only the `args.cni` part of a request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawArgs {
    args: Option<RawArgsCni>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawArgsCni {
    cni: Option<RawTuning>,
}

/// The validated settings for one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuningConf {
    /// Sysctls as slash-form keys under `net/` (IFNAME substituted) with their values.
    pub sysctls: Vec<(String, String)>,
    /// New hardware address.
    pub mac: Option<MacAddr>,
    /// New MTU.
    pub mtu: Option<u32>,
    /// Promiscuous mode to set.
    pub promisc: Option<bool>,
    /// All-multicast mode to set.
    pub allmulti: Option<bool>,
    /// Transmit queue length to set.
    pub txqlen: Option<u32>,
    /// Where the originals are saved.
    pub data_dir: PathBuf,
}

/// What the request supplies besides the plugin object.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `CNI_ARGS MAC`.
    pub cni_args_mac: Option<MacAddr>,
    /// `runtimeConfig.mac`.
    pub runtime_mac: Option<MacAddr>,
}

impl TuningConf {
    /// Parses the request bytes (kept raw so duplicate `sysctl` keys can be seen).
    pub fn parse(stdin: &[u8], ifname: &str, over: &Overrides) -> Result<TuningConf, String> {
        let base: RawTuning =
            serde_json::from_slice(stdin).map_err(|e| format!("invalid tuning config: {e}"))?;
        let args: RawArgs =
            serde_json::from_slice(stdin).map_err(|e| format!("invalid args.cni: {e}"))?;
        let args = args.args.and_then(|a| a.cni).unwrap_or_default();
        Self::merge(base, args, ifname, over)
    }

    fn merge(
        base: RawTuning,
        args: RawTuning,
        ifname: &str,
        over: &Overrides,
    ) -> Result<TuningConf, String> {
        let mut mac = base.mac.as_deref().map(parse_mac).transpose()?;
        mac = over.cni_args_mac.or(mac);
        mac = over.runtime_mac.or(mac);
        if let Some(m) = args.mac.as_deref() {
            mac = Some(parse_mac(m)?);
        }
        let raw_sysctls = args.sysctl.or(base.sysctl).unwrap_or_default();
        let mtu = match args.mtu.or(base.mtu) {
            None | Some(0) => None,
            Some(m) if (68..=65535).contains(&m) => u32::try_from(m).ok(),
            Some(m) => return Err(format!("mtu {m} is out of range (68..=65535)")),
        };
        let txqlen = match args.tx_qlen.or(base.tx_qlen) {
            None => None,
            Some(q) => Some(u32::try_from(q).map_err(|_| format!("txQLen {q} is invalid"))?),
        };
        Ok(TuningConf {
            sysctls: normalize_sysctls(&raw_sysctls.0, ifname)?,
            mac,
            mtu,
            promisc: args.promisc.or(base.promisc),
            allmulti: args.allmulti.or(base.allmulti),
            txqlen,
            data_dir: base
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        })
    }

    /// Whether anything would be changed on the interface.
    pub fn changes_link(&self) -> bool {
        self.mac.is_some()
            || self.mtu.is_some()
            || self.promisc.is_some()
            || self.allmulti.is_some()
            || self.txqlen.is_some()
    }
}

fn parse_mac(text: &str) -> Result<MacAddr, String> {
    text.parse().map_err(|e| format!("mac: {e}"))
}

/// Turns a dotted (`net.ipv4.conf.IFNAME.rp_filter`) or slashed key into the slash form,
/// replacing `IFNAME` by the interface name. Dots inside a slashed key stay literal, as
/// sysctl(8) reads them, so interface names with dots can be addressed.
pub fn sysctl_key(key: &str, ifname: &str) -> Result<String, String> {
    let sep = if key.contains('/') { '/' } else { '.' };
    let parts: Vec<String> = key
        .split(sep)
        .map(|part| part.replace("IFNAME", ifname))
        .collect();
    let slashed = parts.join("/");
    // Refuses anything outside net/ and any `..`, `.` or empty component (path escapes).
    weft_datapath::sysctl::sysctl_path(&slashed)
        .map_err(|e| format!("sysctl {key:?} refused: {e}"))?;
    if parts.iter().any(|p| p.contains('/')) {
        return Err(format!("sysctl {key:?} refused: component contains '/'"));
    }
    Ok(slashed)
}

/// Validates every key; two spellings of one key (or a repeated key) are refused.
pub fn normalize_sysctls(
    raw: &[(String, String)],
    ifname: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        let slashed = sysctl_key(key, ifname)?;
        if let Some(first) = seen.insert(slashed.clone(), key) {
            return Err(format!(
                "sysctl {slashed} is given twice (as {first:?} and {key:?})"
            ));
        }
        if value.contains('\n') {
            return Err(format!("sysctl {key:?}: value must be a single line"));
        }
        out.push((slashed, value.clone()));
    }
    Ok(out)
}

/// Checks every key against an allowlist (one regular expression per line, unanchored,
/// as the reference reads `/etc/cni/tuning/allowlist.conf`); a key passes when its dotted
/// or slashed form matches a line.
pub fn check_allowlist(sysctls: &[(String, String)], allowlist: &str) -> Result<(), String> {
    let patterns = allowlist
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| regex::Regex::new(l).map_err(|e| format!("allowlist line {l:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    for (key, _) in sysctls {
        let dotted = key.replace('/', ".");
        if !patterns
            .iter()
            .any(|p| p.is_match(key) || p.is_match(&dotted))
        {
            return Err(format!("sysctl {dotted} is not allowed by the allowlist"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<TuningConf, String> {
        TuningConf::parse(json.as_bytes(), "eth0", &Overrides::default())
    }

    #[test]
    fn dotted_and_slashed_keys_with_ifname() {
        let c = parse(
            r#"{"sysctl":{"net.ipv4.conf.IFNAME.rp_filter":"1","net/ipv6/conf/IFNAME/accept_ra":"0"}}"#,
        )
        .unwrap();
        assert_eq!(
            c.sysctls,
            vec![
                ("net/ipv4/conf/eth0/rp_filter".into(), "1".into()),
                ("net/ipv6/conf/eth0/accept_ra".into(), "0".into())
            ]
        );
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(
            sysctl_key("net/ipv4/conf/IFNAME/forwarding", "eth0.100").unwrap(),
            "net/ipv4/conf/eth0.100/forwarding"
        );
    }

    #[test]
    fn refuses_keys_outside_net_and_escapes() {
        for key in [
            "kernel.panic",
            "net/../kernel/panic",
            "net.ipv4..x",
            "/net/ipv4/ip_forward",
            "net",
            "vm/swappiness",
            "net/ipv4/./ip_forward",
        ] {
            let json = format!(r#"{{"sysctl":{{"{key}":"1"}}}}"#);
            assert!(parse(&json).is_err(), "{key}");
        }
    }

    #[test]
    fn refuses_duplicates_in_any_spelling() {
        assert!(
            parse(r#"{"sysctl":{"net.core.somaxconn":"1","net/core/somaxconn":"2"}}"#).is_err()
        );
        assert!(
            parse(r#"{"sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}}"#).is_err()
        );
    }

    #[test]
    fn mac_precedence_and_args() {
        let over = Overrides {
            cni_args_mac: Some("02:00:00:00:00:02".parse().unwrap()),
            runtime_mac: Some("02:00:00:00:00:03".parse().unwrap()),
        };
        let c = TuningConf::parse(br#"{"mac":"02:00:00:00:00:01"}"#, "eth0", &over).unwrap();
        assert_eq!(c.mac.unwrap().to_string(), "02:00:00:00:00:03");
        let c = TuningConf::parse(
            br#"{"mac":"02:00:00:00:00:01","mtu":1400,"args":{"cni":{"mac":"02:00:00:00:00:04","mtu":1300,"promisc":true}}}"#,
            "eth0",
            &over,
        )
        .unwrap();
        assert_eq!(c.mac.unwrap().to_string(), "02:00:00:00:00:04");
        assert_eq!(c.mtu, Some(1300));
        assert_eq!(c.promisc, Some(true));
    }

    #[test]
    fn numbers_and_ranges() {
        assert!(parse(r#"{"mtu":20}"#).is_err());
        assert!(parse(r#"{"txQLen":-1}"#).is_err());
        assert!(parse(r#"{"mac":"zz"}"#).is_err());
        let c = parse(r#"{"mtu":0,"txQLen":0,"sysctl":{"net.core.somaxconn":512}}"#).unwrap();
        assert_eq!(c.mtu, None);
        assert_eq!(c.txqlen, Some(0));
        assert_eq!(c.sysctls[0].1, "512");
        assert!(!parse("{}").unwrap().changes_link());
    }

    #[test]
    fn allowlist_matches_either_form() {
        let s = vec![("net/ipv4/conf/eth0/rp_filter".to_string(), "1".to_string())];
        assert!(check_allowlist(&s, "^net\\.ipv4\\.conf\\.[a-z0-9]+\\.rp_filter$\n").is_ok());
        assert!(check_allowlist(&s, "# comment\n^net/core/.*\n").is_err());
        assert!(check_allowlist(&s, "(").is_err());
    }
}
