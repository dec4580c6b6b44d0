//! Route plans for both backends, including refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test helpers may fail loudly

use ipnet::IpNet;
use weft_cluster::{
    Backend, ClusterConfig, MacAddr, NodeRecord, PeerError, PlanError, VXLAN_DEVICE, plan_routes,
};

fn cfg(backend: Backend) -> ClusterConfig {
    ClusterConfig {
        cluster_cidrs: vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd00:10:244::/48".parse().unwrap(),
        ],
        node_prefix_v4: 24,
        node_prefix_v6: 64,
        backend,
        mtu: None,
    }
}

fn node(name: &str, underlay: &str, idx: u8) -> NodeRecord {
    let mut n = NodeRecord::new(name, underlay.parse().unwrap());
    n.underlay_prefix_len = Some(15);
    n.vxlan_mac = Some(MacAddr([2, 0, 0, 0, 0, idx]));
    n.subnets = vec![
        format!("10.244.{idx}.0/24").parse().unwrap(),
        format!("fd00:10:244:{idx}::/64").parse().unwrap(),
    ];
    n
}

#[test]
fn vxlan_plan_flannel_style() {
    let local = node("a", "198.18.0.1", 1);
    let peers = vec![
        local.clone(),
        node("c", "198.18.0.3", 3),
        node("b", "198.18.0.2", 2),
    ];
    let plan = plan_routes(&local, &peers, &cfg(Backend::default())).unwrap();
    assert!(plan.rejected.is_empty());
    let dev = plan.vxlan_device.as_ref().unwrap();
    assert_eq!(
        (dev.name.as_str(), dev.vni, dev.port),
        (VXLAN_DEVICE, 1, 4789)
    );
    let addrs: Vec<String> = dev.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(addrs, ["10.244.1.0/32", "fd00:10:244:1::/128"]);

    assert_eq!(plan.fdb.len(), 2);
    assert_eq!(plan.fdb[0].mac.to_string(), "02:00:00:00:00:02");
    assert_eq!(plan.fdb[0].dst.to_string(), "198.18.0.2");
    assert_eq!(plan.neighbours.len(), 4);
    assert_eq!(plan.routes.len(), 4);
    let r = &plan.routes[0];
    assert_eq!(r.dst.to_string(), "10.244.2.0/24");
    assert_eq!(r.via.to_string(), "10.244.2.0");
    assert_eq!(r.device.as_deref(), Some(VXLAN_DEVICE));
    assert!(r.onlink);
    let r6 = plan
        .routes
        .iter()
        .find(|r| r.dst.to_string() == "fd00:10:244:3::/64")
        .unwrap();
    assert_eq!(r6.via.to_string(), "fd00:10:244:3::");
    let n6 = plan
        .neighbours
        .iter()
        .find(|n| n.ip.to_string() == "fd00:10:244:3::")
        .unwrap();
    assert_eq!(n6.mac, MacAddr([2, 0, 0, 0, 0, 3]));
}

#[test]
fn vxlan_rejects_peer_without_mac_but_plans_others() {
    let local = node("a", "198.18.0.1", 1);
    let mut b = node("b", "198.18.0.2", 2);
    b.vxlan_mac = None;
    let plan = plan_routes(
        &local,
        &[b, node("c", "198.18.0.3", 3)],
        &cfg(Backend::default()),
    )
    .unwrap();
    assert_eq!(plan.rejected.len(), 1);
    assert_eq!(plan.rejected[0].node, "b");
    assert_eq!(plan.rejected[0].error, PeerError::MissingVxlanMac);
    assert_eq!(plan.routes.len(), 2);
}

#[test]
fn overlapping_or_foreign_subnets_are_rejected() {
    let local = node("a", "198.18.0.1", 1);
    let mut thief = node("b", "198.18.0.2", 2);
    thief.subnets = vec!["10.244.1.0/25".parse().unwrap()];
    let mut outsider = node("c", "198.18.0.3", 3);
    outsider.subnets = vec!["10.9.0.0/24".parse().unwrap()];
    let plan = plan_routes(&local, &[thief, outsider], &cfg(Backend::default())).unwrap();
    assert!(
        matches!(plan.rejected[0].error, PeerError::SubnetOverlap { ref other_node, .. } if other_node == "a")
    );
    assert!(matches!(
        plan.rejected[1].error,
        PeerError::SubnetOutsideCluster(_)
    ));
    assert!(plan.routes.is_empty());
}

#[test]
fn host_gw_routes_via_underlay() {
    let mut local = node("a", "198.18.0.1", 1);
    local.underlay_secondary = Some("fd18::1/64".parse().unwrap());
    let mut b = node("b", "198.18.0.2", 2);
    b.underlay_secondary = Some("fd18::2/64".parse().unwrap());
    let plan = plan_routes(&local, &[b], &cfg(Backend::HostGw)).unwrap();
    assert!(plan.vxlan_device.is_none() && plan.fdb.is_empty() && plan.neighbours.is_empty());
    let got: Vec<(String, String, bool)> = plan
        .routes
        .iter()
        .map(|r| (r.dst.to_string(), r.via.to_string(), r.device.is_none()))
        .collect();
    assert_eq!(
        got,
        [
            ("10.244.2.0/24".into(), "198.18.0.2".into(), true),
            ("fd00:10:244:2::/64".into(), "fd18::2".into(), true)
        ]
    );
}

#[test]
fn host_gw_refuses_peer_on_other_segment() {
    let mut local = node("a", "198.18.0.1", 1);
    local.underlay_prefix_len = Some(24);
    local.subnets.truncate(1);
    let mut far = node("far", "198.19.5.2", 2);
    far.subnets.truncate(1);
    let mut near = node("near", "198.18.0.3", 3);
    near.subnets.truncate(1);
    let mut c = cfg(Backend::HostGw);
    c.cluster_cidrs.truncate(1);
    let plan = plan_routes(&local, &[far, near], &c).unwrap();
    assert_eq!(plan.routes.len(), 1);
    assert_eq!(plan.rejected[0].node, "far");
    let msg = plan.rejected[0].error.to_string();
    assert!(
        msg.contains("198.18.0.0/24") && msg.contains("L2 segment"),
        "{msg}"
    );
}

#[test]
fn host_gw_needs_local_underlay_prefix() {
    let mut local = node("a", "198.18.0.1", 1);
    local.underlay_prefix_len = None;
    let err =
        plan_routes(&local, &[node("b", "198.18.0.2", 2)], &cfg(Backend::HostGw)).unwrap_err();
    assert!(matches!(err, PlanError::LocalUnderlayUnknown { .. }));
}

#[test]
fn invalid_config_is_an_error() {
    let mut c = cfg(Backend::default());
    c.cluster_cidrs.clear();
    let local = node("a", "198.18.0.1", 1);
    assert!(matches!(
        plan_routes(&local, &[], &c),
        Err(PlanError::Config(_))
    ));
}

#[test]
fn node_leaving_removes_its_entries() {
    let local = node("a", "198.18.0.1", 1);
    let c = cfg(Backend::default());
    let before = plan_routes(
        &local,
        &[node("b", "198.18.0.2", 2), node("c", "198.18.0.3", 3)],
        &c,
    )
    .unwrap();
    let after = plan_routes(&local, &[node("b", "198.18.0.2", 2)], &c).unwrap();
    let d = after.diff(&before);
    assert!(d.routes.upsert.is_empty() && d.neighbours.upsert.is_empty());
    assert_eq!(d.routes.remove.len(), 2);
    assert_eq!(d.neighbours.remove.len(), 2);
    assert_eq!(d.fdb.remove.len(), 1);
    let subnets: Vec<IpNet> = d.routes.remove.iter().map(|r| r.dst).collect();
    assert!(subnets.iter().all(|s| s.to_string().contains('3')));
}
