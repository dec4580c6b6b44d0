//! weft's CNI plugins: the entry point (`skel`), the main plugin `weft` (bridge or ptp
//! wiring), the standalone IPAM plugin `weft-ipam`, and what they share: configuration,
//! pure planning, the netlink executor, IPAM glue, delegation and masquerade rules.
//!
//! Flow of an ADD: `skel` validates env and config → `conf` parses the plugin fields →
//! `ipam` reserves addresses (in-process or delegated) → `plan` computes the desired state
//! as data → `policy_claim` waits for weftd's rules → `apply` carries it out → the result is converted to the request's version.

pub mod apply;
pub mod conf;
pub mod delegate;
pub mod error;
pub mod ipam;
pub mod ipam_plugin;
pub mod macspoof;
pub mod masq;
pub mod naming;
pub mod nft_apply;
pub mod node_config;
pub mod plan;
pub mod policy_claim;
pub mod skel;
pub mod sysctl;
pub mod weft;

pub use error::PluginError;
pub use ipam_plugin::WeftIpam;
pub use skel::{Plugin, Request, main_with, run};
pub use weft::Weft;
