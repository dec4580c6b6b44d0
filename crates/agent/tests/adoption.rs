//! Restart adoption and lease loss: weftd fixes only what differs from the desired state
//! and comes back after its lease is revoked under it.

mod common;

use std::time::Duration;

use common::{Cluster, WEFT_PROTO, wait_until};
use weft_datapath::RouteSpec;
use weft_datapath::netlink::IpFamily;
use weft_store::subnets::KIND_NODES;
use weft_store::{Datastore, EmbeddedStore};

const VXLAN: &str = r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"vxlan"}}"#;

#[test]
fn restart_adopts_and_repairs_only_differences() {
    let mut c = Cluster::new(VXLAN, &["198.18.0.10/24", "198.18.0.11/24"], 5);
    c.start_all();
    c.wait_healthy(0, 1);
    c.wait_healthy(1, 1);
    let a = &c.nodes[0];
    let good = a.weft_routes();
    let mut nl = a.nl();
    let vx = nl.link_by_name("weft.vxlan").unwrap();
    let bridge = nl.link_by_name("weft0").unwrap();
    c.agents[0].stop("TERM");

    // While weftd is down: lose its route, leave a stale one of ours, garble a neighbour,
    // and add somebody else's route that must survive.
    assert!(nl.delete_route(&good[0]).unwrap());
    let mut stale = RouteSpec::to("10.244.99.0/24".parse().unwrap());
    stale.gateway = Some("10.244.99.0".parse().unwrap());
    stale.oif = Some(vx.index);
    stale.onlink = true;
    stale.proto = Some(WEFT_PROTO);
    nl.add_route(&stale).unwrap();
    let mut foreign = RouteSpec::to("10.77.0.0/16".parse().unwrap());
    foreign.gateway = Some("198.18.0.1".parse().unwrap());
    nl.add_route(&foreign).unwrap();
    let peer_vtep = good[0].gateway.unwrap();
    nl.replace_neighbour(vx.index, peer_vtep, [2, 0, 0, 0, 0, 0x99])
        .unwrap();

    c.start(0);
    c.wait_healthy(0, 1);
    let a = &c.nodes[0];
    wait_until("routes repaired", Duration::from_secs(5), || {
        a.weft_routes() == good
    });
    let neigh = nl.neighbours(IpFamily::V4, Some(vx.index)).unwrap();
    assert_eq!(neigh.len(), 1);
    assert_ne!(
        neigh[0].mac,
        Some([2, 0, 0, 0, 0, 0x99]),
        "neighbour repaired"
    );
    let routes = nl.routes(IpFamily::V4, None).unwrap();
    assert!(
        routes.iter().any(|r| r.dst == foreign.dst),
        "foreign route kept"
    );
    assert_eq!(
        nl.link_by_name("weft.vxlan").unwrap().index,
        vx.index,
        "device adopted"
    );
    assert_eq!(
        nl.link_by_name("weft0").unwrap().index,
        bridge.index,
        "bridge adopted"
    );
    assert!(a.ping(&c.nodes[1].gateway_v4(), 1));
    c.close();
}

#[test]
fn revoked_lease_is_reclaimed_with_the_same_subnet() {
    let mut c = Cluster::new(VXLAN, &["198.18.0.10/24", "198.18.0.11/24"], 3);
    c.start_all();
    c.wait_healthy(0, 1);
    c.wait_healthy(1, 1);
    let subnet1 = c.nodes[1].subnets();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = EmbeddedStore::open(c.store_dir()).unwrap();
    let lease = rt.block_on(async {
        let entry = store.get(KIND_NODES, "node1").await.unwrap().unwrap();
        let lease = entry.lease.unwrap();
        store.revoke_lease(lease).await.unwrap();
        lease
    });
    // node1 notices the loss, claims again (same subnet, free again) and republishes.
    let relisted = common::poll(Duration::from_secs(15), || {
        rt.block_on(store.get(KIND_NODES, "node1"))
            .unwrap()
            .is_some_and(|e| e.lease.is_some_and(|l| l != lease))
    });
    assert!(relisted, "node1 did not come back:\n{}", c.log(1));
    c.wait_healthy(1, 1);
    assert_eq!(c.nodes[1].subnets(), subnet1);
    wait_until(
        "node0 routes to node1 again",
        Duration::from_secs(10),
        || {
            c.nodes[0]
                .weft_routes()
                .iter()
                .any(|r| subnet1.contains(&r.dst))
        },
    );
    assert!(c.nodes[0].ping(&c.nodes[1].gateway_v4(), 2));
    c.close();
}

#[test]
fn vni_change_recreates_the_device_keeping_its_mac() {
    let mut c = Cluster::new(VXLAN, &["198.18.0.10/24", "198.18.0.11/24"], 5);
    c.start_all();
    c.wait_healthy(0, 1);
    c.wait_healthy(1, 1);
    let mac = |c: &Cluster, i: usize| c.nodes[i].nl().link_by_name("weft.vxlan").unwrap().mac;
    let macs = [mac(&c, 0), mac(&c, 1)];
    c.agents[0].stop("TERM");
    c.agents[1].stop("TERM");
    std::fs::write(
        &c.config,
        r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"vxlan","vni":9}}"#,
    )
    .unwrap();
    c.start_all();
    c.wait_healthy(0, 1);
    c.wait_healthy(1, 1);
    for (i, mac_before) in macs.iter().enumerate() {
        let link = c.nodes[i].nl().link_by_name("weft.vxlan").unwrap();
        assert!(link.alias.unwrap().contains("vni=9"));
        assert_eq!(link.mac, *mac_before, "MAC kept across the re-creation");
        wait_until("routes back", Duration::from_secs(5), || {
            c.nodes[i].weft_routes().len() == 1
        });
    }
    assert!(c.nodes[0].ping(&c.nodes[1].gateway_v4(), 2));
    c.close();
}

#[test]
fn waits_for_an_underlay_address_that_comes_later() {
    let mut c = Cluster::new(VXLAN, &["198.18.0.10/24", "198.18.0.11/24"], 5);
    let mut nl = c.nodes[1].nl();
    let eth0 = nl.link_by_name("eth0").unwrap();
    let addr = "198.18.0.11/24".parse().unwrap();
    assert!(nl.delete_addr(eth0.index, addr).unwrap());
    c.start_all();
    c.wait_healthy(0, 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        c.nodes[1].status().is_none(),
        "no status before the underlay exists"
    );
    nl.add_addr(eth0.index, addr, false).unwrap();
    c.wait_healthy(1, 1);
    c.wait_healthy(0, 1);
    assert!(c.nodes[0].ping(&c.nodes[1].gateway_v4(), 2));
    c.close();
}
