//! NetworkPolicy tooling shared by `weftctl lab trace` and `weftctl policy trace`: the
//! datastore's objects turned into the evaluator's [`Cluster`] ([`load`]), and one traced
//! packet with the policies and rules that decided it ([`trace`]).

pub mod load;
pub mod trace;

pub use load::{
    KIND_NAMESPACES, KIND_NODES, KIND_PODS, KIND_POLICIES, LoadedCluster, StoreObjects,
    cluster_from_objects, load_cluster, node_from_record,
};
pub use trace::{Trace, parse_endpoint, parse_protocol, render_trace, trace, trace_json};
