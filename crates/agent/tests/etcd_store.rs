//! weftd against a real etcd (Debian's etcd-server) in the fabric namespace: subnets and
//! records through etcd, an etcd outage that disturbs nothing, catching up afterwards.

mod common;

use std::time::Duration;

use common::etcd::{CLIENT_URL, Etcd};
use common::{Cluster, poll};

const VXLAN: &str = r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"vxlan"}}"#;

#[test]
fn etcd_outage_keeps_routes_and_agents_catch_up() {
    let mut c = Cluster::new(
        VXLAN,
        &["198.18.0.10/24", "198.18.0.11/24", "198.18.0.12/24"],
        6,
    );
    let mut etcd = Etcd::start(&c.fabric, c.dir.path().join("etcd"));
    c.etcd = Some(CLIENT_URL.to_string());
    c.start(0);
    c.start(1);
    c.wait_healthy(0, 1);
    c.wait_healthy(1, 1);
    let gw1 = c.nodes[1].gateway_v4();
    assert!(c.nodes[0].ping(&gw1, 2));
    let routes0 = c.nodes[0].weft_routes();
    let routes1 = c.nodes[1].weft_routes();
    assert_eq!(routes0.len(), 1);

    // etcd goes away for longer than the lease TTL: nothing is removed, traffic flows,
    // and the agents say what is wrong.
    etcd.stop();
    let unreachable = poll(Duration::from_secs(15), || {
        c.nodes[0].status().is_some_and(|s| {
            s["error"]
                .as_str()
                .is_some_and(|e| e.contains("datastore") || e.contains("etcd"))
        })
    });
    assert!(
        unreachable,
        "status: {:?}\n{}",
        c.nodes[0].status(),
        c.log(0)
    );
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(c.nodes[0].weft_routes(), routes0);
    assert_eq!(c.nodes[1].weft_routes(), routes1);
    assert!(c.nodes[0].ping(&gw1, 2), "traffic during the etcd outage");

    // etcd returns: the agents recover (same subnets) and see a node that joins now.
    etcd.restart(&c.fabric);
    let subnets0 = c.nodes[0].subnets();
    c.start(2);
    for i in 0..3 {
        c.wait_healthy(i, 2);
    }
    let cleared = poll(Duration::from_secs(20), || {
        c.nodes
            .iter()
            .all(|n| n.status().is_some_and(|s| s["error"].is_null()))
    });
    assert!(
        cleared,
        "errors stay: {:?}\n{}",
        c.nodes[0].status(),
        c.log(0)
    );
    assert_eq!(c.nodes[0].subnets(), subnets0);
    assert_eq!(c.nodes[0].weft_routes().len(), 2);
    assert!(c.nodes[2].ping(&gw1, 2), "new node reaches node1");
    assert!(
        c.nodes[0].ping(&c.nodes[2].gateway_v4(), 2),
        "node0 reaches the new node"
    );
    drop(c.agents.drain(..));
    drop(etcd);
    c.close();
}
