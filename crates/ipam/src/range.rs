//! Pure range and range-set math. Addresses are handled as `u128` so IPv4 and IPv6 share
//! one code path; the family travels with the subnet.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Converts an address to its integer value (IPv4 occupies the low 32 bits).
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Converts an integer back to an address of the family of `like`. For IPv4 the value is
/// truncated to 32 bits; callers only pass values inside an IPv4 subnet.
pub fn u128_to_ip(value: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// True when both addresses are of the same family.
pub fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// One validated pool: `range_start..=range_end` inside `subnet`, with its gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet, host bits clear; its prefix length goes into every allocated address.
    pub subnet: IpNet,
    /// First address of the pool (inclusive).
    pub range_start: IpAddr,
    /// Last address of the pool (inclusive).
    pub range_end: IpAddr,
    /// Gateway, never handed out. host-local defaults it to network+1.
    pub gateway: IpAddr,
}

impl Range {
    /// Builds a range with host-local's defaults and checks it. `Err` carries a message
    /// naming the offending value.
    pub fn build(
        subnet: IpNet,
        range_start: Option<IpAddr>,
        range_end: Option<IpAddr>,
        gateway: Option<IpAddr>,
    ) -> Result<Range, String> {
        let host_bits = subnet.max_prefix_len() - subnet.prefix_len();
        if host_bits < 2 {
            return Err(format!(
                "subnet {subnet} is too small: it needs at least 2 host bits"
            ));
        }
        if subnet.trunc() != subnet {
            return Err(format!(
                "subnet {subnet} has host bits set (did you mean {}?)",
                subnet.trunc()
            ));
        }
        let network = ip_to_u128(subnet.network());
        let last = ip_to_u128(subnet.broadcast());
        let like = subnet.network();
        // host-local: start defaults to network+1 (the gateway is skipped while iterating);
        // end defaults to the last address, minus one on IPv4 where it is the broadcast.
        let default_end = if like.is_ipv4() { last - 1 } else { last };
        let range_start = range_start.unwrap_or(u128_to_ip(network + 1, like));
        let range_end = range_end.unwrap_or(u128_to_ip(default_end, like));
        let gateway = gateway.unwrap_or(u128_to_ip(network + 1, like));
        for (what, ip) in [
            ("rangeStart", range_start),
            ("rangeEnd", range_end),
            ("gateway", gateway),
        ] {
            if !same_family(ip, like) || !subnet.contains(&ip) {
                return Err(format!("{what} {ip} is outside subnet {subnet}"));
            }
        }
        if ip_to_u128(range_start) > ip_to_u128(range_end) {
            return Err(format!(
                "rangeStart {range_start} is after rangeEnd {range_end} in subnet {subnet}"
            ));
        }
        Ok(Range {
            subnet,
            range_start,
            range_end,
            gateway,
        })
    }

    /// True for IPv4 ranges.
    pub fn is_ipv4(&self) -> bool {
        self.subnet.network().is_ipv4()
    }

    fn start(&self) -> u128 {
        ip_to_u128(self.range_start)
    }

    fn end(&self) -> u128 {
        ip_to_u128(self.range_end)
    }

    /// True when `ip` lies within `range_start..=range_end`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let v = ip_to_u128(ip);
        same_family(ip, self.range_start) && self.start() <= v && v <= self.end()
    }

    /// Why `ip` (inside this range) may not be handed out, or `None` when it may.
    pub fn reserved_reason(&self, ip: IpAddr) -> Option<&'static str> {
        if ip == self.gateway {
            Some("it is the gateway")
        } else if ip == self.subnet.network() {
            Some("it is the network address")
        } else if self.is_ipv4() && ip == self.subnet.broadcast() {
            Some("it is the broadcast address")
        } else {
            None
        }
    }

    /// True when `ip` is in the pool and is not the network, broadcast or gateway address.
    pub fn is_allocatable(&self, ip: IpAddr) -> bool {
        self.contains(ip) && self.reserved_reason(ip).is_none()
    }

    /// True when the two pools share an address.
    pub fn overlaps(&self, other: &Range) -> bool {
        same_family(self.range_start, other.range_start)
            && self.start() <= other.end()
            && other.start() <= self.end()
    }

    /// Number of addresses in `range_start..=range_end` (saturating for a full IPv6 space).
    pub fn size(&self) -> u128 {
        (self.end() - self.start()).saturating_add(1)
    }

    /// Number of addresses that can actually be handed out.
    pub fn allocatable_count(&self) -> u128 {
        let mut reserved = vec![self.gateway, self.subnet.network()];
        if self.is_ipv4() {
            reserved.push(self.subnet.broadcast());
        }
        reserved.sort();
        reserved.dedup();
        let excluded = reserved.iter().filter(|ip| self.contains(**ip)).count() as u128;
        self.size().saturating_sub(excluded)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}-{}] gw {}",
            self.subnet, self.range_start, self.range_end, self.gateway
        )
    }
}

/// One entry of `ranges`: disjoint pools of one family; one address is taken per set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    /// The pools, in configuration order.
    pub ranges: Vec<Range>,
}

impl RangeSet {
    /// The first pool containing `ip`.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    /// True when some pool of the set contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// True when `ip` may be handed out from this set.
    pub fn is_allocatable(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some_and(|r| r.is_allocatable(ip))
    }

    /// Allocatable addresses in host-local's round-robin order: starting right after
    /// `last_reserved` when it lies in the set (else at the first pool's start), wrapping
    /// across the pools, each address visited once.
    pub fn candidates(&self, last_reserved: Option<IpAddr>) -> Candidates<'_> {
        let total = self
            .ranges
            .iter()
            .fold(0u128, |acc, r| acc.saturating_add(r.size()));
        let position = last_reserved.and_then(|last| {
            let index = self.ranges.iter().position(|r| r.contains(last))?;
            Some((index, ip_to_u128(last)))
        });
        let mut iter = Candidates {
            set: self,
            index: 0,
            next: self.ranges.first().map_or(0, Range::start),
            remaining: total,
        };
        if let Some((index, last)) = position {
            iter.index = index;
            iter.next = last;
            iter.step();
        }
        iter
    }

    /// The first candidate (see [`RangeSet::candidates`]) not in `taken`.
    pub fn first_free(
        &self,
        last_reserved: Option<IpAddr>,
        taken: &HashSet<IpAddr>,
    ) -> Option<IpAddr> {
        self.candidates(last_reserved)
            .find(|ip| !taken.contains(ip))
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.ranges.iter().map(Range::to_string).collect();
        f.write_str(&parts.join(", "))
    }
}

/// Iterator returned by [`RangeSet::candidates`].
#[derive(Debug)]
pub struct Candidates<'a> {
    set: &'a RangeSet,
    index: usize,
    next: u128,
    remaining: u128,
}

impl Candidates<'_> {
    /// Moves `next` one address forward, wrapping to the next pool after a pool's end.
    fn step(&mut self) {
        let Some(range) = self.set.ranges.get(self.index) else {
            return;
        };
        if self.next >= range.end() || self.next < range.start() {
            self.index = (self.index + 1) % self.set.ranges.len();
            self.next = self.set.ranges.get(self.index).map_or(0, Range::start);
        } else {
            self.next += 1;
        }
    }
}

impl Iterator for Candidates<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        while self.remaining > 0 {
            let range = self.set.ranges.get(self.index)?;
            let ip = u128_to_ip(self.next, range.range_start);
            self.remaining -= 1;
            self.step();
            if range.is_allocatable(ip) {
                return Some(ip);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn range(subnet: &str) -> Range {
        Range::build(subnet.parse().unwrap(), None, None, None).unwrap()
    }

    #[test]
    fn ipv4_defaults() {
        let r = range("10.1.2.0/24");
        assert_eq!(r.range_start, ip("10.1.2.1"));
        assert_eq!(r.range_end, ip("10.1.2.254"));
        assert_eq!(r.gateway, ip("10.1.2.1"));
        assert_eq!(r.allocatable_count(), 253);
    }

    #[test]
    fn ipv6_defaults_keep_last_address() {
        let r = range("2001:db8::/126");
        assert_eq!(r.range_end, ip("2001:db8::3"));
        let set = RangeSet { ranges: vec![r] };
        let all: Vec<IpAddr> = set.candidates(None).collect();
        assert_eq!(all, vec![ip("2001:db8::2"), ip("2001:db8::3")]);
    }

    #[test]
    fn candidates_round_robin_and_wrap_across_pools() {
        let a = Range::build(
            "10.0.0.0/24".parse().unwrap(),
            Some(ip("10.0.0.10")),
            Some(ip("10.0.0.11")),
            None,
        )
        .unwrap();
        let b = Range::build(
            "10.0.1.0/24".parse().unwrap(),
            Some(ip("10.0.1.20")),
            Some(ip("10.0.1.21")),
            None,
        )
        .unwrap();
        let set = RangeSet { ranges: vec![a, b] };
        let order: Vec<IpAddr> = set.candidates(Some(ip("10.0.0.11"))).collect();
        assert_eq!(
            order,
            vec![
                ip("10.0.1.20"),
                ip("10.0.1.21"),
                ip("10.0.0.10"),
                ip("10.0.0.11")
            ]
        );
        let from_unknown: Vec<IpAddr> = set.candidates(Some(ip("192.168.0.1"))).collect();
        assert_eq!(from_unknown.first(), Some(&ip("10.0.0.10")));
        let taken: HashSet<IpAddr> = [ip("10.0.1.21")].into();
        assert_eq!(
            set.first_free(Some(ip("10.0.1.20")), &taken),
            Some(ip("10.0.0.10"))
        );
    }

    #[test]
    fn never_network_broadcast_or_gateway() {
        let r = Range::build(
            "10.1.2.0/24".parse().unwrap(),
            Some(ip("10.1.2.0")),
            Some(ip("10.1.2.255")),
            Some(ip("10.1.2.7")),
        )
        .unwrap();
        let set = RangeSet { ranges: vec![r] };
        let all: HashSet<IpAddr> = set.candidates(None).collect();
        assert_eq!(all.len(), 253);
        for bad in ["10.1.2.0", "10.1.2.255", "10.1.2.7"] {
            assert!(!all.contains(&ip(bad)));
        }
        assert_eq!(set.ranges[0].allocatable_count(), 253);
    }

    #[test]
    fn build_errors() {
        let cases = [
            ("10.0.0.0/31", None, None, None, "too small"),
            ("10.0.0.0/32", None, None, None, "too small"),
            ("2001:db8::/127", None, None, None, "too small"),
            ("2001:db8::/128", None, None, None, "too small"),
            ("10.1.2.5/24", None, None, None, "host bits"),
            ("10.1.2.0/24", Some("10.1.3.1"), None, None, "rangeStart"),
            ("10.1.2.0/24", None, Some("10.1.3.1"), None, "rangeEnd"),
            (
                "10.1.2.0/24",
                Some("10.1.2.9"),
                Some("10.1.2.8"),
                None,
                "after",
            ),
            ("10.1.2.0/24", None, None, Some("10.9.9.9"), "gateway"),
            ("10.1.2.0/24", Some("2001:db8::1"), None, None, "rangeStart"),
        ];
        for (subnet, start, end, gw, needle) in cases {
            let err = Range::build(
                subnet.parse().unwrap(),
                start.map(ip),
                end.map(ip),
                gw.map(ip),
            )
            .unwrap_err();
            assert!(err.contains(needle), "{subnet}: {err}");
        }
    }

    #[test]
    fn overlap() {
        let a = range("10.0.0.0/24");
        let b = Range::build("10.0.0.0/16".parse().unwrap(), None, None, None).unwrap();
        let c = range("10.0.1.0/24");
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
        assert!(!a.overlaps(&range("2001:db8::/64")));
    }
}
