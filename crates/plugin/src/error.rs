//! The plugin's one error type. Every failure maps to a CNI error code here, at the edge;
//! the codes themselves are listed in `weft_proto::codes`.

use weft_proto::{CniError, codes};

use crate::delegate::DelegateError;

/// Anything that can make a plugin verb fail.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// An error that already carries its CNI code (env, decode, version...).
    #[error(transparent)]
    Cni(#[from] CniError),
    /// The network configuration is invalid (code 7).
    #[error("{0}")]
    Config(String),
    /// IPAM failed; the code comes from the IPAM error.
    #[error(transparent)]
    Ipam(#[from] weft_ipam::IpamError),
    /// A kernel operation failed.
    #[error("{context}: {source}")]
    Datapath {
        /// What weft was doing.
        context: String,
        /// The datapath error.
        #[source]
        source: weft_datapath::DatapathError,
    },
    /// A delegated plugin failed or could not be run.
    #[error(transparent)]
    Delegate(#[from] DelegateError),
    /// CHECK found the attachment differs from what ADD made (code 105).
    #[error("CHECK: {0}")]
    Check(String),
    /// The pod interface exists but is not this attachment's (code 108).
    #[error("{0}")]
    InterfaceExists(String),
    /// The given namespace is not usable (code 106, or 4 when the env names a bad path).
    #[error("{0}")]
    Netns(String),
    /// Several errors (DEL and GC keep going and report all of them).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<PluginError>),
}

impl PluginError {
    /// A configuration error (code 7).
    pub fn config(msg: impl Into<String>) -> Self {
        PluginError::Config(msg.into())
    }

    /// Wraps a datapath error with what was being done.
    pub fn datapath(context: impl Into<String>, source: weft_datapath::DatapathError) -> Self {
        PluginError::Datapath {
            context: context.into(),
            source,
        }
    }

    /// The CNI error code for this error.
    pub fn cni_code(&self) -> u32 {
        match self {
            PluginError::Cni(e) => e.code,
            PluginError::Config(_) => codes::INVALID_CONFIG,
            PluginError::Ipam(e) => e.cni_code(),
            PluginError::Datapath { source, .. } => datapath_code(source),
            PluginError::Delegate(DelegateError::Failed { code, .. }) if *code != 0 => *code,
            PluginError::Delegate(_) => codes::DELEGATE_FAILED,
            PluginError::Check(_) => codes::CHECK_MISMATCH,
            PluginError::InterfaceExists(_) => codes::INTERFACE_EXISTS,
            PluginError::Netns(_) => codes::NETNS_FAILURE,
            PluginError::Many(list) => list.first().map_or(codes::INTERNAL, Self::cni_code),
        }
    }

    /// Converts into the error object printed on stdout.
    pub fn into_cni(self) -> CniError {
        match self {
            PluginError::Cni(e) => e,
            PluginError::Delegate(DelegateError::Failed {
                plugin,
                code,
                msg,
                details,
            }) => {
                let code = if code == 0 {
                    codes::DELEGATE_FAILED
                } else {
                    code
                };
                CniError::new(code, format!("{plugin}: {msg}")).with_details(details)
            }
            other => CniError::new(other.cni_code(), other.to_string()),
        }
    }

    /// Folds a list of errors into one (or none).
    pub fn from_list(mut errs: Vec<PluginError>) -> Result<(), PluginError> {
        match errs.len() {
            0 => Ok(()),
            1 => Err(errs.remove(0)),
            _ => Err(PluginError::Many(errs)),
        }
    }
}

fn datapath_code(e: &weft_datapath::DatapathError) -> u32 {
    use weft_datapath::DatapathError as D;
    match e {
        D::Nft { .. } => codes::NFTABLES_FAILURE,
        D::NotNetns { .. } => codes::NETNS_FAILURE,
        D::Sysctl { .. } => codes::SYSCTL_FAILURE,
        _ => codes::NETLINK_FAILURE,
    }
}
