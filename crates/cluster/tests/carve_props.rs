//! Property tests: carving never hands out overlapping subnets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test helpers may fail loudly

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::prelude::*;
use weft_cluster::{CarveError, SubnetLease, carve_subnet, choose_subnet};

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn v4_net(raw: u32, prefix: u8) -> IpNet {
    IpNet::new(IpAddr::V4(Ipv4Addr::from(raw)), prefix)
        .unwrap()
        .trunc()
}

proptest! {
    /// Any taken set, any sizes: the result lies in the CIDR, is aligned and overlaps none.
    #[test]
    fn carved_subnet_is_free(
        taken in prop::collection::vec((0u32..1 << 12, 20u8..=28), 0..60),
        node_prefix in 22u8..=26,
    ) {
        let cidr: IpNet = "10.244.0.0/20".parse().unwrap();
        let taken: Vec<IpNet> = taken
            .into_iter()
            .map(|(off, p)| v4_net(0x0af4_0000 + off, p))
            .collect();
        match carve_subnet(cidr, node_prefix, &taken) {
            Ok(s) => {
                prop_assert!(cidr.contains(&s));
                prop_assert_eq!(s.prefix_len(), node_prefix);
                prop_assert_eq!(s.trunc(), s);
                prop_assert!(taken.iter().all(|t| !overlaps(t, &s)));
                // First free: every lower candidate block is taken.
                for lower in cidr.subnets(node_prefix).unwrap().take_while(|c| *c < s) {
                    prop_assert!(taken.iter().any(|t| overlaps(t, &lower)));
                }
            }
            Err(CarveError::Exhausted { .. }) => {
                for cand in cidr.subnets(node_prefix).unwrap() {
                    prop_assert!(taken.iter().any(|t| overlaps(t, &cand)));
                }
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    /// Nodes joining one by one (each taking what `choose_subnet` returns) never overlap,
    /// and a node asking again gets the same subnet back.
    #[test]
    fn sequential_nodes_never_overlap(nodes in 1usize..70, released in prop::collection::vec(0usize..70, 0..10)) {
        let cidr: IpNet = "10.244.0.0/18".parse().unwrap();
        let mut leases: Vec<SubnetLease> = Vec::new();
        for i in 0..nodes {
            let name = format!("n{i}");
            match choose_subnet(cidr, 24, &leases, &name) {
                Ok(s) => leases.push(SubnetLease { subnet: s, node: name }),
                Err(CarveError::Exhausted { .. }) => prop_assert!(leases.len() == 64),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
            if let Some(&r) = released.get(i) && r < leases.len() {
                leases.remove(r);
            }
        }
        for (i, a) in leases.iter().enumerate() {
            for b in leases.iter().skip(i + 1) {
                prop_assert!(!overlaps(&a.subnet, &b.subnet), "{} vs {}", a.subnet, b.subnet);
            }
            prop_assert_eq!(choose_subnet(cidr, 24, &leases, &a.node).unwrap(), a.subnet);
        }
    }

    /// IPv6: /64 carving from a /48 with random taken /64s.
    #[test]
    fn v6_64_from_48(taken_idx in prop::collection::btree_set(0u16..=u16::MAX, 0..200)) {
        let cidr: IpNet = "fd00:10:244::/48".parse().unwrap();
        let base = u128::from("fd00:10:244::".parse::<Ipv6Addr>().unwrap());
        let to_net = |i: u16| IpNet::new(IpAddr::V6(Ipv6Addr::from(base + (u128::from(i) << 64))), 64).unwrap();
        let taken: Vec<IpNet> = taken_idx.iter().map(|i| to_net(*i)).collect();
        let expected = (0..=u16::MAX).find(|i| !taken_idx.contains(i)).map(to_net);
        prop_assert_eq!(carve_subnet(cidr, 64, &taken).ok(), expected);
    }
}

#[test]
fn v6_exhaustion_of_small_range() {
    let cidr: IpNet = "fd00:10:244::/62".parse().unwrap();
    let mut leases = Vec::new();
    for i in 0..4 {
        let s = choose_subnet(cidr, 64, &leases, &format!("n{i}")).unwrap();
        leases.push(SubnetLease {
            subnet: s,
            node: format!("n{i}"),
        });
    }
    assert!(matches!(
        choose_subnet(cidr, 64, &leases, "n9"),
        Err(CarveError::Exhausted { .. })
    ));
}

mod plan_props {
    use super::*;
    use weft_cluster::{Backend, ClusterConfig, MacAddr, NodeRecord, plan_routes};

    fn peer(i: u8, subnet: IpNet, mac: bool) -> NodeRecord {
        let mut n = NodeRecord::new(format!("n{i}"), IpAddr::V4(Ipv4Addr::new(198, 18, 0, i)));
        n.underlay_prefix_len = Some(24);
        n.vxlan_mac = mac.then_some(MacAddr([2, 0, 0, 0, 0, i]));
        n.subnets = vec![subnet];
        n
    }

    proptest! {
        /// Whatever peers claim (overlapping, duplicate, missing MACs), the plan has one
        /// route per destination, no two planned destinations overlap, and every peer is
        /// either planned or rejected.
        #[test]
        fn plans_never_overlap(
            peers in prop::collection::vec((0u32..64, 22u8..=26, any::<bool>()), 1..30),
            host_gw in any::<bool>(),
        ) {
            let cfg = ClusterConfig {
                cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
                node_prefix_v4: 24,
                node_prefix_v6: 64,
                backend: if host_gw { Backend::HostGw } else { Backend::default() },
                mtu: None,
            };
            let local = peer(0, "10.244.0.0/24".parse().unwrap(), true);
            let records: Vec<NodeRecord> = peers
                .iter()
                .enumerate()
                .map(|(i, (off, p, mac))| {
                    let i = u8::try_from(i + 1).unwrap();
                    peer(i, v4_net(0x0af4_0000 + (off << 8), *p), *mac)
                })
                .collect();
            let plan = plan_routes(&local, &records, &cfg).unwrap();
            for (i, a) in plan.routes.iter().enumerate() {
                prop_assert!(!overlaps(&a.dst, &"10.244.0.0/24".parse().unwrap()));
                for b in plan.routes.iter().skip(i + 1) {
                    prop_assert!(!overlaps(&a.dst, &b.dst), "{} vs {}", a.dst, b.dst);
                }
            }
            prop_assert_eq!(plan.routes.len() + plan.rejected.len(), records.len());
            prop_assert!(plan.diff(&plan).is_empty());
        }
    }
}
