//! `macspoofchk`: frames a pod sends with a source MAC other than its own never reach the
//! bridge; DEL and GC remove the pod's guard elements.

mod common;

use common::*;
use serde_json::json;

fn guard_count(node: &Node) -> usize {
    let out = sh(
        &node.ns,
        &["nft", "list", "set", "bridge", "weft_macspoof", "allowed"],
    );
    out.matches("comment").count()
}

#[test]
fn spoofed_source_mac_is_dropped_and_guards_are_cleaned_up() {
    let node = Node::new("mspf");
    let list = weft_list(
        "1.1.0",
        "mspf",
        &node.data_dir(),
        v4_ranges("10.66.0.0/24"),
        json!({"bridge": "mspf0", "isGateway": true, "macspoofchk": true}),
    );
    let pod = netns("mspf1");
    let att = pod_att("mspf1", &pod);
    node.rt.add(&list, &att).expect("ADD");
    assert_eq!(guard_count(&node), 1);
    assert!(ping(&pod, "10.66.0.1"), "the pod's own MAC passes");

    // Same pod, forged MAC: its frames (ARP included) are dropped at the bridge port.
    assert!(sh_ok(&pod, &["ip", "neigh", "flush", "dev", "eth0"]));
    assert!(sh_ok(
        &pod,
        &["ip", "link", "set", "eth0", "address", "0a:58:de:ad:be:ef"]
    ));
    assert!(
        !ping(&pod, "10.66.0.1"),
        "a forged source MAC must not pass"
    );

    node.rt.del(&list, &att).expect("DEL");
    assert_eq!(guard_count(&node), 0, "DEL removes the guard");

    // GC removes the guard of an attachment that is no longer valid.
    let pod2 = netns("mspf2");
    let att2 = pod_att("mspf2", &pod2);
    node.rt.add(&list, &att2).expect("ADD 2");
    assert_eq!(guard_count(&node), 1);
    node.rt.gc(&list, &[]).expect("GC");
    assert_eq!(guard_count(&node), 0, "GC removes stale guards");
}
