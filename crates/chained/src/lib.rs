//! Chained and auxiliary plugins that sit after the main plugin in a conflist, drop-in
//! replacements for the reference plugins of the same role (only `type` changes):
//!
//! | weft            | reference   | what it does |
//! |-----------------|-------------|--------------|
//! | `weft-loopback` | `loopback`  | `lo` up in the pod |
//! | `weft-tuning`   | `tuning`    | pod sysctls (`net/` only), MAC, MTU, promisc, allmulti, txQLen; originals restored on DEL |
//! | `weft-portmap`  | `portmap`   | hostPorts in nft table `inet weft_portmap` ([`portmap`]) |
//! | `weft-bandwidth`| `bandwidth` | tbf on the node-side veth, ifb + tbf for pod egress ([`bandwidth`]) |
//!
//! A Kubernetes-style conflist (the main plugin may be `weft` or the reference `bridge`):
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "k8s", "plugins": [
//!   {"type": "bridge", "bridge": "cni0", "isDefaultGateway": true,
//!    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]]}},
//!   {"type": "weft-portmap", "capabilities": {"portMappings": true}, "snat": true},
//!   {"type": "weft-bandwidth", "capabilities": {"bandwidth": true}},
//!   {"type": "weft-tuning", "sysctl": {"net.core.somaxconn": "1024"}}
//! ]}
//! ```
//!
//! Every plugin here requires `prevResult` on ADD and CHECK (except loopback), passes it on
//! (amended only where the reference amends it: tuning's MAC, bandwidth's ifb), succeeds
//! on repeated DEL and on DEL without `prevResult`/`runtimeConfig`, and implements GC for
//! the state it keeps (portmap elements, bandwidth ifbs, tuning backups).

pub mod bandwidth;
pub mod common;
pub mod loopback;
pub mod portmap;
pub mod tuning;

pub use bandwidth::Bandwidth;
pub use loopback::Loopback;
pub use portmap::Portmap;
pub use tuning::Tuning;
