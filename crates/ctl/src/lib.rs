//! Library behind `weftctl`: the `lab` command set, a multi-node weft cluster built from
//! network namespaces on one machine (the root namespace is never touched), and the
//! NetworkPolicy tooling (`policy`) shared by `weftctl lab trace` and `weftctl policy trace`.

pub mod lab;
pub mod ops;
pub mod policy;
