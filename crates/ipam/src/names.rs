//! Validation of the strings that reach the file system or the reservation file format.
//! Only these validated values and parsed IP addresses are ever joined into paths.

use crate::error::IpamError;

/// Interface names are limited by the kernel to IFNAMSIZ - 1 bytes.
const MAX_IFNAME_LEN: usize = 15;

/// True for `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, the CNI spec's pattern for network names and
/// container ids.
fn matches_cni_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Checks a network name, which becomes a directory name under `dataDir`.
pub fn validate_network_name(name: &str) -> Result<(), IpamError> {
    // The pattern already forbids '/', but ".." inside a name is rejected as well so a
    // future relaxation of the pattern cannot turn it into a path escape.
    if !matches_cni_identifier(name) || name.contains("..") {
        return Err(IpamError::InvalidConfig(format!(
            "network name {name:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$ and not contain \"..\""
        )));
    }
    Ok(())
}

/// Checks a container id; it is written into reservation files (`<id>\r\n<ifname>`).
pub fn validate_container_id(id: &str) -> Result<(), IpamError> {
    if !matches_cni_identifier(id) {
        return Err(IpamError::InvalidAttachment(format!(
            "container id {id:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$"
        )));
    }
    Ok(())
}

/// Checks an interface name: 1..=15 bytes, no '/', whitespace, ':' or control characters
/// (the kernel's rules, which also keep the reservation file format unambiguous).
pub fn validate_ifname(ifname: &str) -> Result<(), IpamError> {
    let bad_char = ifname
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ifname.is_empty()
        || ifname.len() > MAX_IFNAME_LEN
        || bad_char
        || ifname == "."
        || ifname == ".."
    {
        return Err(IpamError::InvalidAttachment(format!(
            "interface name {ifname:?} must be 1-{MAX_IFNAME_LEN} bytes without '/', ':' or whitespace"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names() {
        for ok in ["net", "my-net_1.0", "0"] {
            assert!(validate_network_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a..b", "-x", "a/b", "../etc", "a b", "ä"] {
            assert!(validate_network_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn container_ids_and_ifnames() {
        assert!(validate_container_id("abc123-x_y.z").is_ok());
        for bad in ["", "a\r\nb", "../x", "a/b", ".hidden"] {
            assert!(validate_container_id(bad).is_err(), "{bad}");
        }
        assert!(validate_ifname("eth0").is_ok());
        for bad in ["", "a/b", "eth 0", "0123456789abcdef", "..", "e\n"] {
            assert!(validate_ifname(bad).is_err(), "{bad}");
        }
    }
}
