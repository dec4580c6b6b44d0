//! ptp (routed) mode: result shape, host routes on the node, and two pods reaching each
//! other over IPv4 and IPv6 through the node.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers fail loudly

mod common;

use common::*;
use serde_json::{Value, json};

fn ptp_list(node: &Node, name: &str) -> Value {
    weft_list(
        "1.0.0",
        name,
        &node.data_dir(),
        json!([[{"subnet": "10.66.0.0/24"}], [{"subnet": "fd66::/64"}]]),
        json!({"mode": "ptp", "ipMasq": true}),
    )
}

#[test]
fn ptp_result_and_host_routes() {
    let node = Node::new("ptpres");
    let l = ptp_list(&node, "ptpres");
    let pod = netns("ptpres1");
    let att = pod_att("ptpres1", &pod);
    let res = node.rt.add(&l, &att).expect("ADD");
    let ifs = res["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 2, "{res}");
    let host = ifs[0]["name"].as_str().unwrap().to_string();
    assert!(host.starts_with("veth") && ifs[0].get("sandbox").is_none());
    assert_eq!(ifs[1]["name"], "eth0");
    assert_eq!(ifs[1]["sandbox"], pod.path().to_string_lossy().as_ref());
    let ips = res["ips"].as_array().expect("ips");
    assert!(ips.iter().all(|ip| ip["interface"] == 1), "{res}");
    let (v4, v6) = (ip_of(&res, 0), ip_of(&res, 1));
    let r4 = node.sh(&["ip", "-4", "route", "show", &format!("{v4}/32")]);
    assert!(r4.contains(&format!("dev {host}")), "v4 host route: {r4:?}");
    let r6 = node.sh(&["ip", "-6", "route", "show", &format!("{v6}/128")]);
    assert!(r6.contains(&format!("dev {host}")), "v6 host route: {r6:?}");
    assert!(!has_link(&node.ns, "cni0"), "ptp creates no bridge");
    let elems = node.masq_elements();
    assert!(elems.contains(&v4) && elems.contains(&v6), "{elems:?}");
    node.rt.check(&l, &att).expect("CHECK");
    // ADD again converges on the same attachment.
    let again = success(&node.call("weft", "ADD", Some(&att), &request(&l, &att, None)));
    assert_eq!(again["ips"], res["ips"]);
    assert_eq!(node.host_veths().len(), 1);
    assert_eq!(node.masq_elements().len(), 2);
    node.rt.check(&l, &att).expect("CHECK after the second ADD");
    node.rt.del(&l, &att).expect("DEL");
    node.rt.del(&l, &att).expect("DEL again");
    assert_eq!(node.reservations("ptpres"), vec![]);
    assert_eq!(node.host_veths(), Vec::<String>::new());
    assert!(
        node.sh(&["ip", "-4", "route", "show", &format!("{v4}/32")])
            .trim()
            .is_empty()
    );
    assert_eq!(node.masq_elements(), Vec::<String>::new());
}

#[test]
fn two_ptp_pods_ping_through_the_node() {
    let node = Node::new("ptpping");
    let l = ptp_list(&node, "ptpping");
    let pod_a = netns("ptppinga");
    let pod_b = netns("ptppingb");
    let att_a = pod_att("ptppinga", &pod_a);
    let att_b = pod_att("ptppingb", &pod_b);
    let res_a = node.rt.add(&l, &att_a).expect("ADD a");
    let res_b = node.rt.add(&l, &att_b).expect("ADD b");
    assert!(ping(&pod_a, &ip_of(&res_b, 0)), "IPv4 a -> b");
    assert!(ping(&pod_b, &ip_of(&res_a, 0)), "IPv4 b -> a");
    assert!(ping(&pod_a, &ip_of(&res_b, 1)), "IPv6 a -> b");
    assert!(ping(&pod_b, &ip_of(&res_a, 1)), "IPv6 b -> a");
    node.rt.del(&l, &att_a).expect("DEL a");
    node.rt.del(&l, &att_b).expect("DEL b");
    assert_eq!(node.reservations("ptpping"), vec![]);
    assert_eq!(node.host_veths(), Vec::<String>::new());
}

#[test]
fn ptp_check_fails_with_105_after_tampering() {
    let node = Node::new("ptpchk");
    let l = ptp_list(&node, "ptpchk");
    let tampers = [
        "host route",
        "host gateway address",
        "pod gateway route",
        "pod subnet route",
    ];
    for (i, what) in tampers.iter().enumerate() {
        let pod = netns(&format!("ptpchk{i}"));
        let att = pod_att(&format!("ptpchk{i}"), &pod);
        let res = node.rt.add(&l, &att).expect("ADD");
        node.rt.check(&l, &att).expect("CHECK before tampering");
        let host = res["interfaces"][0]["name"].as_str().unwrap().to_string();
        let v4 = format!("{}/32", ip_of(&res, 0));
        match *what {
            "host route" => node.sh(&["ip", "route", "del", &v4, "dev", &host]),
            "host gateway address" => node.sh(&["ip", "addr", "del", "10.66.0.1/32", "dev", &host]),
            "pod gateway route" => sh(&pod, &["ip", "route", "del", "10.66.0.1/32", "dev", "eth0"]),
            _ => sh(&pod, &["ip", "route", "del", "10.66.0.0/24"]),
        };
        let out = node.call("weft", "CHECK", Some(&att), &request(&l, &att, Some(&res)));
        let (code, msg) = failure(&out);
        assert_eq!(code, 105, "CHECK after removing the {what}: {msg}");
        node.rt.del(&l, &att).expect("DEL");
    }
    assert_eq!(node.reservations("ptpchk"), vec![]);
    assert_eq!(node.host_veths(), Vec::<String>::new());
}
