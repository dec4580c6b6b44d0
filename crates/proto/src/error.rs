//! The CNI Error object ("Error" section of the spec).

use serde_json::{Map, Value};

use crate::codes;

/// A CNI error: what a plugin prints on stdout (as JSON) before exiting non-zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}{}", details_suffix(details))]
pub struct CniError {
    /// Error code; see [`crate::codes`].
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer explanation; omitted from JSON when empty.
    pub details: String,
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}

impl CniError {
    /// New error with a code and message, no details.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Same error with `details` set.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Code 1: incompatible CNI version.
    pub fn incompatible_version(msg: impl Into<String>) -> Self {
        Self::new(codes::INCOMPATIBLE_VERSION, msg)
    }

    /// Code 4: invalid or missing environment variable.
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_ENV, msg)
    }

    /// Code 6: decoding failure.
    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(codes::DECODE_FAILURE, msg)
    }

    /// Code 7: invalid network configuration.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_CONFIG, msg)
    }

    /// Code 999: internal error.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL, msg)
    }

    /// The Error object for stdout. The spec lists `cniVersion` (Go's type omits it and
    /// libcni ignores it), so it is always emitted; `details` only when non-empty.
    pub fn to_json(&self, version: &str) -> Value {
        let mut obj = Map::new();
        obj.insert("cniVersion".into(), Value::String(version.to_owned()));
        obj.insert("code".into(), Value::from(self.code));
        obj.insert("msg".into(), Value::String(self.msg.clone()));
        if !self.details.is_empty() {
            obj.insert("details".into(), Value::String(self.details.clone()));
        }
        Value::Object(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_omits_empty_details() {
        let e = CniError::invalid_config("missing network name");
        assert_eq!(
            e.to_json("1.1.0"),
            json!({"cniVersion":"1.1.0","code":7,"msg":"missing network name"})
        );
        let e = e.with_details("stdin had no name");
        assert_eq!(e.to_json("0.4.0")["details"], "stdin had no name");
    }

    #[test]
    fn display_mentions_code_and_details() {
        let e = CniError::decode("bad").with_details("line 1");
        assert_eq!(e.to_string(), "CNI error 6: bad (line 1)");
        assert_eq!(CniError::internal("x").code, 999);
    }
}
