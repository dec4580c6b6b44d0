//! Typed errors; the errno of a failed netlink request is kept so callers can build
//! `ensure_*` (EEXIST) and `remove_*` (ENODEV/ESRCH/ENOENT) semantics on top.

use std::path::PathBuf;

use nix::errno::Errno;

/// Result alias for this crate.
pub type Result<T, E = DatapathError> = std::result::Result<T, E>;

/// Everything that can go wrong while touching the kernel.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// The kernel rejected a netlink request.
    #[error("netlink {op}: {errno} ({})", errno.desc())]
    Netlink {
        /// What was attempted, e.g. `add link veth0`.
        op: String,
        /// The errno of the NLMSG_ERROR reply.
        errno: Errno,
    },
    /// A netlink reply could not be decoded.
    #[error("netlink {op}: malformed reply: {detail}")]
    Decode {
        /// What was attempted.
        op: String,
        /// Decoder message.
        detail: String,
    },
    /// A system call or file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was attempted.
        op: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A path given as network namespace is not one (e.g. a bad `CNI_NETNS`).
    #[error("{} is not a network namespace", path.display())]
    NotNetns {
        /// The offending path.
        path: PathBuf,
    },
    /// `nft` rejected a script (the previous ruleset stays in force) or could not run.
    #[error("nft failed: {stderr}")]
    Nft {
        /// `nft`'s standard error, or why it could not be run.
        stderr: String,
    },
    /// A sysctl key was rejected or could not be read or written.
    #[error("sysctl {key}: {reason}")]
    Sysctl {
        /// The key as given, e.g. `net/ipv4/ip_forward`.
        key: String,
        /// Why it failed.
        reason: String,
    },
    /// An argument was invalid before anything was sent to the kernel.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A looked-up object does not exist (e.g. no link with that name).
    #[error("not found: {0}")]
    NotFound(String),
}

impl DatapathError {
    /// The errno of a failed netlink request, if this is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            DatapathError::Netlink { errno, .. } => Some(*errno),
            DatapathError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    /// True when the object to create already exists (EEXIST).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(Errno::EEXIST)
    }

    /// True when the object to act on does not exist (ENODEV, ESRCH, ENOENT, EADDRNOTAVAIL,
    /// or a failed lookup).
    pub fn is_not_found(&self) -> bool {
        matches!(self, DatapathError::NotFound(_))
            || matches!(
                self.errno(),
                Some(Errno::ENODEV | Errno::ESRCH | Errno::ENOENT | Errno::EADDRNOTAVAIL)
            )
    }

    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        DatapathError::Io {
            op: op.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn netlink(errno: Errno) -> DatapathError {
        DatapathError::Netlink {
            op: "x".into(),
            errno,
        }
    }

    #[test]
    fn classifies_errnos() {
        assert!(netlink(Errno::EEXIST).is_exists());
        assert!(!netlink(Errno::EEXIST).is_not_found());
        for e in [
            Errno::ENODEV,
            Errno::ESRCH,
            Errno::ENOENT,
            Errno::EADDRNOTAVAIL,
        ] {
            assert!(netlink(e).is_not_found(), "{e}");
        }
        assert!(DatapathError::NotFound("eth0".into()).is_not_found());
        assert!(!netlink(Errno::EPERM).is_not_found());
    }
}
