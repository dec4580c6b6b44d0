//! Kubernetes `networking.k8s.io/v1` NetworkPolicy for weft, pure (no I/O):
//! - [`model`]: the wire types, deserialized from standard manifests;
//! - [`validate`]: API-server validation into [`ValidatedPolicy`];
//! - [`inventory`]: namespaces, pods and nodes the policies are evaluated against;
//! - [`k8s`]: Pod, Namespace and NetworkPolicy objects (JSON) into that inventory;
//! - [`eval`]: the reference evaluator ("is this packet allowed, and why?");
//! - [`nft`]: compilation into one weft-owned nftables table, as data plus rendered text.

pub mod eval;
pub mod inventory;
pub mod ipblock;
pub mod k8s;
pub mod model;
pub mod nft;
pub mod selector;
pub mod validate;

pub use eval::{Decision, Direction, Endpoint, EvalError, PolicyRef, Verdict, evaluate};
pub use inventory::{Cluster, ContainerPort, NAMESPACE_NAME_LABEL, Namespace, Node, Pod};
pub use model::{
    EgressRule, IngressRule, IntOrString, IpBlock, LabelSelector, LabelSelectorRequirement,
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, ObjectMeta, Operator,
    PolicyType, Protocol,
};
pub use selector::Labels;
pub use validate::{FieldError, ValidatedPolicy, ValidationError};
