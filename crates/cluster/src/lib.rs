//! Pure cluster model for weft: cluster configuration, node records, per-node subnet
//! carving, route plans per backend and the node-local facts file.
//!
//! Nothing here performs I/O: the agent (`weftd`) feeds in what it read from the datastore
//! and the kernel, and applies the plans it gets back through the datapath crate.

mod carve;
mod config;
mod diff;
mod local;
mod mac;
mod node;
mod plan;

pub use carve::{CarveError, SubnetLease, carve_subnet, choose_subnet, choose_subnet_with_hints};
pub use config::{
    Backend, ClusterConfig, ConfigError, DEFAULT_NODE_PREFIX_V4, DEFAULT_NODE_PREFIX_V6,
    DEFAULT_VXLAN_PORT, DEFAULT_VXLAN_VNI, MtuError, VXLAN_OVERHEAD_V4, VXLAN_OVERHEAD_V6,
    derive_mtu,
};
pub use diff::{Diff, Keyed, PlanDiff, diff_keyed};
pub use local::{NODE_LOCAL_CONFIG_PATH, NodeLocalConfig};
pub use mac::{MacAddr, MacParseError};
pub use node::NodeRecord;
pub use plan::{
    FdbPlan, NeighbourPlan, NodePlan, PeerError, PlanError, RejectedPeer, RoutePlan, VXLAN_DEVICE,
    VxlanDevicePlan, plan_routes, vtep_address,
};
