//! Validated identifiers: container id, interface name, network name.

use std::fmt;

use crate::error::CniError;

/// Longest container id we accept; the spec sets no limit, this only bounds memory.
const MAX_ID_LEN: usize = 1024;
/// `IFNAMSIZ` (16) minus the terminating NUL.
const MAX_IFNAME_LEN: usize = 15;

/// The spec's identifier rule `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, shared by container ids
/// and network names. It rules out `/`, `.`/`..`, a leading `-` and control bytes.
pub fn is_valid_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A `CNI_CONTAINERID` that passed the spec's regex.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// Validates a container id (error code 4, naming `CNI_CONTAINERID`).
    pub fn parse(s: &str) -> Result<ContainerId, CniError> {
        if s.len() > MAX_ID_LEN || !is_valid_identifier(s) {
            return Err(CniError::invalid_env(format!(
                "invalid CNI_CONTAINERID {s:?}: must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$"
            )));
        }
        Ok(ContainerId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `CNI_IFNAME` the kernel will accept (Ref `ValidateInterfaceName` rules).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfName(String);

impl IfName {
    /// Validates an interface name: non-empty, at most 15 bytes, not `.`/`..`,
    /// no `/`, `:`, whitespace or NUL (error code 4, naming `CNI_IFNAME`).
    pub fn parse(s: &str) -> Result<IfName, CniError> {
        let problem = if s.is_empty() {
            Some("is empty")
        } else if s.len() > MAX_IFNAME_LEN {
            Some("is longer than 15 bytes")
        } else if s == "." || s == ".." {
            Some("is . or ..")
        } else if s
            .chars()
            .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
        {
            Some("contains /, :, NUL or whitespace")
        } else {
            None
        };
        match problem {
            Some(why) => Err(CniError::invalid_env(format!(
                "invalid CNI_IFNAME {s:?}: {why}"
            ))),
            None => Ok(IfName(s.to_owned())),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates a network `name` (code 7): the identifier regex, so no `/` and no leading
/// `.`; host-local uses it as a directory name.
pub fn validate_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::invalid_config("missing network name"));
    }
    if name.len() > MAX_ID_LEN || !is_valid_identifier(name) {
        return Err(CniError::invalid_config(format!(
            "invalid network name {name:?}: must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    #[test]
    fn container_ids() {
        for ok in ["a", "abc-123", "A.b_c-d", "a..b", "0"] {
            assert!(ContainerId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".", "..", "a/b", "_a", "a b", "a\nb", "a\0", "ü"] {
            let e = ContainerId::parse(bad).unwrap_err();
            assert_eq!(e.code, codes::INVALID_ENV, "{bad:?}");
            assert!(e.msg.contains("CNI_CONTAINERID"));
        }
        assert!(ContainerId::parse(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn ifnames() {
        for ok in ["eth0", "a", "veth-1.2_x", "123456789012345", "ü"] {
            assert!(IfName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\0",
            "1234567890123456",
        ] {
            let e = IfName::parse(bad).unwrap_err();
            assert_eq!(e.code, codes::INVALID_ENV, "{bad:?}");
            assert!(e.msg.contains("CNI_IFNAME"));
        }
        // 8 two-byte chars = 16 bytes: the kernel limit is in bytes.
        assert!(IfName::parse(&"ü".repeat(8)).is_err());
    }

    #[test]
    fn network_names() {
        assert!(validate_network_name("kind-net.1").is_ok());
        for bad in ["", "a/b", ".hidden", "..", "-x"] {
            assert_eq!(
                validate_network_name(bad).unwrap_err().code,
                codes::INVALID_CONFIG
            );
        }
    }
}
