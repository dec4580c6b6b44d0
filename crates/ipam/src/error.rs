//! Error type of the IPAM crate. Each variant documents the CNI error code the plugin
//! should report for it; `IpamError::cni_code` returns the same number.

use std::io;
use std::net::IpAddr;

/// An I/O failure of a [`crate::Store`], with what the store was doing.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct StoreError {
    /// What the store was doing, e.g. `reserve 10.1.2.3 in /var/lib/cni/networks/net`.
    pub context: String,
    /// The underlying I/O error.
    #[source]
    pub source: io::Error,
}

impl StoreError {
    /// Wraps `source` with a description of the failed step.
    pub fn new(context: impl Into<String>, source: io::Error) -> Self {
        Self {
            context: context.into(),
            source,
        }
    }
}

/// Everything that can go wrong in IPAM.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The network or `ipam` configuration is unusable (missing `ipam`, no ranges, bad
    /// subnet, overlap, bad network name, ...). CNI code 7 (invalid network config).
    #[error("invalid IPAM config: {0}")]
    InvalidConfig(String),
    /// Container id or interface name is unusable (empty, bad characters, too long).
    /// CNI code 4 (invalid necessary environment variables).
    #[error("invalid attachment: {0}")]
    InvalidAttachment(String),
    /// A range set has no free address left. Code 100 (weft: pool exhausted).
    #[error("no free address in range set {set_index} ({ranges})")]
    Exhausted {
        /// Index of the range set in the effective `ranges` list.
        set_index: usize,
        /// The ranges of that set, human readable.
        ranges: String,
    },
    /// A requested IP (CNI_ARGS `IP`, `args.cni.ips`, `runtimeConfig.ips`) cannot be
    /// given: it is the gateway, taken, or outside every range. Code 109 (weft).
    #[error("requested IP {ip} is unavailable: {reason}")]
    RequestedUnavailable {
        /// The requested address.
        ip: IpAddr,
        /// Why it cannot be handed out.
        reason: String,
    },
    /// CHECK found no reservation for the attachment. CNI code 3 (unknown container).
    #[error("no address reserved for container {id} interface {ifname}")]
    NotReserved {
        /// Container id.
        id: String,
        /// Interface name.
        ifname: String,
    },
    /// STATUS: the plugin cannot serve ADD now (store not writable, a set without free
    /// addresses). CNI code 50 (plugin not available).
    #[error("IPAM unavailable: {0}")]
    Unavailable(String),
    /// The store failed (I/O on the data directory). Code 103 (weft: IPAM store).
    #[error("IPAM store: {0}")]
    Store(#[from] StoreError),
}

impl IpamError {
    /// The CNI error code the plugin should put into its error JSON.
    pub fn cni_code(&self) -> u32 {
        match self {
            IpamError::InvalidConfig(_) => 7,
            IpamError::InvalidAttachment(_) => 4,
            IpamError::Exhausted { .. } => 100,
            IpamError::RequestedUnavailable { .. } => 109,
            IpamError::NotReserved { .. } => 3,
            IpamError::Unavailable(_) => 50,
            IpamError::Store(_) => 103,
        }
    }
}
