//! DEL hands the veth's deletion to a detached child (the kernel's unregister waits for an
//! RCU barrier): the pair is retired (down, alias `weft-del/...`) before DEL answers, and
//! nothing retired can outlive a repeated ADD, a repeated DEL or GC.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers fail loudly

mod common;

use common::*;
use serde_json::Value;

fn list(node: &Node, name: &str) -> Value {
    weft_list(
        "1.1.0",
        name,
        &node.data_dir(),
        v4_ranges("10.57.0.0/24"),
        serde_json::json!({"isGateway": true}),
    )
}

/// Retires the pod's host veth by hand, as a DEL whose detached child never ran leaves it.
fn retire_by_hand(node: &Node, network: &str, cid: &str) -> String {
    let veth = node.host_veths().pop().expect("a host veth");
    let alias = format!("weft-del/{network}/{cid}/eth0");
    node.sh(&["ip", "link", "set", "dev", &veth, "down"]);
    node.sh(&["ip", "link", "set", "dev", &veth, "alias", &alias]);
    assert_eq!(retired_links(&node.ns), vec![veth.clone()]);
    veth
}

#[test]
fn add_right_after_del_gets_a_live_pair() {
    let node = Node::new("ddadd");
    let l = list(&node, "ddadd");
    let pod = netns("ddadd1");
    let att = pod_att("ddadd1", &pod);
    for round in 0..5 {
        node.rt.add(&l, &att).expect("ADD");
        if round % 2 == 0 {
            node.rt.del(&l, &att).expect("DEL");
        } else {
            // What DEL leaves until its detached child has run.
            retire_by_hand(&node, "ddadd", "ddadd1");
        }
        // No settling: the retired pair may still be there; ADD must not adopt or trip on it.
        let again = node
            .rt
            .add(&l, &att)
            .unwrap_or_else(|e| panic!("round {round}: ADD right after DEL: {e}"));
        assert_eq!(node.host_veths().len(), 1, "round {round}");
        assert!(retired_links(&node.ns).is_empty());
        let gw = again["ips"][0]["gateway"].as_str().unwrap().to_string();
        assert!(
            ping(&pod, &gw),
            "round {round}: pod cannot reach its gateway"
        );
        node.rt.check(&l, &att).expect("CHECK");
        node.rt.del(&l, &att).expect("DEL");
    }
    assert!(node.host_veths().is_empty());
    node.settle_deletes();
    assert!(!has_link(&pod, "eth0"));
    assert!(node.reservations("ddadd").is_empty());
}

#[test]
fn add_of_another_container_right_after_del_in_the_same_namespace() {
    let node = Node::new("ddother");
    let l = list(&node, "ddother");
    let pod = netns("ddother1");
    for round in 0..5 {
        let first = pod_att(&format!("ddother-a{round}"), &pod);
        let second = pod_att(&format!("ddother-b{round}"), &pod);
        node.rt.add(&l, &first).expect("ADD first");
        if round % 2 == 0 {
            node.rt.del(&l, &first).expect("DEL first");
        } else {
            // As a DEL leaves the pair until its detached child has run: retired, the pod
            // end still in the namespace.
            retire_by_hand(&node, "ddother", &first.container_id);
        }
        node.rt
            .add(&l, &second)
            .unwrap_or_else(|e| panic!("round {round}: ADD of another container: {e}"));
        // Releases the first container's addresses; its pair is already gone.
        node.rt.del(&l, &first).expect("DEL first");
        assert_eq!(node.host_veths().len(), 1, "round {round}");
        node.rt.del(&l, &second).expect("DEL second");
    }
    assert!(node.host_veths().is_empty());
}

#[test]
fn del_and_gc_delete_a_retired_leftover() {
    let node = Node::new("ddleft");
    let l = list(&node, "ddleft");
    let pod = netns("ddleft1");
    let att = pod_att("ddleft1", &pod);

    node.rt.add(&l, &att).expect("ADD");
    retire_by_hand(&node, "ddleft", "ddleft1");
    node.rt.del(&l, &att).expect("DEL of a retired pair");
    assert!(node.host_veths().is_empty());
    node.settle_deletes();
    assert!(!has_link(&pod, "eth0"));

    // GC: a retired veth of the network is stale even while its attachment is valid.
    node.rt.add(&l, &att).expect("ADD");
    retire_by_hand(&node, "ddleft", "ddleft1");
    node.rt
        .gc(&l, &[("ddleft1".to_string(), "eth0".to_string())])
        .expect("GC");
    assert!(retired_links(&node.ns).is_empty(), "GC left a retired veth");
    assert!(!has_link(&pod, "eth0"));
    node.rt.del(&l, &att).expect("DEL");
}
