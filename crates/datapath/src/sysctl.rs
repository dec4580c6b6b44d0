//! Per-namespace sysctls under `/proc/sys/net`.
//!
//! `/proc/sys/net` shows the network namespace of the task that opens it, so the file is
//! opened (and read or written) on a thread inside the target namespace.

use std::path::{Path, PathBuf};

use crate::error::{DatapathError, Result};
use crate::netns::{NetnsFd, run_in_netns};

const PROC_SYS: &str = "/proc/sys";

/// Checks a key in slash form (`net/ipv4/conf/eth0/rp_filter`) and returns its path.
///
/// Keys must stay under `net/`: no `..`, no absolute paths, no empty components. The slash
/// form is required because interface names may contain dots (`eth0.100`).
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    let reject = |reason: &str| DatapathError::Sysctl {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if !key.starts_with("net/") {
        return Err(reject("key must start with net/"));
    }
    if key.contains('\0') || key.split('/').any(str::is_empty) {
        return Err(reject("malformed key"));
    }
    if key.split('/').any(|part| part == "." || part == "..") {
        return Err(reject("key must not contain . or .. components"));
    }
    Ok(Path::new(PROC_SYS).join(key))
}

/// Reads a sysctl (trimmed) in `netns`, or in the calling thread's namespace for `None`.
pub fn read_sysctl(netns: Option<&NetnsFd>, key: &str) -> Result<String> {
    let path = sysctl_path(key)?;
    let read = || {
        std::fs::read_to_string(&path)
            .map(|text| text.trim().to_string())
            .map_err(|e| io_error(key, &e))
    };
    match netns {
        Some(netns) => run_in_netns(netns, read)?,
        None => read(),
    }
}

/// Writes a sysctl in `netns`, or in the calling thread's namespace for `None`.
pub fn write_sysctl(netns: Option<&NetnsFd>, key: &str, value: &str) -> Result<()> {
    let path = sysctl_path(key)?;
    if value.contains('\n') {
        return Err(DatapathError::Sysctl {
            key: key.to_string(),
            reason: "value must be a single line".to_string(),
        });
    }
    let write = || std::fs::write(&path, value).map_err(|e| io_error(key, &e));
    match netns {
        Some(netns) => run_in_netns(netns, write)?,
        None => write(),
    }
}

fn io_error(key: &str, e: &std::io::Error) -> DatapathError {
    DatapathError::Sysctl {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_keys_under_net() {
        assert_eq!(
            sysctl_path("net/ipv4/ip_forward").unwrap(),
            Path::new("/proc/sys/net/ipv4/ip_forward")
        );
        assert!(sysctl_path("net/ipv4/conf/eth0.100/rp_filter").is_ok());
    }

    #[test]
    fn rejects_escapes_and_other_trees() {
        for key in [
            "kernel/hostname",
            "net/../kernel/hostname",
            "net/ipv4/../../kernel/x",
            "/net/ipv4/ip_forward",
            "net//ipv4",
            "net/./ipv4/ip_forward",
            "net/ipv4/",
            "net.ipv4.ip_forward",
        ] {
            assert!(sysctl_path(key).is_err(), "{key}");
        }
    }
}
