//! Conversion between [`CniResult`] and each version's wire JSON.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::CniError;
use crate::result::CniResult;
use crate::version::CniVersion;
use crate::wire::{nonempty, v1::ResultV1, v02::ResultV02, v04::ResultV04};

fn to_value<T: Serialize>(wire: &T) -> Result<Value, CniError> {
    serde_json::to_value(wire)
        .map_err(|e| CniError::internal(format!("cannot serialize result: {e}")))
}

fn from_value<T: DeserializeOwned>(v: &Value, version: CniVersion) -> Result<T, CniError> {
    T::deserialize(v).map_err(|e| CniError::decode(format!("cannot decode {version} result: {e}")))
}

impl CniResult {
    /// Serializes for `version`. 1.1.0 is the full model; 1.0.0 drops the 1.1.0 interface
    /// and route extras; 0.3.x/0.4.0 add `ips[].version` and drop them too; 0.1.0/0.2.0
    /// use `ip4`/`ip6` (error if there is no address). Empty arrays and an empty `dns`
    /// are omitted, as the Go reference does.
    pub fn to_json(&self, version: CniVersion) -> Result<Value, CniError> {
        let label = version.as_str();
        match version {
            CniVersion::V1_1_0 => to_value(&ResultV1::from_model(self, label)),
            CniVersion::V1_0_0 => {
                let mut wire = ResultV1::from_model(self, label);
                wire.strip_1_1_fields();
                to_value(&wire)
            }
            CniVersion::V0_3_0 | CniVersion::V0_3_1 | CniVersion::V0_4_0 => {
                to_value(&ResultV04::from_model(self, label))
            }
            CniVersion::V0_1_0 | CniVersion::V0_2_0 => {
                to_value(&ResultV02::from_model(self, label)?)
            }
        }
    }

    /// Reads a result of any supported version (e.g. `prevResult`). A missing or empty
    /// `cniVersion` means `default` (the request version, per the spec's result
    /// section). Unsupported version → code 1; malformed content → code 6.
    pub fn from_json(v: &Value, default: CniVersion) -> Result<CniResult, CniError> {
        Self::from_json_versioned(v, default).map(|(r, _)| r)
    }

    /// Like [`Self::from_json`], also returning the version the result was read as.
    pub fn from_json_versioned(
        v: &Value,
        default: CniVersion,
    ) -> Result<(CniResult, CniVersion), CniError> {
        if !v.is_object() {
            return Err(CniError::decode("result is not a JSON object"));
        }
        let version = match v.get("cniVersion") {
            None | Some(Value::Null) => default,
            Some(Value::String(s)) if s.is_empty() => default,
            Some(Value::String(s)) => s.parse()?,
            Some(other) => {
                return Err(CniError::decode(format!(
                    "result cniVersion is not a string: {other}"
                )));
            }
        };
        let mut result: CniResult = match version {
            CniVersion::V1_0_0 | CniVersion::V1_1_0 => from_value::<ResultV1>(v, version)?.into(),
            CniVersion::V0_3_0 | CniVersion::V0_3_1 | CniVersion::V0_4_0 => {
                from_value::<ResultV04>(v, version)?.try_into()?
            }
            CniVersion::V0_1_0 | CniVersion::V0_2_0 => from_value::<ResultV02>(v, version)?.into(),
        };
        result.dns.domain = nonempty(result.dns.domain.take());
        Ok((result, version))
    }
}
