//! Library behind `weftctl`: the `lab` command set, a multi-node weft cluster built from
//! network namespaces on one machine (the root namespace is never touched).

pub mod lab;
