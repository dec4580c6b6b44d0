//! CNI spec versions, negotiation helpers and the VERSION verb's output.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CniError;

/// A CNI spec version weft speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    /// 0.1.0: initial spec (`ip4`/`ip6` result).
    V0_1_0,
    /// 0.2.0: adds the VERSION verb; same result shape as 0.1.0.
    V0_2_0,
    /// 0.3.0: rich result (`interfaces`, `ips` with `version`), chaining.
    V0_3_0,
    /// 0.3.1: typo fixes only.
    V0_3_1,
    /// 0.4.0: CHECK, `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: list-only configs, no `ips[].version`.
    V1_0_0,
    /// 1.1.0: GC, STATUS, interface/route extras.
    V1_1_0,
}

/// Every supported version, oldest first (the Ref plugins' list).
pub const SUPPORTED: &[CniVersion] = &[
    CniVersion::V0_1_0,
    CniVersion::V0_2_0,
    CniVersion::V0_3_0,
    CniVersion::V0_3_1,
    CniVersion::V0_4_0,
    CniVersion::V1_0_0,
    CniVersion::V1_1_0,
];

impl CniVersion {
    /// The newest version weft speaks.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// Version assumed when a config has no (or an empty) `cniVersion`; libcni uses 0.1.0.
    pub const IMPLICIT: CniVersion = CniVersion::V0_1_0;

    /// The dotted string form, e.g. `"0.4.0"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_1_0 => "0.1.0",
            CniVersion::V0_2_0 => "0.2.0",
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// CHECK exists from 0.4.0 on.
    pub fn allows_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    /// GC and STATUS exist from 1.1.0 on.
    pub fn allows_gc_status(self) -> bool {
        self >= CniVersion::V1_1_0
    }

    /// Reads a config's `cniVersion` value: absent/`null`/empty means [`Self::IMPLICIT`];
    /// a non-string is a decode failure (6); an unknown string is code 1.
    pub fn from_config_value(value: Option<&Value>) -> Result<CniVersion, CniError> {
        match value {
            None | Some(Value::Null) => Ok(Self::IMPLICIT),
            Some(Value::String(s)) if s.is_empty() => Ok(Self::IMPLICIT),
            Some(Value::String(s)) => s.parse(),
            Some(other) => Err(CniError::decode(format!(
                "cniVersion must be a string, got {other}"
            ))),
        }
    }
}

impl FromStr for CniVersion {
    type Err = CniError;

    /// Any string outside [`SUPPORTED`] is code 1, like the Ref skel's version
    /// reconciler, whether it is a well-formed semver ("9.9.9") or not.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SUPPORTED
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                CniError::incompatible_version(format!(
                    "incompatible CNI versions: config is {s:?}"
                ))
                .with_details(format!("plugin supports {}", supported_list().join(", ")))
            })
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CniVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn supported_list() -> Vec<String> {
    SUPPORTED.iter().map(|v| v.as_str().to_owned()).collect()
}

/// Spec 1.1.0 `cniVersions`: the highest supported version among `cni_version` and
/// `cni_versions`; unknown entries (e.g. newer than us) are skipped. `None` if none fits.
pub fn select_version(cni_version: Option<&str>, cni_versions: &[String]) -> Option<CniVersion> {
    cni_version
        .into_iter()
        .chain(cni_versions.iter().map(String::as_str))
        .filter_map(|s| s.parse::<CniVersion>().ok())
        .max()
}

/// Output of the VERSION verb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The input version when supported, else [`CniVersion::LATEST`].
    pub cni_version: String,
    /// [`SUPPORTED`] as strings.
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    /// VERSION output for stdin bytes (may be empty or not JSON at all: VERSION
    /// never fails on its input, since runtimes only read `supportedVersions`).
    pub fn for_stdin(stdin: &[u8]) -> VersionInfo {
        let input = serde_json::from_slice::<Value>(stdin).ok();
        let requested = input
            .as_ref()
            .and_then(|v| v.get("cniVersion"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<CniVersion>().ok());
        Self::for_version(requested)
    }

    /// VERSION output echoing `requested` (spec) or [`CniVersion::LATEST`] when absent.
    pub fn for_version(requested: Option<CniVersion>) -> VersionInfo {
        VersionInfo {
            cni_version: requested.unwrap_or(CniVersion::LATEST).as_str().to_owned(),
            supported_versions: supported_list(),
        }
    }

    /// As a JSON value.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "cniVersion": self.cni_version,
            "supportedVersions": self.supported_versions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;
    use serde_json::json;

    #[test]
    fn parses_every_supported_version() {
        for v in SUPPORTED {
            assert_eq!(v.as_str().parse::<CniVersion>().unwrap(), *v);
            assert_eq!(v.to_string(), v.as_str());
        }
    }

    #[test]
    fn unknown_versions_are_code_1() {
        for s in ["9.9.9", "1.2.0", "0.5.0", "abc", "1.0", " 1.0.0"] {
            let e = s.parse::<CniVersion>().unwrap_err();
            assert_eq!(e.code, codes::INCOMPATIBLE_VERSION, "{s}");
        }
    }

    #[test]
    fn config_value_rules() {
        assert_eq!(
            CniVersion::from_config_value(None).unwrap(),
            CniVersion::V0_1_0
        );
        assert_eq!(
            CniVersion::from_config_value(Some(&json!(""))).unwrap(),
            CniVersion::V0_1_0
        );
        let e = CniVersion::from_config_value(Some(&json!(1))).unwrap_err();
        assert_eq!(e.code, codes::DECODE_FAILURE);
    }

    #[test]
    fn verb_gates() {
        assert!(!CniVersion::V0_3_1.allows_check());
        assert!(CniVersion::V0_4_0.allows_check());
        assert!(!CniVersion::V1_0_0.allows_gc_status());
        assert!(CniVersion::V1_1_0.allows_gc_status());
    }

    #[test]
    fn version_output_echoes_supported_input() {
        let out = VersionInfo::for_stdin(br#"{"cniVersion":"1.0.0"}"#).to_json();
        assert_eq!(out["cniVersion"], "1.0.0");
        assert_eq!(out["supportedVersions"].as_array().unwrap().len(), 7);
        assert_eq!(VersionInfo::for_stdin(b"").cni_version, "1.1.0");
        assert_eq!(
            VersionInfo::for_stdin(br#"{"cniVersion":"9.9.9"}"#).cni_version,
            "1.1.0"
        );
    }

    #[test]
    fn select_highest_known() {
        let list = vec!["0.4.0".to_owned(), "1.1.0".to_owned(), "2.0.0".to_owned()];
        assert_eq!(
            select_version(Some("1.0.0"), &list),
            Some(CniVersion::V1_1_0)
        );
        assert_eq!(select_version(Some("7.0.0"), &[]), None);
    }
}
