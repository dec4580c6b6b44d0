//! One error type for every datastore.

use std::path::PathBuf;

use crate::types::LeaseId;

/// What went wrong talking to a datastore.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A kind or key that cannot be stored.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// "kind" or "key".
        what: &'static str,
        /// As given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The lease expired or was revoked; grant a new one and claim again.
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    /// File-system error of the embedded store.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A stored object that cannot be decoded.
    #[error("corrupt object {what}: {reason}")]
    Corrupt {
        /// Path or key of the object.
        what: String,
        /// Decoder message.
        reason: String,
    },
    /// The etcd cluster could not be reached or refused the request.
    #[error("etcd: {0}")]
    Etcd(String),
    /// The Kubernetes API server could not be reached, refused the request, or does not
    /// have what was asked for yet (e.g. a Node without podCIDRs).
    #[error("kubernetes: {0}")]
    Kubernetes(String),
    /// The datastore cannot do this (e.g. writing objects the Kubernetes API owns).
    #[error("unsupported by the {store} datastore: {what}")]
    Unsupported {
        /// Which datastore.
        store: &'static str,
        /// What was asked.
        what: String,
    },
    /// No free subnet, or the configuration does not allow carving.
    #[error(transparent)]
    Carve(#[from] weft_cluster::CarveError),
    /// A claim lost the race too many times in a row.
    #[error("could not claim a subnet of {cidr} after {attempts} attempts (heavy contention)")]
    Contention {
        /// The cluster CIDR.
        cidr: ipnet::IpNet,
        /// How often it was tried.
        attempts: u32,
    },
    /// A value that could not be serialized.
    #[error("encode value: {0}")]
    Encode(#[from] serde_json::Error),
    /// A background task failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<etcd_client::Error> for StoreError {
    fn from(e: etcd_client::Error) -> Self {
        StoreError::Etcd(e.to_string())
    }
}
