//! Carving per-node pod subnets out of a cluster CIDR.
//!
//! Addresses of both families are handled as `u128` offsets so one interval walk serves
//! IPv4 and IPv6; the walk sorts the taken ranges once, so picking a subnet among `n`
//! leases costs O(n log n).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A subnet held by a node, as stored in the datastore.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubnetLease {
    /// The leased pod subnet.
    pub subnet: IpNet,
    /// Name of the node holding it.
    pub node: String,
}

/// Why no subnet could be carved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarveError {
    /// Every /`node_prefix` block of `cidr` overlaps a lease.
    #[error("cluster CIDR {cidr} has no free /{node_prefix} subnet left")]
    Exhausted {
        /// The cluster CIDR.
        cidr: IpNet,
        /// Per-node prefix length.
        node_prefix: u8,
    },
    /// The node prefix is shorter than the CIDR's or longer than the family allows.
    #[error("per-node prefix /{node_prefix} does not fit cluster CIDR {cidr}")]
    BadPrefix {
        /// The cluster CIDR.
        cidr: IpNet,
        /// Per-node prefix length.
        node_prefix: u8,
    },
}

/// The first (lowest) `/node_prefix` block of `cidr` that overlaps none of `taken`.
///
/// `taken` may hold subnets of any size and either family; those of the other family or
/// outside `cidr` are ignored. The result is deterministic for a given taken set.
pub fn carve_subnet(cidr: IpNet, node_prefix: u8, taken: &[IpNet]) -> Result<IpNet, CarveError> {
    let cidr = cidr.trunc();
    let bits = family_bits(&cidr);
    if node_prefix < cidr.prefix_len() || node_prefix > bits {
        return Err(CarveError::BadPrefix { cidr, node_prefix });
    }
    let exhausted = CarveError::Exhausted { cidr, node_prefix };
    let (lo, hi) = range(&cidr);
    let mask = host_mask(bits, node_prefix);

    let mut busy: Vec<(u128, u128)> = taken
        .iter()
        .filter(|t| family_bits(t) == bits)
        .map(|t| range(&t.trunc()))
        .filter(|&(s, e)| e >= lo && s <= hi)
        .collect();
    busy.sort_unstable();

    let mut cursor = lo;
    for (start, end) in busy {
        if end < cursor {
            continue;
        }
        // `cursor` is block-aligned and inside `cidr`, so `cursor + mask` cannot overflow.
        if start > cursor + mask {
            break;
        }
        cursor = end
            .checked_add(1)
            .and_then(|next| align_up(next, mask))
            .ok_or_else(|| exhausted.clone())?;
        if cursor > hi {
            return Err(exhausted);
        }
    }
    if cursor > hi {
        return Err(exhausted);
    }
    Ok(net_from(bits, cursor, node_prefix))
}

/// The subnet `node` should hold in `cidr`: the lowest one it already leases there (so a
/// restarted agent keeps its pods' addresses), else the first free one.
pub fn choose_subnet(
    cidr: IpNet,
    node_prefix: u8,
    leases: &[SubnetLease],
    node: &str,
) -> Result<IpNet, CarveError> {
    choose_subnet_with_hints(cidr, node_prefix, leases, node, &[])
}

/// Like [`choose_subnet`], but when the node holds nothing in `cidr`, a free subnet from
/// `hints` (e.g. what the node used before its lease expired, read back from its
/// node-local facts file) is preferred over the first free one, so running pods keep
/// working after an outage longer than the lease TTL. Unusable hints (wrong size, outside
/// `cidr`, taken) are ignored.
pub fn choose_subnet_with_hints(
    cidr: IpNet,
    node_prefix: u8,
    leases: &[SubnetLease],
    node: &str,
    hints: &[IpNet],
) -> Result<IpNet, CarveError> {
    let cidr = cidr.trunc();
    let own = leases
        .iter()
        .filter(|l| l.node == node)
        .map(|l| l.subnet)
        .filter(|s| s.prefix_len() == node_prefix && s.trunc() == *s && cidr.contains(s))
        .min();
    if let Some(subnet) = own {
        return Ok(subnet);
    }
    let taken: Vec<IpNet> = leases.iter().map(|l| l.subnet).collect();
    let free_hint = hints.iter().copied().find(|h| {
        h.prefix_len() == node_prefix
            && h.trunc() == *h
            && cidr.contains(h)
            && !taken
                .iter()
                .any(|t| t.contains(&h.network()) || h.contains(&t.network()))
    });
    match free_hint {
        Some(hint) => Ok(hint),
        None => carve_subnet(cidr, node_prefix, &taken),
    }
}

fn family_bits(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => 32,
        IpNet::V6(_) => 128,
    }
}

/// Host bits of a `/prefix` block as a mask (e.g. /24 in IPv4 → 0xff).
fn host_mask(bits: u8, prefix: u8) -> u128 {
    let host_bits = u32::from(bits.saturating_sub(prefix));
    u128::MAX
        .checked_shr(128 - host_bits)
        .filter(|_| host_bits > 0)
        .unwrap_or(0)
}

fn align_up(value: u128, mask: u128) -> Option<u128> {
    value.checked_add(mask).map(|v| v & !mask)
}

/// First and last address of a (truncated) network, as offsets.
fn range(net: &IpNet) -> (u128, u128) {
    let start = match net.network() {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    (start, start | host_mask(family_bits(net), net.prefix_len()))
}

fn net_from(bits: u8, start: u128, prefix: u8) -> IpNet {
    let addr = if bits == 32 {
        // Values of the IPv4 walk never exceed u32::MAX: they stay inside the cidr.
        IpAddr::V4(Ipv4Addr::from(u32::try_from(start).unwrap_or(u32::MAX)))
    } else {
        IpAddr::V6(Ipv6Addr::from(start))
    };
    // The prefix was checked against the family width by the caller.
    IpNet::new(addr, prefix).unwrap_or_else(|_| IpNet::from(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn first_free_in_order() {
        let c = n("10.244.0.0/16");
        assert_eq!(carve_subnet(c, 24, &[]).unwrap(), n("10.244.0.0/24"));
        let taken = [n("10.244.0.0/24"), n("10.244.2.0/24")];
        assert_eq!(carve_subnet(c, 24, &taken).unwrap(), n("10.244.1.0/24"));
        let taken = [n("10.244.1.0/24"), n("10.244.0.0/24")];
        assert_eq!(carve_subnet(c, 24, &taken).unwrap(), n("10.244.2.0/24"));
    }

    #[test]
    fn odd_sized_taken_blocks() {
        let c = n("10.244.0.0/16");
        // A /23 covers two blocks; a /28 inside the third makes it unusable too.
        let taken = [n("10.244.0.0/23"), n("10.244.2.16/28")];
        assert_eq!(carve_subnet(c, 24, &taken).unwrap(), n("10.244.3.0/24"));
        // A supernet of the cluster CIDR takes everything.
        assert!(matches!(
            carve_subnet(c, 24, &[n("10.0.0.0/8")]),
            Err(CarveError::Exhausted { .. })
        ));
        // Other family and outside ranges are ignored.
        let taken = [n("fd00::/8"), n("10.245.0.0/24")];
        assert_eq!(carve_subnet(c, 24, &taken).unwrap(), n("10.244.0.0/24"));
    }

    #[test]
    fn exhaustion() {
        let c = n("10.244.0.0/22");
        let taken: Vec<IpNet> = (0..4).map(|i| n(&format!("10.244.{i}.0/24"))).collect();
        assert_eq!(
            carve_subnet(c, 24, &taken),
            Err(CarveError::Exhausted {
                cidr: c,
                node_prefix: 24
            })
        );
        assert_eq!(
            carve_subnet(c, 24, &taken[..3]).unwrap(),
            n("10.244.3.0/24")
        );
    }

    #[test]
    fn edges_of_the_address_space() {
        let c = n("255.255.255.0/24");
        assert_eq!(
            carve_subnet(c, 25, &[n("255.255.255.0/25")]).unwrap(),
            n("255.255.255.128/25")
        );
        assert!(carve_subnet(c, 25, &[n("255.255.255.128/25"), n("255.255.255.0/25")]).is_err());
        let all6 = n("::/0");
        assert_eq!(carve_subnet(all6, 0, &[]).unwrap(), all6);
        assert!(carve_subnet(all6, 0, &[n("::1/128")]).is_err());
        let top = n("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120");
        assert_eq!(
            carve_subnet(
                top,
                128,
                &[n("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/121")]
            )
            .unwrap(),
            n("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff80/128")
        );
    }

    #[test]
    fn v6_64_from_48() {
        let c = n("fd00:10:244::/48");
        assert_eq!(carve_subnet(c, 64, &[]).unwrap(), n("fd00:10:244::/64"));
        let taken = [n("fd00:10:244::/64"), n("fd00:10:244:1::/64")];
        assert_eq!(
            carve_subnet(c, 64, &taken).unwrap(),
            n("fd00:10:244:2::/64")
        );
    }

    #[test]
    fn bad_prefix() {
        assert!(matches!(
            carve_subnet(n("10.0.0.0/16"), 8, &[]),
            Err(CarveError::BadPrefix { .. })
        ));
        assert!(matches!(
            carve_subnet(n("10.0.0.0/16"), 33, &[]),
            Err(CarveError::BadPrefix { .. })
        ));
    }

    #[test]
    fn node_keeps_its_lease() {
        let c = n("10.244.0.0/16");
        let leases = vec![
            SubnetLease {
                subnet: n("10.244.0.0/24"),
                node: "a".into(),
            },
            SubnetLease {
                subnet: n("10.244.5.0/24"),
                node: "b".into(),
            },
        ];
        assert_eq!(
            choose_subnet(c, 24, &leases, "b").unwrap(),
            n("10.244.5.0/24")
        );
        assert_eq!(
            choose_subnet(c, 24, &leases, "c").unwrap(),
            n("10.244.1.0/24")
        );
        // A lease of the wrong size does not count as the node's own.
        assert_eq!(
            choose_subnet(c, 23, &leases, "b").unwrap(),
            n("10.244.2.0/23")
        );
    }

    #[test]
    fn hints_are_used_only_when_free_and_fitting() {
        let c = n("10.244.0.0/16");
        let leases = vec![SubnetLease {
            subnet: n("10.244.7.0/24"),
            node: "x".into(),
        }];
        let pick = |hints: &[IpNet]| choose_subnet_with_hints(c, 24, &leases, "me", hints).unwrap();
        assert_eq!(pick(&[n("10.244.9.0/24")]), n("10.244.9.0/24"));
        assert_eq!(pick(&[n("10.244.7.0/24")]), n("10.244.0.0/24"));
        assert_eq!(
            pick(&[n("10.244.7.128/25"), n("10.245.0.0/24")]),
            n("10.244.0.0/24")
        );
        assert_eq!(
            pick(&[n("fd00::/64"), n("10.244.3.0/24")]),
            n("10.244.3.0/24")
        );
        // The node's own lease still wins over hints.
        let own = choose_subnet_with_hints(c, 24, &leases, "x", &[n("10.244.9.0/24")]).unwrap();
        assert_eq!(own, n("10.244.7.0/24"));
    }

    #[test]
    fn thousands_of_nodes_are_fast() {
        let c = n("10.0.0.0/8");
        let mut taken: Vec<IpNet> = (0..5000u32)
            .map(|i| IpNet::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))), 24).unwrap())
            .collect();
        taken.reverse();
        let start = std::time::Instant::now();
        for _ in 0..100 {
            assert_eq!(carve_subnet(c, 24, &taken).unwrap(), n("10.19.136.0/24"));
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
