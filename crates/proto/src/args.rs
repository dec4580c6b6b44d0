//! `CNI_ARGS` parsing (`K1=V1;K2=V2`), with the keys weft understands.

use std::net::IpAddr;

use crate::error::CniError;
use crate::mac::MacAddr;

/// Parsed `CNI_ARGS`. Keys are case-sensitive, as in the Ref `LoadArgs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// `IgnoreUnknown`: unknown keys are tolerated (Kubernetes runtimes set it).
    pub ignore_unknown: bool,
    /// `K8S_POD_NAMESPACE`.
    pub k8s_pod_namespace: Option<String>,
    /// `K8S_POD_NAME`.
    pub k8s_pod_name: Option<String>,
    /// `K8S_POD_INFRA_CONTAINER_ID`.
    pub k8s_pod_infra_container_id: Option<String>,
    /// `K8S_POD_UID`.
    pub k8s_pod_uid: Option<String>,
    /// `IP`: requested addresses (comma-separated list).
    pub ips: Vec<IpAddr>,
    /// `MAC`: requested container interface MAC.
    pub mac: Option<MacAddr>,
    /// Unknown pairs that were tolerated because of `IgnoreUnknown`, in input order.
    pub ignored: Vec<(String, String)>,
}

fn bad_args(msg: String) -> CniError {
    CniError::invalid_env(format!("invalid CNI_ARGS: {msg}"))
}

/// Go `strconv.ParseBool` subset the Ref accepts: 1/0/true/false in any case.
fn parse_bool(key: &str, value: &str) -> Result<bool, CniError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "t" => Ok(true),
        "0" | "false" | "f" => Ok(false),
        _ => Err(bad_args(format!("{key}={value:?} is not a boolean"))),
    }
}

fn parse_ips(value: &str) -> Result<Vec<IpAddr>, CniError> {
    value
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| bad_args(format!("IP={s:?} is not an IP address")))
        })
        .collect()
}

/// Splits into pairs. Empty pieces (a trailing `;`) are skipped, which the Ref rejects;
/// a piece without exactly one `=` is an error, as in the Ref.
fn split_pairs(raw: &str) -> Result<Vec<(&str, &str)>, CniError> {
    raw.split(';')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let mut kv = piece.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) if !k.is_empty() => Ok((k, v)),
                _ => Err(bad_args(format!("{piece:?} is not KEY=VALUE"))),
            }
        })
        .collect()
}

impl CniArgs {
    /// Parses `CNI_ARGS`; empty means no args. Errors are code 4 and name the pair.
    pub fn parse(raw: &str) -> Result<CniArgs, CniError> {
        let pairs = split_pairs(raw)?;
        let mut args = CniArgs::default();
        let mut unknown = Vec::new();
        for (key, value) in pairs {
            match key {
                "IgnoreUnknown" => args.ignore_unknown = parse_bool(key, value)?,
                "K8S_POD_NAMESPACE" => args.k8s_pod_namespace = Some(value.to_owned()),
                "K8S_POD_NAME" => args.k8s_pod_name = Some(value.to_owned()),
                "K8S_POD_INFRA_CONTAINER_ID" => {
                    args.k8s_pod_infra_container_id = Some(value.to_owned())
                }
                "K8S_POD_UID" => args.k8s_pod_uid = Some(value.to_owned()),
                "IP" => args.ips = parse_ips(value)?,
                "MAC" => {
                    let mac = value.parse().map_err(|e| bad_args(format!("MAC: {e}")))?;
                    args.mac = Some(mac);
                }
                _ => unknown.push((key.to_owned(), value.to_owned())),
            }
        }
        // IgnoreUnknown applies wherever it appears in the list, like the Ref.
        if let Some((key, _)) = unknown.first().filter(|_| !args.ignore_unknown) {
            return Err(bad_args(format!(
                "unknown key {key:?} (set IgnoreUnknown=1 to allow)"
            )));
        }
        args.ignored = unknown;
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    #[test]
    fn empty_means_none() {
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
    }

    #[test]
    fn kubernetes_style() {
        let a = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=c;K8S_POD_UID=u;EXTRA=x",
        )
        .unwrap();
        assert!(a.ignore_unknown);
        assert_eq!(a.k8s_pod_namespace.as_deref(), Some("ns"));
        assert_eq!(a.k8s_pod_name.as_deref(), Some("p"));
        assert_eq!(a.k8s_pod_infra_container_id.as_deref(), Some("c"));
        assert_eq!(a.k8s_pod_uid.as_deref(), Some("u"));
        assert_eq!(a.ignored, vec![("EXTRA".to_owned(), "x".to_owned())]);
    }

    #[test]
    fn unknown_key_needs_ignore_unknown() {
        let e = CniArgs::parse("FOO=bar").unwrap_err();
        assert_eq!(e.code, codes::INVALID_ENV);
        assert!(e.msg.contains("FOO"));
        for t in ["1", "true", "True", "TRUE"] {
            assert!(
                CniArgs::parse(&format!("FOO=bar;IgnoreUnknown={t}")).is_ok(),
                "{t}"
            );
        }
        assert!(CniArgs::parse("IgnoreUnknown=0;FOO=bar").is_err());
        assert!(CniArgs::parse("IgnoreUnknown=maybe").is_err());
    }

    #[test]
    fn malformed_pairs() {
        for bad in ["FOO", "=x", "A=b=c", "IP=1.2.3.4;X"] {
            assert_eq!(
                CniArgs::parse(bad).unwrap_err().code,
                codes::INVALID_ENV,
                "{bad}"
            );
        }
        assert!(CniArgs::parse("IP=10.0.0.1;").is_ok());
    }

    #[test]
    fn ip_and_mac() {
        let a = CniArgs::parse("IP=10.1.2.50,2001:db8::5;MAC=C2:11:22:33:44:55").unwrap();
        assert_eq!(a.ips.len(), 2);
        assert_eq!(a.mac.unwrap().to_string(), "c2:11:22:33:44:55");
        assert!(CniArgs::parse("IP=10.1.2.500").is_err());
        assert!(CniArgs::parse("MAC=nope").is_err());
        assert!(CniArgs::parse("ip=10.0.0.1").is_err());
    }
}
