//! weftd with the vxlan backend: three nodes in namespaces, real weftd processes.

mod common;

use std::time::Duration;

use common::{Cluster, WEFT_PROTO, file_json, wait_until};
use ipnet::IpNet;
use weft_datapath::netlink::IpFamily;

const VXLAN: &str = r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"vxlan","vni":7}}"#;

#[test]
fn vxlan_cluster_routes_restart_and_node_loss() {
    let mut c = Cluster::new(
        VXLAN,
        &["198.18.0.10/24", "198.18.0.11/24", "198.18.0.12/24"],
        3,
    );
    c.start_all();
    for i in 0..3 {
        c.wait_healthy(i, 2);
    }

    // Distinct /24s from the cluster CIDR, and the files the plugin needs.
    let subnets: Vec<IpNet> = c.nodes.iter().map(|n| n.subnets()[0]).collect();
    for s in &subnets {
        assert_eq!(s.prefix_len(), 24);
        assert!("10.244.0.0/16".parse::<IpNet>().unwrap().contains(s));
    }
    assert!(subnets[0] != subnets[1] && subnets[1] != subnets[2] && subnets[0] != subnets[2]);
    let a = c.nodes[0].dir.clone();
    let conf = file_json(&a.join("net.d/10-weft.conflist"));
    assert_eq!(conf["plugins"][0]["mtu"], 1450);
    assert_eq!(
        conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
        subnets[0].to_string()
    );
    let local = file_json(&a.join("run/node.json"));
    assert_eq!(local["mtu"], 1450);

    // Per node: device, two onlink routes, two permanent neighbours, two FDB entries.
    for (i, node) in c.nodes.iter().enumerate() {
        let mut nl = node.nl();
        let vx = nl.link_by_name("weft.vxlan").unwrap();
        assert_eq!(vx.kind.as_deref(), Some("vxlan"));
        assert_eq!(vx.mtu, 1450);
        assert!(vx.up);
        let addrs = nl.addrs(Some(vx.index), Some(IpFamily::V4)).unwrap();
        assert_eq!(addrs[0].addr, IpNet::new(subnets[i].network(), 32).unwrap());
        let routes = node.weft_routes();
        assert_eq!(routes.len(), 2, "{routes:?}");
        for r in &routes {
            assert!(r.onlink && r.oif == Some(vx.index));
            assert_eq!(r.gateway, Some(r.dst.network()));
            assert!(subnets.contains(&r.dst) && r.dst != subnets[i]);
        }
        let neigh = nl.neighbours(IpFamily::V4, Some(vx.index)).unwrap();
        assert_eq!(neigh.iter().filter(|n| n.permanent).count(), 2, "{neigh:?}");
        let fdb: Vec<_> = nl
            .fdb(Some(vx.index))
            .unwrap()
            .into_iter()
            .filter(|f| f.own && f.dst.is_some())
            .collect();
        assert_eq!(fdb.len(), 2, "{fdb:?}");
        for f in &fdb {
            let dst = f.dst.unwrap();
            assert!(dst != node.underlay && c.nodes.iter().any(|n| n.underlay == dst));
        }
        let bridge = nl.link_by_name("weft0").unwrap();
        assert_eq!(bridge.kind.as_deref(), Some("bridge"));
        let nft = node.exec(&["nft", "list", "table", "inet", "weft_cluster"]);
        let rules = String::from_utf8_lossy(&nft.stdout);
        assert!(
            rules.contains("masquerade") && rules.contains(&subnets[i].to_string()),
            "{rules}"
        );
    }

    // Node 0 reaches the other nodes' bridge gateways through the tunnel.
    assert!(
        c.nodes[0].ping(&c.nodes[1].gateway_v4(), 2),
        "ping node1 gateway"
    );
    assert!(
        c.nodes[0].ping(&c.nodes[2].gateway_v4(), 2),
        "ping node2 gateway"
    );

    // Restart node1's weftd during a ping stream from node0: nothing is flushed.
    let before = c.nodes[1].weft_routes();
    let mac_before = c.nodes[1].nl().link_by_name("weft.vxlan").unwrap().mac;
    let stream = c.nodes[0].spawn(&[
        "ping",
        "-c",
        "25",
        "-i",
        "0.1",
        "-W",
        "1",
        &c.nodes[1].gateway_v4(),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    c.agents[1].stop("TERM");
    assert_eq!(
        c.nodes[1].weft_routes(),
        before,
        "routes kept while weftd is down"
    );
    c.start(1);
    c.wait_healthy(1, 2);
    let out = stream.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("25 received"),
        "ping stream lost packets:\n{text}"
    );
    assert_eq!(
        c.nodes[1].subnets()[0],
        subnets[1],
        "same subnet after restart"
    );
    assert_eq!(
        c.nodes[1].weft_routes(),
        before,
        "programming converged unchanged"
    );
    assert_eq!(
        c.nodes[1].nl().link_by_name("weft.vxlan").unwrap().mac,
        mac_before
    );
    assert!(
        !c.log(1).contains("route remove"),
        "restart removed routes:\n{}",
        c.log(1)
    );

    // node2 dies; once its lease expires the others drop its routes, neighbour and FDB.
    c.agents[2].stop("KILL");
    for i in 0..2 {
        let node = &c.nodes[i];
        wait_until("node2 routes removed", Duration::from_secs(15), || {
            node.weft_routes().iter().all(|r| r.dst != subnets[2])
        });
        let mut nl = node.nl();
        let vx = nl.link_by_name("weft.vxlan").unwrap();
        assert_eq!(
            nl.neighbours(IpFamily::V4, Some(vx.index)).unwrap().len(),
            1
        );
        let fdb = nl.fdb(Some(vx.index)).unwrap();
        assert!(
            fdb.iter().all(|f| f.dst != Some(c.nodes[2].underlay)),
            "{fdb:?}"
        );
        c.wait_healthy(i, 1);
    }
    assert!(c.nodes[0].ping(&c.nodes[1].gateway_v4(), 1));
    assert!(
        c.nodes[0]
            .weft_routes()
            .iter()
            .all(|r| r.proto == Some(WEFT_PROTO))
    );

    // node2 comes back under the same name: same subnet (from its node.json), routes
    // everywhere again.
    c.start(2);
    for i in 0..3 {
        c.wait_healthy(i, 2);
    }
    assert_eq!(c.nodes[2].subnets()[0], subnets[2]);
    assert!(
        c.nodes[0].ping(&c.nodes[2].gateway_v4(), 2),
        "re-added node reachable"
    );
    c.close();
}
