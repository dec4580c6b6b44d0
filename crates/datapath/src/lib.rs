//! Every kernel side effect of weft: rtnetlink (links, addresses, routes, neighbours/FDB),
//! nftables (script text piped to `nft -f -`), sysctls and network namespaces.
//!
//! All operations are synchronous and never change the calling thread's network namespace:
//! work inside another namespace happens on short-lived threads (see [`netns::run_in_netns`]),
//! and a [`Netlink`] socket opened there stays bound to that namespace.

pub mod detach;
pub mod error;
pub mod named;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod sysctl;

pub use error::{DatapathError, Result};
pub use named::{create_named_netns, delete_named_netns, list_named_netns, named_netns_path};
pub use netlink::{
    AddrInfo, BridgePortFlags, FdbEntry, LinkInfo, Neighbour, Netlink, RouteScopeKind, RouteSpec,
    VethSpec, VxlanSpec,
};
pub use netns::{NetnsFd, run_in_netns};
