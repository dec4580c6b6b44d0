//! `nodeConfig`: ranges and MTU come from the facts file weftd writes when the conflist leaves
//! them out; without the file the plugin asks the runtime to try again later (code 11).

mod common;

use common::*;
use serde_json::json;

#[test]
fn ranges_and_mtu_come_from_the_node_facts_file() {
    let node = Node::new("ncfg");
    let facts = node.scratch.path().join("node.json");
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "ncfg",
        "plugins": [{
            "type": "weft",
            "isGateway": true,
            "nodeConfig": facts,
            "ipam": {"type": "weft-ipam", "dataDir": node.data_dir()}
        }]
    });
    let pod = netns("ncfg1");
    let att = pod_att("ncfg1", &pod);

    // No facts file yet: the agent is not ready, nothing is reserved.
    let netns = pod.path().to_string_lossy().into_owned();
    let out = node.exec(
        env!("CARGO_BIN_EXE_weft"),
        &att_env("ADD", "ncfg1", &netns, "eth0"),
        request(&list, &att, None).to_string().as_bytes(),
    );
    assert_eq!(failure(&out).0, 11);
    assert!(node.reservations("ncfg").is_empty());

    std::fs::write(
        &facts,
        r#"{"node":"n1","subnets":["10.244.7.0/24","fd00:10:244:7::/64"],"mtu":1410,
            "backend":{"type":"vxlan","vni":1,"port":4789},"clusterCidrs":["10.244.0.0/16"]}"#,
    )
    .unwrap();
    let res = node.rt.add(&list, &att).expect("ADD with node facts");
    assert_eq!(res["ips"][0]["address"], "10.244.7.2/24");
    assert_eq!(res["ips"][1]["address"], "fd00:10:244:7::2/64");
    assert_eq!(mtu(&pod, "eth0"), 1410);
    node.rt.check(&list, &att).expect("CHECK");
    node.rt.del(&list, &att).expect("DEL");
    assert!(node.reservations("ncfg").is_empty());
}
