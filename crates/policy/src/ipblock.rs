//! Parsed form of an `ipBlock`, shared by validation, the evaluator and the compiler.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::IpBlock;

/// An `ipBlock` with its CIDRs parsed. Host bits in the text are dropped (`10.0.0.1/24` is
/// `10.0.0.0/24`), matching how Go's `net.ParseCIDR` result is used by the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedIpBlock {
    /// The block.
    pub cidr: IpNet,
    /// Sub-ranges excluded from it.
    pub except: Vec<IpNet>,
}

impl ParsedIpBlock {
    /// Is `ip` inside `cidr` and outside every `except`?
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.contains(&ip) && !self.except.iter().any(|e| e.contains(&ip))
    }
}

/// Parses one CIDR text; `None` if it is not `address/prefix`.
pub(crate) fn parse_cidr(text: &str) -> Option<IpNet> {
    // A bare address is not a CIDR for the API server; ipnet agrees, but be explicit.
    if !text.contains('/') {
        return None;
    }
    text.parse::<IpNet>().ok().map(|n| n.trunc())
}

impl IpBlock {
    /// Parses `cidr` and `except`; `None` if any of them is malformed (validation reports
    /// which one).
    pub fn parse(&self) -> Option<ParsedIpBlock> {
        let cidr = parse_cidr(&self.cidr)?;
        let except = self
            .except
            .iter()
            .map(|e| parse_cidr(e))
            .collect::<Option<Vec<_>>>()?;
        Some(ParsedIpBlock { cidr, except })
    }
}
