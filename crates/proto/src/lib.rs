//! weft-proto: the pure CNI protocol layer.
//!
//! Takes data and returns data; never reads the process environment, stdin or the host.
//! - [`mod@env`]: `CNI_COMMAND` and friends → [`CniEnv`] (errors are code 4).
//! - [`args`]: `CNI_ARGS` → [`CniArgs`].
//! - [`config`]: stdin → [`NetConf`] + [`CniVersion`], with the Ref skel's validation order.
//! - [`result`] + `convert`: one internal [`CniResult`], written and read for every
//!   supported version via the serde structs in [`wire`].
//! - [`gc`]: GC's valid-attachment list.
//! - [`error`], [`codes`]: the Error object and every code weft emits.
//! - [`version`]: versions, verb gates and VERSION output.

pub mod args;
pub mod codes;
pub mod config;
mod convert;
pub mod env;
pub mod error;
pub mod gc;
pub mod ids;
pub mod mac;
pub mod result;
pub mod version;
pub mod wire;

pub use args::CniArgs;
pub use config::{IpRequest, NetConf, RuntimeConfig, decode_plugin_conf};
pub use env::{CniEnv, Command};
pub use error::CniError;
pub use gc::{Attachment, AttachmentsSource, ValidAttachments};
pub use ids::{ContainerId, IfName, is_valid_identifier, validate_network_name};
pub use mac::MacAddr;
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::{CniVersion, SUPPORTED, VersionInfo, select_version};
