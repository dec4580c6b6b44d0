//! GC input: the set of attachments the runtime still considers valid.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CniError;

/// Current key (spec main, libcni).
pub const VALID_ATTACHMENTS_KEY: &str = "cni.dev/valid-attachments";
/// Key in the published spec-v1.1.0 text; libcni sends both.
pub const LEGACY_ATTACHMENTS_KEY: &str = "cni.dev/attachments";

/// One attachment, keyed as the spec keys it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attachment {
    /// Container id (kept as sent; GC must match whatever was stored).
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

/// Where the list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentsSource {
    /// `cni.dev/valid-attachments`.
    Current,
    /// `cni.dev/attachments` (only used when the current key is absent).
    Legacy,
    /// Neither key was present.
    Absent,
}

/// The valid attachments of a GC request.
///
/// Choice (project decision): a missing key and a `null` list both yield an empty set,
/// i.e. "nothing is valid". libcni omits the key only when its caller passed no GC
/// arguments, so an absent key is reported as [`AttachmentsSource::Absent`]: callers
/// that prefer the cautious reading ("no information, release nothing") can check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAttachments {
    /// The attachments to keep.
    pub set: BTreeSet<Attachment>,
    /// Which key supplied them.
    pub source: AttachmentsSource,
}

impl ValidAttachments {
    /// Reads the list from the raw request config; the current key wins over the legacy
    /// one. A list that is neither `null` nor an array of `{containerID, ifname}` → code 6.
    pub fn from_config(raw: &Value) -> Result<ValidAttachments, CniError> {
        let (value, source) = match (
            raw.get(VALID_ATTACHMENTS_KEY),
            raw.get(LEGACY_ATTACHMENTS_KEY),
        ) {
            (Some(v), _) => (v, AttachmentsSource::Current),
            (None, Some(v)) => (v, AttachmentsSource::Legacy),
            (None, None) => (&Value::Null, AttachmentsSource::Absent),
        };
        let list: Option<Vec<Attachment>> = Option::deserialize(value)
            .map_err(|e| CniError::decode(format!("invalid GC attachment list: {e}")))?;
        Ok(ValidAttachments {
            set: list.unwrap_or_default().into_iter().collect(),
            source,
        })
    }

    /// Whether (`container_id`, `ifname`) is still valid, i.e. must not be collected.
    pub fn contains(&self, container_id: &str, ifname: &str) -> bool {
        self.set
            .iter()
            .any(|a| a.container_id == container_id && a.ifname == ifname)
    }

    /// Whether any attachment of `container_id` is still valid (for state keyed by id only,
    /// such as legacy host-local files).
    pub fn contains_container(&self, container_id: &str) -> bool {
        self.set.iter().any(|a| a.container_id == container_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;
    use serde_json::json;

    #[test]
    fn current_key_wins() {
        let raw = json!({
            "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
            "cni.dev/attachments": [{"containerID": "b", "ifname": "eth0"}],
        });
        let v = ValidAttachments::from_config(&raw).unwrap();
        assert_eq!(v.source, AttachmentsSource::Current);
        assert!(v.contains("a", "eth0"));
        assert!(!v.contains("b", "eth0"));
        assert!(!v.contains("a", "eth1"));
        assert!(v.contains_container("a"));
    }

    #[test]
    fn legacy_null_and_absent() {
        let v = ValidAttachments::from_config(
            &json!({"cni.dev/attachments": [{"containerID": "b", "ifname": "x"}]}),
        )
        .unwrap();
        assert_eq!(v.source, AttachmentsSource::Legacy);
        assert!(v.contains("b", "x"));
        let v = ValidAttachments::from_config(&json!({"cni.dev/valid-attachments": null})).unwrap();
        assert!(v.set.is_empty());
        assert_eq!(v.source, AttachmentsSource::Current);
        let v = ValidAttachments::from_config(&json!({"name": "n"})).unwrap();
        assert!(v.set.is_empty());
        assert_eq!(v.source, AttachmentsSource::Absent);
    }

    #[test]
    fn malformed_is_code_6() {
        for bad in [
            json!({"cni.dev/valid-attachments": "x"}),
            json!({"cni.dev/valid-attachments": [{"ifname": "x"}]}),
        ] {
            assert_eq!(
                ValidAttachments::from_config(&bad).unwrap_err().code,
                codes::DECODE_FAILURE
            );
        }
    }
}
