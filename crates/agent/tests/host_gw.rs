//! weftd with the host-gw backend: direct routes, a refused peer on another segment,
//! and a node whose record is deleted.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{Cluster, wait_until};
use ipnet::IpNet;
use weft_store::EmbeddedStore;
use weft_store::subnets::remove_node;

const HOST_GW: &str = r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"host-gw"}}"#;

#[test]
fn host_gw_routes_refusal_and_record_deletion() {
    // node3 sits on the same wire but in another IP network: not a valid next hop.
    let addrs = [
        "198.18.0.10/24",
        "198.18.0.11/24",
        "198.18.0.12/24",
        "198.18.1.10/24",
    ];
    let mut c = Cluster::new(HOST_GW, &addrs, 30);
    c.start_all();
    for i in 0..3 {
        c.wait_healthy(i, 2);
    }
    c.wait_healthy(3, 0);

    let subnets: Vec<IpNet> = c.nodes.iter().map(|n| n.subnets()[0]).collect();
    for (i, node) in c.nodes.iter().enumerate().take(3) {
        assert!(node.nl().find_link("weft.vxlan").unwrap().is_none());
        let conf = common::file_json(&node.dir.join("net.d/10-weft.conflist"));
        assert_eq!(conf["plugins"][0]["mtu"], 1500, "host-gw adds no overhead");
        let routes = node.weft_routes();
        assert_eq!(routes.len(), 2, "{routes:?}");
        for r in &routes {
            let owner = subnets.iter().position(|s| *s == r.dst).unwrap();
            assert!(owner != i && owner != 3);
            assert_eq!(r.gateway, Some(c.nodes[owner].underlay));
            assert!(!r.onlink);
        }
        let error = node.status().unwrap()["error"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(error.contains("peer node3 refused"), "{error}");
        assert!(
            error.contains("same L2 segment") || error.contains("L2"),
            "{error}"
        );
    }
    assert!(
        c.nodes[3].weft_routes().is_empty(),
        "node3 refuses everyone"
    );

    assert!(
        c.nodes[0].ping(&c.nodes[1].gateway_v4(), 2),
        "ping node1 gateway"
    );
    assert!(
        c.nodes[1].ping(&c.nodes[2].gateway_v4(), 2),
        "ping node2 gateway"
    );

    // node2 is killed and removed from the cluster: the others drop its route at once
    // (the lease TTL is 30 s, so this is the deletion, not the expiry).
    c.agents[2].stop("KILL");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = EmbeddedStore::open(c.store_dir()).unwrap();
    assert!(rt.block_on(remove_node(&store, "node2")).unwrap());
    for i in 0..2 {
        let node = &c.nodes[i];
        wait_until("node2 route removed", Duration::from_secs(5), || {
            node.weft_routes().iter().all(|r| r.dst != subnets[2])
        });
        assert_eq!(node.weft_routes().len(), 1);
    }
    // Its route on the survivors is gone, but node2 itself keeps what it programmed.
    let via: Vec<IpAddr> = c.nodes[2]
        .weft_routes()
        .iter()
        .filter_map(|r| r.gateway)
        .collect();
    assert_eq!(via.len(), 2);
    assert!(c.nodes[0].ping(&c.nodes[1].gateway_v4(), 1));
    c.close();
}
