//! Compilation of policies into one weft-owned nftables table, as plain data
//! ([`Ruleset`]) plus its text form ([`Ruleset::render`]) for `nft -f -`.
//!
//! Layout (per node; `compile` gets the node name):
//! ```text
//! table inet weft_policy
//!   set  wp_node4/6        this node's own addresses            (accepted: kubelet probes)
//!   set  wp_quarantine4/6  addresses claimed by pods not known yet (dropped both ways)
//!   set  wp_s4_<h>/6_<h>   peer addresses of one policy rule      (interval sets: pod IPs of
//!                          the selected pods plus ipBlock cidr minus except, merged)
//!   map  wp_egress4/6      local pod address -> jump wp_c_<h>     (egress-isolated pods)
//!   map  wp_ingress4/6     local pod address -> jump wp_c_<h>     (ingress-isolated pods)
//!   chain wp_c_<h>         the rules of one group of pods with identical rules:
//!                          `ip saddr @wp_s4_<h> tcp dport { 80, 81 } accept` ..., then `drop`
//!                          (egress chains `return` instead of `accept`, so the ingress
//!                          side of the destination is still checked)
//!   chain wp_forward       hook forward: quarantined saddr/daddr drop; ct established,
//!                          related accept; node addresses accept;
//!                          `ip saddr vmap @wp_egress4`; `ip daddr vmap @wp_ingress4`
//! ```
//! A packet costs a constant number of hash lookups plus the rules of the one group chain
//! of its pod: it does not grow with the number of pods or of policies elsewhere.
//! Pods with identical compiled rules share a chain whose name is a hash of its content,
//! so adding a pod, removing one or changing labels usually changes set and map elements
//! only ([`element_delta`]).
//!
//! `ipBlock.except` is not a separate "preceding" set: the compiler subtracts the except
//! blocks from the cidr and merges the pieces with the selected pods' addresses into the
//! rule's one interval set. One lookup per rule, and no ordering between an except-drop and
//! another rule that might allow the same address. Sets are named by the peer list's
//! definition (plus the policy namespace), so equal peer lists share one set and a set keeps
//! its name while its members change.
//!
//! Assumptions: only traffic that is routed by the node passes the `forward` hook. Same-node
//! pods on one Linux bridge talk at L2 and are seen only through `br_netfilter`
//! (`net.bridge.bridge-nf-call-iptables/ip6tables=1`, which weftd sets in its namespace
//! when it enforces policy).
//! Node-to-pod traffic leaves through `output` and is allowed by design (no output chain).
//! Likewise a pod's traffic to its own node's addresses ends in `input` and is not filtered
//! here, although the evaluator would police it as egress to a non-pod address: a lab
//! differential test should not probe pod → own-node addresses.
//! The maps hold only this node's pods, so each side is checked once, on the node of the pod
//! it protects.

mod compile;
mod ident;
mod ranges;
mod render;
mod simulate;

pub use compile::{compile, compile_with_quarantine};
pub use ident::{Ident, IdentError};
pub use ranges::AddrRange;
pub use render::{ElementDelta, ElementOp, element_delta};

use std::net::IpAddr;

/// Name of the table weft owns (family `inet`).
pub const TABLE: &str = "weft_policy";

/// Address family of a set or map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 (`ip`, `ipv4_addr`).
    V4,
    /// IPv6 (`ip6`, `ipv6_addr`).
    V6,
}

impl Family {
    /// Family of an address.
    pub fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() { Self::V4 } else { Self::V6 }
    }
}

/// An interval set of addresses of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrSet {
    /// Set name.
    pub name: Ident,
    /// Family.
    pub family: Family,
    /// Sorted, non-overlapping, non-adjacent ranges.
    pub elements: Vec<AddrRange>,
}

/// A verdict map from a pod address to `jump <chain>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictMap {
    /// Map name.
    pub name: Ident,
    /// Family of the keys.
    pub family: Family,
    /// Sorted by address.
    pub elements: Vec<(IpAddr, Ident)>,
}

/// Which packet address a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrField {
    /// `saddr` (ingress rules: the peer is the source).
    Saddr,
    /// `daddr` (egress rules: the peer is the destination).
    Daddr,
}

/// Transport protocol in nft terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4 {
    /// `tcp`.
    Tcp,
    /// `udp`.
    Udp,
    /// `sctp`.
    Sctp,
}

/// Port match of one protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMatch {
    /// Protocol.
    pub l4: L4,
    /// Inclusive ranges, sorted and merged; `None` = every port (`meta l4proto`).
    pub ports: Option<Vec<(u16, u16)>>,
}

/// Final statement of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `accept`.
    Accept,
    /// `return` (egress allowed: go on to the ingress check).
    Return,
    /// `drop`.
    Drop,
}

/// One rule of a group chain: all present matches ANDed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Address match: field, family and peer set.
    pub addr: Option<(AddrField, Family, Ident)>,
    /// Port match.
    pub ports: Option<PortMatch>,
    /// Statement.
    pub action: Action,
}

/// A regular chain (a pod group's rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Chain name.
    pub name: Ident,
    /// Rules in order.
    pub rules: Vec<Rule>,
}

/// The whole table. The base chain `wp_forward`, the node and quarantine sets and the four
/// maps always exist (possibly empty), so their presence never forces a full reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Node address sets and peer sets, sorted by name.
    pub sets: Vec<AddrSet>,
    /// `wp_egress4`, `wp_egress6`, `wp_ingress4`, `wp_ingress6`.
    pub maps: Vec<VerdictMap>,
    /// Group chains, sorted by name.
    pub chains: Vec<Chain>,
}
