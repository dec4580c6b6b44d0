//! Bridge mode end to end: result shape, idempotent ADD, CHECK against tampering, DEL in
//! every situation, MTU, MAC, gateway and forwarding, default routes, masquerade, a
//! dual-stack ping between two pods, and rejected configurations that must leave nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers fail loudly

mod common;

use common::*;
use serde_json::{Value, json};
use weft_runtime::Attachment;
use weft_testns::TestNs;

fn list(node: &Node, name: &str, extra: Value) -> Value {
    weft_list("1.1.0", name, &node.data_dir(), dual_ranges(), extra)
}

fn add(node: &Node, list: &Value, cid: &str) -> (TestNs, Attachment, Value) {
    let pod = netns(cid);
    let att = pod_att(cid, &pod);
    let res = node
        .rt
        .add(list, &att)
        .unwrap_or_else(|e| panic!("ADD {cid}: {e}"));
    (pod, att, res)
}

fn check_code(node: &Node, list: &Value, att: &Attachment, prev: &Value) -> Option<u64> {
    let out = node.call("weft", "CHECK", Some(att), &request(list, att, Some(prev)));
    (out.status != 0).then(|| failure(&out).0)
}

fn assert_released(node: &Node, name: &str) {
    assert_eq!(node.reservations(name), vec![], "reservations left");
    assert_eq!(node.host_veths(), Vec::<String>::new(), "host veths left");
}

#[test]
fn add_result_idempotence_check_and_repeated_del() {
    let node = Node::new("badd");
    let l = list(&node, "badd", json!({"bridge": "wbr0", "isGateway": true}));
    let (pod, att, res) = add(&node, &l, "badd1");
    let ifs = res["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 3, "{res}");
    assert_eq!(ifs[0]["name"], "wbr0");
    assert!(ifs[0].get("sandbox").is_none() && ifs[1].get("sandbox").is_none());
    assert!(ifs[1]["name"].as_str().unwrap().starts_with("veth"));
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], pod.path().to_string_lossy().as_ref());
    let ips = res["ips"].as_array().expect("ips");
    assert_eq!(ips.len(), 2);
    assert!(ips.iter().all(|ip| ip["interface"] == 2));
    assert_eq!(ips[0]["address"], "10.88.0.2/24");
    assert_eq!(ips[0]["gateway"], "10.88.0.1");
    assert_eq!(ips[1]["address"], "fd88::2/64");

    // ADD again (no DEL in between) converges on the same attachment.
    let again = success(&node.call("weft", "ADD", Some(&att), &request(&l, &att, None)));
    assert_eq!(again["ips"], res["ips"]);
    assert_eq!(again["interfaces"][2]["mac"], res["interfaces"][2]["mac"]);
    assert_eq!(node.reservations("badd").len(), 2);
    assert_eq!(node.host_veths().len(), 1);

    assert_eq!(
        check_code(&node, &l, &att, &res),
        None,
        "CHECK right after ADD"
    );
    node.rt.check(&l, &att).expect("CHECK through the runtime");
    node.rt.del(&l, &att).expect("DEL");
    node.rt.del(&l, &att).expect("DEL again");
    node.settle_deletes();
    assert!(!has_link(&pod, "eth0"));
    assert!(has_link(&node.ns, "wbr0"), "DEL keeps the bridge");
    assert_released(&node, "badd");
}

#[test]
fn check_fails_with_105_after_tampering() {
    let node = Node::new("bchk");
    let l = list(&node, "bchk", json!({"isDefaultGateway": true}));
    let tampers = [
        "pod interface",
        "v4 address",
        "v6 address",
        "default route",
        "bridge gateway",
    ];
    for (i, what) in tampers.iter().enumerate() {
        let (pod, att, res) = add(&node, &l, &format!("bchk{i}"));
        assert_eq!(
            check_code(&node, &l, &att, &res),
            None,
            "{what}: CHECK before tampering"
        );
        let v4 = res["ips"][0]["address"].as_str().unwrap();
        let v6 = res["ips"][1]["address"].as_str().unwrap();
        match *what {
            "pod interface" => sh(&pod, &["ip", "link", "del", "eth0"]),
            "v4 address" => sh(&pod, &["ip", "addr", "del", v4, "dev", "eth0"]),
            "v6 address" => sh(&pod, &["ip", "-6", "addr", "del", v6, "dev", "eth0"]),
            "default route" => sh(&pod, &["ip", "route", "del", "default"]),
            _ => node.sh(&["ip", "addr", "del", "10.88.0.1/24", "dev", "cni0"]),
        };
        assert_eq!(
            check_code(&node, &l, &att, &res),
            Some(105),
            "CHECK after removing the {what}"
        );
        node.rt.del(&l, &att).expect("DEL");
        assert_released(&node, "bchk");
    }
    // The reservation is part of the attachment too.
    let (_pod, att, res) = add(&node, &l, "bchkres");
    let v4 = ip_of(&res, 0);
    std::fs::remove_file(node.data.path().join("bchk").join(&v4)).unwrap();
    let out = node.call("weft", "CHECK", Some(&att), &request(&l, &att, Some(&res)));
    let (code, msg) = failure(&out);
    assert!(
        msg.contains(&v4) || msg.contains("reserv"),
        "code {code}: {msg}"
    );
    node.rt.del(&l, &att).expect("DEL");
    assert_released(&node, "bchk");
}

#[test]
fn del_with_empty_netns_and_after_the_namespace_is_gone() {
    let node = Node::new("bdel");
    let l = list(&node, "bdel", json!({}));
    let (_pod, mut att, _) = add(&node, &l, "bdel1");
    att.netns = String::new();
    node.rt.del(&l, &att).expect("DEL with empty CNI_NETNS");
    assert_released(&node, "bdel");

    let (pod, att, _) = add(&node, &l, "bdel2");
    drop(pod);
    node.rt
        .del(&l, &att)
        .expect("DEL after the namespace is gone");
    assert_released(&node, "bdel");
    node.rt.del(&l, &att).expect("DEL again");
}

#[test]
fn mtu_and_mac_from_runtime_config_and_cni_args() {
    let node = Node::new("bmtu");
    let l = list(
        &node,
        "bmtu",
        json!({"mtu": 1400, "capabilities": {"mac": true}}),
    );
    let pod = netns("bmtu1");
    let mut att = pod_att("bmtu1", &pod);
    att.capability_args
        .insert("mac".into(), json!("0a:58:0a:58:00:99"));
    let res = node.rt.add(&l, &att).expect("ADD");
    assert_eq!(mtu(&pod, "eth0"), 1400);
    let host = res["interfaces"][1]["name"].as_str().unwrap();
    assert_eq!(mtu(&node.ns, host), 1400);
    assert_eq!(res["interfaces"][2]["mac"], "0a:58:0a:58:00:99");
    assert!(sh(&pod, &["ip", "link", "show", "eth0"]).contains("0a:58:0a:58:00:99"));
    node.rt.del(&l, &att).expect("DEL");

    let pod2 = netns("bmtu2");
    let mut att2 = pod_att("bmtu2", &pod2);
    att2.cni_args
        .push(("MAC".into(), "0a:58:0a:58:00:98".into()));
    let res = node.rt.add(&l, &att2).expect("ADD with CNI_ARGS MAC");
    assert_eq!(res["interfaces"][2]["mac"], "0a:58:0a:58:00:98");
    node.rt.del(&l, &att2).expect("DEL");
    assert_released(&node, "bmtu");
}

#[test]
fn rejected_configurations_reserve_nothing() {
    let node = Node::new("brej");
    node.sh(&[
        "ip", "link", "add", "notabr", "type", "veth", "peer", "name", "notabr-p",
    ]);
    let pod = netns("brejpod");
    let att = pod_att("brej1", &pod);
    for extra in [
        json!({"hairpinMode": true, "promiscMode": true}),
        json!({"bridge": "notabr"}),
    ] {
        let l = list(&node, "brej", extra.clone());
        let out = node.call("weft", "ADD", Some(&att), &request(&l, &att, None));
        let (code, msg) = failure(&out);
        assert_eq!(code, 7, "{extra}: {msg}");
        assert_released(&node, "brej");
        assert_eq!(links(&pod).len(), 1);
    }
}

#[test]
fn bridge_holding_another_ipv4_fails_after_ipam_and_releases() {
    let node = Node::new("bforce");
    node.sh(&["ip", "link", "add", "cni0", "type", "bridge"]);
    node.sh(&["ip", "addr", "add", "10.88.0.254/24", "dev", "cni0"]);
    let pod = netns("bforcepod");
    let att = pod_att("bforce1", &pod);
    let l = list(&node, "bforce", json!({"isGateway": true}));
    let (code, msg) = failure(&node.call("weft", "ADD", Some(&att), &request(&l, &att, None)));
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("10.88.0.254"), "{msg}");
    assert_released(&node, "bforce");
    assert_eq!(links(&pod).len(), 1);

    let l = list(
        &node,
        "bforce",
        json!({"isGateway": true, "forceAddress": true}),
    );
    node.rt.add(&l, &att).expect("ADD with forceAddress");
    let on_bridge = addrs(&node.ns, "cni0");
    assert!(
        on_bridge.contains(&"10.88.0.1/24".to_string()),
        "{on_bridge:?}"
    );
    assert!(
        !on_bridge.contains(&"10.88.0.254/24".to_string()),
        "{on_bridge:?}"
    );
    node.rt.del(&l, &att).expect("DEL");
    assert_released(&node, "bforce");
}

#[test]
fn requested_addresses_and_prev_result_without_version() {
    let node = Node::new("breq");
    let l = list(&node, "breq", json!({"capabilities": {"ips": true}}));
    let pod = netns("breq1");
    let mut att = pod_att("breq1", &pod);
    att.cni_args.push(("IP".into(), "10.88.0.50".into()));
    let res = node.rt.add(&l, &att).expect("ADD with CNI_ARGS IP");
    assert_eq!(res["ips"][0]["address"], "10.88.0.50/24");
    // A prevResult without cniVersion is read as the request's version.
    let mut prev = res.clone();
    prev.as_object_mut().unwrap().remove("cniVersion");
    assert_eq!(check_code(&node, &l, &att, &prev), None);

    let pod2 = netns("breq2");
    let mut att2 = pod_att("breq2", &pod2);
    att2.capability_args
        .insert("ips".into(), json!(["10.88.0.60/24", "fd88::60/64"]));
    let res = node.rt.add(&l, &att2).expect("ADD with runtimeConfig.ips");
    assert_eq!(res["ips"][0]["address"], "10.88.0.60/24");
    assert_eq!(res["ips"][1]["address"], "fd88::60/64");

    // The gateway, a taken address, or one outside every range: error, nothing reserved.
    let before = node.reservations("breq");
    for ip in ["10.88.0.1", "10.88.0.50", "10.99.0.5"] {
        let pod3 = netns("breq3");
        let mut att3 = pod_att("breq3", &pod3);
        att3.cni_args.push(("IP".into(), ip.into()));
        let out = node.call("weft", "ADD", Some(&att3), &request(&l, &att3, None));
        let (code, msg) = failure(&out);
        assert_ne!(code, 0, "{ip}: {msg}");
        assert_eq!(node.reservations("breq"), before, "{ip}");
        assert_eq!(links(&pod3).len(), 1, "{ip}");
    }
    node.rt.del(&l, &att).expect("DEL");
    node.rt.del(&l, &att2).expect("DEL");
    assert_released(&node, "breq");
}

#[test]
fn foreign_pod_interface_is_108_and_reserves_nothing() {
    let node = Node::new("bfor");
    let l = list(&node, "bfor", json!({}));
    let pod = netns("bforpod");
    sh(
        &pod,
        &[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ],
    );
    let att = pod_att("bfor1", &pod);
    let (code, msg) = failure(&node.call("weft", "ADD", Some(&att), &request(&l, &att, None)));
    assert_eq!(code, 108, "{msg}");
    assert_released(&node, "bfor");
    assert!(has_link(&pod, "eth0"), "the foreign interface must stay");
    // The runtime follows a failed ADD with DEL: it must not take the foreign interface.
    node.rt.del(&l, &att).expect("DEL");
    assert!(
        has_link(&pod, "eth0"),
        "DEL removed an interface weft did not create"
    );
}

#[test]
fn gateway_forwarding_default_routes_and_masquerade() {
    let node = Node::new("bgw");
    let l = list(
        &node,
        "bgw",
        json!({"isDefaultGateway": true, "ipMasq": true}),
    );
    let (pod, att, res) = add(&node, &l, "bgw1");
    let on_bridge = addrs(&node.ns, "cni0");
    assert!(
        on_bridge.contains(&"10.88.0.1/24".to_string()),
        "{on_bridge:?}"
    );
    assert!(
        on_bridge.contains(&"fd88::1/64".to_string()),
        "{on_bridge:?}"
    );
    let fwd4 = node.sh(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    let fwd6 = node.sh(&["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]);
    assert_eq!((fwd4.trim(), fwd6.trim()), ("1", "1"));
    assert!(sh(&pod, &["ip", "-4", "route", "show", "default"]).contains("via 10.88.0.1"));
    assert!(sh(&pod, &["ip", "-6", "route", "show", "default"]).contains("via fd88::1"));
    let routes = res["routes"].as_array().expect("routes");
    assert!(
        routes
            .iter()
            .any(|r| r["dst"] == "0.0.0.0/0" && r["gw"] == "10.88.0.1")
    );
    assert!(
        routes
            .iter()
            .any(|r| r["dst"] == "::/0" && r["gw"] == "fd88::1")
    );
    let elems = node.masq_elements();
    assert!(elems.iter().any(|e| e.contains("10.88.0.2")), "{elems:?}");
    assert!(elems.iter().any(|e| e.contains("fd88::2")), "{elems:?}");
    node.rt.check(&l, &att).expect("CHECK");
    node.sh(&[
        "nft",
        "delete",
        "element",
        "inet",
        "weft",
        "masq_pods4",
        "{ 10.88.0.2 }",
    ]);
    assert_eq!(
        check_code(&node, &l, &att, &res),
        Some(105),
        "CHECK without the masquerade element"
    );
    node.rt.del(&l, &att).expect("DEL");
    assert_eq!(node.masq_elements(), Vec::<String>::new());
    assert_released(&node, "bgw");
}

#[test]
fn dual_stack_ping_between_two_pods() {
    let node = Node::new("bping");
    let l = list(&node, "bping", json!({"isGateway": true}));
    let (pod_a, att_a, res_a) = add(&node, &l, "bpinga");
    let (pod_b, att_b, res_b) = add(&node, &l, "bpingb");
    // No sleep: pod addresses skip DAD, so they are usable at once.
    assert!(ping(&pod_a, &ip_of(&res_b, 0)), "IPv4 a -> b");
    assert!(ping(&pod_b, &ip_of(&res_a, 0)), "IPv4 b -> a");
    assert!(ping(&pod_a, &ip_of(&res_b, 1)), "IPv6 a -> b");
    assert!(ping(&pod_b, &ip_of(&res_a, 1)), "IPv6 b -> a");
    let tentative = sh(
        &pod_a,
        &["ip", "-6", "addr", "show", "scope", "global", "tentative"],
    );
    assert!(
        tentative.trim().is_empty(),
        "tentative addresses: {tentative}"
    );
    node.rt.del(&l, &att_a).expect("DEL a");
    node.rt.del(&l, &att_b).expect("DEL b");
    assert_released(&node, "bping");
}

#[test]
fn layer2_only_and_top_level_dns() {
    let node = Node::new("bl2");
    let l =
        json!({"cniVersion": "1.0.0", "name": "bl2", "plugins": [{"type": "weft", "ipam": {}}]});
    let (pod, att, res) = add(&node, &l, "bl2a");
    assert!(
        res.get("ips")
            .is_none_or(|ips| ips.as_array().is_some_and(Vec::is_empty)),
        "{res}"
    );
    assert!(has_link(&pod, "eth0"));
    node.rt.check(&l, &att).expect("CHECK");
    node.rt.del(&l, &att).expect("DEL");
    assert_eq!(node.host_veths(), Vec::<String>::new());

    let dns = json!({"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]});
    let l = list(&node, "bl2", json!({"dns": dns}));
    let (_pod, att, res) = add(&node, &l, "bl2b");
    assert_eq!(res["dns"], dns);
    node.rt.del(&l, &att).expect("DEL");
}

#[test]
fn ptp_without_ipam_is_a_config_error() {
    let node = Node::new("bnoipam");
    let pod = netns("bnoipampod");
    let att = pod_att("bnoipam", &pod);
    let l = json!({"cniVersion": "1.0.0", "name": "bnoipam", "plugins": [{"type": "weft", "mode": "ptp"}]});
    let (code, msg) = failure(&node.call("weft", "ADD", Some(&att), &request(&l, &att, None)));
    assert_eq!(code, 7, "{msg}");
    assert_eq!(links(&pod).len(), 1);
    assert_eq!(node.host_veths(), Vec::<String>::new());
}

#[test]
fn two_interfaces_of_one_container_are_independent() {
    let node = Node::new("btwo");
    let l = list(&node, "btwo", json!({}));
    let pod = netns("btwo");
    let eth0 = pod_att("btwo", &pod);
    let mut eth1 = eth0.clone();
    eth1.ifname = "eth1".into();
    let r0 = node.rt.add(&l, &eth0).expect("ADD eth0");
    let r1 = node.rt.add(&l, &eth1).expect("ADD eth1");
    assert_ne!(r0["ips"], r1["ips"]);
    assert_eq!(node.host_veths().len(), 2);
    node.rt.del(&l, &eth0).expect("DEL eth0");
    node.settle_deletes();
    assert!(has_link(&pod, "eth1") && !has_link(&pod, "eth0"));
    let held: Vec<String> = node
        .reservations("btwo")
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    assert_eq!(held, vec!["btwo\r\neth1".to_string(); 2]);
    node.rt.check(&l, &eth1).expect("CHECK eth1");
    node.rt.del(&l, &eth1).expect("DEL eth1");
    assert_released(&node, "btwo");
}

#[test]
fn hairpin_promisc_ip_ranges_and_args_ips() {
    let node = Node::new("bopt");
    let l = list(
        &node,
        "bopt",
        json!({"bridge": "hbr0", "hairpinMode": true}),
    );
    let (_p1, a1, r1) = add(&node, &l, "bopt1");
    let host = r1["interfaces"][1]["name"].as_str().unwrap().to_string();
    let d = node.sh(&["ip", "-d", "link", "show", &host]);
    assert!(d.contains("hairpin on"), "{d}");
    node.rt.del(&l, &a1).expect("DEL");

    let l = list(
        &node,
        "bopt",
        json!({"bridge": "pbr0", "promiscMode": true,
        "capabilities": {"ipRanges": true}}),
    );
    let pod = netns("bopt2");
    let mut a2 = pod_att("bopt2", &pod);
    a2.capability_args
        .insert("ipRanges".into(), json!([[{"subnet": "10.123.0.0/24"}]]));
    let r2 = node.rt.add(&l, &a2).expect("ADD with ipRanges");
    assert_eq!(r2["ips"][0]["address"], "10.123.0.2/24", "{r2}");
    assert!(node.sh(&["ip", "link", "show", "pbr0"]).contains("PROMISC"));
    node.rt.check(&l, &a2).expect("CHECK");
    node.rt.del(&l, &a2).expect("DEL");

    let pod = netns("bopt3");
    let a3 = pod_att("bopt3", &pod);
    let mut stdin = request(&l, &a3, None);
    stdin["args"] = json!({"cni": {"ips": ["10.88.0.77/24"]}});
    let r3 = success(&node.call("weft", "ADD", Some(&a3), &stdin));
    assert_eq!(r3["ips"][0]["address"], "10.88.0.77/24", "{r3}");
    success(&node.call("weft", "DEL", Some(&a3), &stdin));
    assert_released(&node, "bopt");
}
