//! Address interval arithmetic for interval sets: `ipBlock` cidr minus except, merged with
//! pod addresses. nft rejects overlapping elements, so everything is normalized here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::Family;

/// An inclusive address range of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrRange {
    /// Family.
    pub family: Family,
    /// First address as a number.
    pub start: u128,
    /// Last address as a number.
    pub end: u128,
}

fn to_num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn to_ip(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

impl AddrRange {
    /// One address.
    pub fn single(ip: IpAddr) -> Self {
        let n = to_num(ip);
        Self {
            family: Family::of(&ip),
            start: n,
            end: n,
        }
    }

    /// A CIDR block.
    pub fn net(net: IpNet) -> Self {
        Self {
            family: Family::of(&net.network()),
            start: to_num(net.network()),
            end: to_num(net.broadcast()),
        }
    }

    /// `self` minus `hole` (0, 1 or 2 pieces).
    fn minus(self, hole: AddrRange) -> Vec<AddrRange> {
        if hole.family != self.family || hole.end < self.start || hole.start > self.end {
            return vec![self];
        }
        let mut out = Vec::new();
        if hole.start > self.start {
            out.push(Self {
                end: hole.start - 1,
                ..self
            });
        }
        if hole.end < self.end {
            out.push(Self {
                start: hole.end + 1,
                ..self
            });
        }
        out
    }
}

/// `cidr` minus all `except` blocks.
pub(crate) fn block_minus(cidr: IpNet, except: &[IpNet]) -> Vec<AddrRange> {
    except.iter().fold(vec![AddrRange::net(cidr)], |pieces, e| {
        pieces
            .into_iter()
            .flat_map(|p| p.minus(AddrRange::net(*e)))
            .collect()
    })
}

/// Sorts and merges overlapping ranges of `family`, dropping other families.
pub(crate) fn normalize(family: Family, mut ranges: Vec<AddrRange>) -> Vec<AddrRange> {
    ranges.retain(|r| r.family == family);
    ranges.sort();
    let mut out: Vec<AddrRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            // Only overlaps are merged: adjacent pod addresses stay separate elements, so a pod
            // joining or leaving is one element added or removed, not a re-merged range.
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

impl fmt::Display for AddrRange {
    /// `a`, `a/len` when the range is exactly a prefix, else `a-b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = to_ip(self.family, self.start);
        if self.start == self.end {
            return write!(f, "{first}");
        }
        let bits: u32 = if self.family == Family::V4 { 32 } else { 128 };
        let size = self.end - self.start;
        let aligned = size
            .checked_add(1)
            .is_some_and(|s| s.is_power_of_two() && self.start.is_multiple_of(s))
            || (size == u128::MAX && self.start == 0);
        if aligned {
            let host_bits = if size == u128::MAX {
                128
            } else {
                (size + 1).trailing_zeros()
            };
            return write!(f, "{first}/{}", bits.saturating_sub(host_bits));
        }
        write!(f, "{first}-{}", to_ip(self.family, self.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipblock::ParsedIpBlock;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn display_forms() {
        let r = AddrRange::net(net("10.0.0.0/24"));
        assert_eq!(r.to_string(), "10.0.0.0/24");
        assert_eq!(
            AddrRange::single("10.0.0.7".parse().unwrap()).to_string(),
            "10.0.0.7"
        );
        assert_eq!(AddrRange::net(net("0.0.0.0/0")).to_string(), "0.0.0.0/0");
        assert_eq!(AddrRange::net(net("::/0")).to_string(), "::/0");
        assert_eq!(AddrRange::net(net("fd00::/64")).to_string(), "fd00::/64");
        let odd = AddrRange {
            family: Family::V4,
            start: 1,
            end: 4,
        };
        assert_eq!(odd.to_string(), "0.0.0.1-0.0.0.4");
    }

    #[test]
    fn cidr_minus_except() {
        let pieces = block_minus(
            net("10.0.0.0/24"),
            &[net("10.0.0.0/26"), net("10.0.0.128/25")],
        );
        let text: Vec<String> = pieces.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["10.0.0.64/26"]);
        let pieces = block_minus(net("10.0.0.0/24"), &[net("10.0.0.5/32")]);
        let text: Vec<String> = pieces.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["10.0.0.0-10.0.0.4", "10.0.0.6-10.0.0.255"]);
    }

    #[test]
    fn normalize_merges_overlaps_keeps_adjacent_and_filters_family() {
        let a = AddrRange::net(net("10.0.0.0/24"));
        let inside = AddrRange::single("10.0.0.9".parse().unwrap());
        let adjacent = AddrRange::single("10.0.1.0".parse().unwrap());
        let v6 = AddrRange::single("fd00::1".parse().unwrap());
        assert_eq!(
            normalize(Family::V4, vec![adjacent, inside, v6, a]),
            vec![a, adjacent]
        );
        assert_eq!(normalize(Family::V6, vec![a, v6]), vec![v6]);
    }

    proptest! {
        #[test]
        fn block_minus_agrees_with_contains(base in any::<u32>(), len in 8u8..=30, holes in prop::collection::vec((any::<u32>(), 0u8..=32), 0..4), probe in any::<u32>()) {
            let cidr = IpNet::new(std::net::Ipv4Addr::from(base).into(), len).unwrap().trunc();
            let except: Vec<IpNet> = holes.into_iter()
                .map(|(h, l)| IpNet::new(std::net::Ipv4Addr::from(h).into(), l.max(len)).unwrap().trunc())
                .collect();
            let ranges = normalize(Family::V4, block_minus(cidr, &except));
            let block = ParsedIpBlock { cidr, except };
            // Probe near the block so hits are common.
            let v4 = std::net::Ipv4Addr::from(base ^ (probe >> len));
            let n = u128::from(u32::from(v4));
            let in_ranges = ranges.iter().any(|r| r.start <= n && n <= r.end);
            let ip = IpAddr::V4(v4);
            prop_assert_eq!(in_ranges, block.contains(ip));
        }
    }
}
