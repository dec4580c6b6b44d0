//! NetworkPolicy enforcement by real weftd processes: pods (veths on weft0, made by the
//! test) ping each other across nodes and on one node (bridged, through br_netfilter)
//! while policies, labels and claims change in the store and on the claim socket.
// Test-only helpers: clippy treats non-#[test] functions as production code.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::etcd::{CLIENT_URL, Etcd};
use common::policy::Store;
use common::{Cluster, poll};
use serde_json::json;

const VXLAN: &str = r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"vxlan"}}"#;

/// Host `host` of the /24 that `ip` is in.
fn sibling(ip: &str, host: u8) -> String {
    let (net, _) = ip.rsplit_once('.').unwrap();
    format!("{net}.{host}")
}

fn ready(c: &Cluster, peers: u64) {
    for i in 0..c.nodes.len() {
        c.wait_healthy(i, peers);
        let node = &c.nodes[i];
        let ok = poll(Duration::from_secs(10), || {
            node.policy_status()["appliedAtMs"]
                .as_u64()
                .is_some_and(|t| t > 0)
        });
        assert!(ok, "{}: no policy applied: {}", node.name, c.log(i));
    }
}

#[test]
fn policies_filter_cross_and_same_node_traffic() {
    let mut c = Cluster::new(VXLAN, &["198.18.0.10/24", "198.18.0.11/24"], 30);
    c.start_all();
    ready(&c, 1);
    for node in &c.nodes {
        let conf = common::file_json(&node.dir.join("net.d/10-weft.conflist"));
        let socket = node.socket_path().display().to_string();
        assert_eq!(conf["plugins"][0]["policySocket"], socket.as_str());
        for key in ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"] {
            let path = format!("/proc/sys/net/bridge/{key}");
            let out = node.exec(&["cat", &path]);
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{key}");
        }
        assert_eq!(node.policy_status()["enabled"], true);
    }
    let store = Store::open(&c);
    store.namespace("x", json!({"team": "x"}));
    // node0: a (protected), b (friend), d (stranger); node1: c (friend), e (stranger).
    let pods = [
        ("a", 0, 5, json!({"app": "a"})),
        ("b", 0, 6, json!({"role": "friend"})),
        ("d", 0, 7, json!({"role": "stranger"})),
        ("c", 1, 5, json!({"role": "friend"})),
        ("e", 1, 6, json!({"role": "stranger"})),
    ];
    let mut ip = std::collections::BTreeMap::new();
    for (name, node, host, labels) in &pods {
        let (_, addr) = c.add_pod(*node, *host);
        let node_name = c.nodes[*node].name.clone();
        store.pod("x", name, &node_name, labels.clone(), &[&addr]);
        ip.insert(*name, addr);
    }
    let idx = |name: &str| pods.iter().position(|p| p.0 == name).unwrap();
    let a = ip["a"].clone();
    assert!(c.pod_ping(idx("e"), &a, 3), "no policy yet: e reaches a");
    assert!(c.pod_ping(idx("d"), &a, 3), "no policy yet: d reaches a");

    store.policy(
        "x",
        "deny-ingress",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    let rev = store.policy(
        "x",
        "a-from-friends",
        json!({"podSelector": {"matchLabels": {"app": "a"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "friend"}}}]}]}),
    );
    c.wait_policy_revision(rev);
    assert!(c.pod_ping(idx("b"), &a, 3), "same-node friend allowed");
    assert!(c.pod_ping(idx("c"), &a, 3), "cross-node friend allowed");
    assert!(!c.pod_ping(idx("d"), &a, 1), "same-node stranger denied");
    assert!(!c.pod_ping(idx("e"), &a, 1), "cross-node stranger denied");
    assert!(
        c.nodes[0].ping(&a, 1),
        "the node itself still reaches its pod"
    );
    let status = c.nodes[0].policy_status();
    assert_eq!(status["policies"], 2);
    assert_eq!(status["pods"], 3);
    assert!(status["rules"].as_u64().unwrap() > 0, "{status}");

    // e becomes a friend: one label, no new chain.
    let rev = store.pod("x", "e", "node1", json!({"role": "friend"}), &[&ip["e"]]);
    c.wait_policy_revision(rev);
    assert!(c.pod_ping(idx("e"), &a, 3), "relabelled e allowed");

    // Without the allowing policy, a is only denied.
    let rev = store.delete("networkpolicies", "x/a-from-friends");
    c.wait_policy_revision(rev);
    assert!(
        !c.pod_ping(idx("b"), &a, 1),
        "allow policy deleted: b denied"
    );

    // An invalid policy is skipped and reported; the valid one stays in force.
    let rev = store.policy(
        "x",
        "broken",
        json!({"podSelector": {}, "policyTypes": ["Sideways"]}),
    );
    c.wait_policy_revision(rev);
    for node in &c.nodes {
        let status = node.policy_status();
        let error = status["error"].as_str().unwrap_or_default();
        assert!(error.contains("x/broken"), "{status}");
        assert_eq!(status["invalid"], 1, "{status}");
        assert_eq!(status["policies"], 1, "{status}");
    }
    assert!(!c.pod_ping(idx("c"), &a, 1), "deny still in force");

    // A stopped weftd leaves its table in force; the next one takes it over.
    c.agents[0].stop("TERM");
    assert!(c.nodes[0].nft_list("table", None).is_ok());
    assert!(!c.pod_ping(idx("d"), &a, 1), "enforced while weftd is down");
    c.start(0);
    c.wait_healthy(0, 1);
    c.wait_policy_revision(rev);
    assert!(!c.pod_ping(idx("c"), &a, 1), "enforced after the restart");

    let rev = store.delete("networkpolicies", "x/deny-ingress");
    c.wait_policy_revision(rev);
    assert!(c.pod_ping(idx("d"), &a, 3), "no policy left: d reaches a");
    c.close();
}

#[test]
fn claims_quarantine_and_answer_after_the_rules() {
    let mut c = Cluster::new(VXLAN, &["198.18.0.10/24"], 30);
    // A socket file left by an earlier weftd is replaced.
    let stale = c.nodes[0].socket_path();
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "stale").unwrap();
    c.start_all();
    ready(&c, 0);
    let node = &c.nodes[0];
    let mode = std::fs::metadata(node.socket_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let store = Store::open(&c);
    let (_, p) = c.add_pod(0, 5);
    let (_, q) = c.add_pod(0, 6);
    let node = &c.nodes[0];
    assert!(c.pod_ping(1, &p, 3), "nothing claimed yet");

    // x/p is claimed before weftd knows its object: cut off both ways.
    assert_eq!(node.claim("x", "p", &[&p]), json!({"ok": true}));
    assert!(node.quarantine4().contains(&p), "{}", node.quarantine4());
    assert_eq!(node.policy_status()["quarantined"], 1);
    assert!(!c.pod_ping(1, &p, 1), "quarantined p unreachable");
    assert!(!c.pod_ping(0, &q, 1), "quarantined p cannot send");
    assert!(node.ping(&p, 1), "node-to-pod output is still allowed");

    // Its object arrives (no IPs yet, as before the sandbox exists): quarantine lifted.
    let rev = store.pod("x", "p", "node0", json!({"app": "p"}), &[]);
    c.wait_policy_revision(rev);
    assert!(!node.quarantine4().contains(&p), "{}", node.quarantine4());
    assert!(c.pod_ping(1, &p, 3), "p reachable once known");

    // The answer comes only once the kernel has the pod's rules.
    store.policy(
        "x",
        "guard-r",
        json!({"podSelector": {"matchLabels": {"app": "r"}}, "policyTypes": ["Ingress"]}),
    );
    let rev = store.pod("x", "r", "node0", json!({"app": "r"}), &[]);
    c.wait_policy_revision(rev);
    let r_ip = sibling(&p, 7);
    let before = node.nft_list("map", Some("wp_ingress4")).unwrap();
    assert!(!before.contains(&r_ip), "{before}");
    assert_eq!(node.claim("x", "r", &[&r_ip]), json!({"ok": true}));
    let after = node.nft_list("map", Some("wp_ingress4")).unwrap();
    assert!(after.contains(&format!("{r_ip} : jump wp_c_")), "{after}");

    // A pod written just before its claim is read directly or from the watch; either
    // way it is not quarantined.
    let s_ip = sibling(&p, 8);
    store.pod("x", "s", "node0", json!({"app": "s"}), &[]);
    assert_eq!(node.claim("x", "s", &[&s_ip]), json!({"ok": true}));
    assert!(
        !node.quarantine4().contains(&s_ip),
        "{}",
        node.quarantine4()
    );

    let bad = node.claim_raw(r#"{"op":"release","namespace":"x","name":"p","ips":["10.0.0.1"]}"#);
    assert_eq!(bad["ok"], false);
    assert!(
        bad["error"].as_str().unwrap().contains("unknown op"),
        "{bad}"
    );
    let garbage = node.claim_raw("not json");
    assert_eq!(garbage["ok"], false);

    // Someone flushes the table: the next periodic check loads it again.
    assert!(
        node.exec(&["nft", "delete", "table", "inet", "weft_policy"])
            .status
            .success()
    );
    let back = poll(Duration::from_secs(8), || {
        node.nft_list("map", Some("wp_ingress4"))
            .is_ok_and(|m| m.contains(&r_ip))
    });
    assert!(back, "table not restored:\n{}", c.log(0));
    c.close();
}

#[test]
fn network_policy_off_removes_table_and_socket() {
    let mut c = Cluster::new(VXLAN, &["198.18.0.10/24"], 30);
    c.extra_args = vec!["--network-policy".into(), "false".into()];
    let node = &c.nodes[0];
    let out = node.exec(&["nft", "add", "table", "inet", "weft_policy"]);
    assert!(out.status.success(), "{out:?}");
    std::fs::create_dir_all(node.dir.join("run")).unwrap();
    std::fs::write(node.socket_path(), "stale").unwrap();
    c.start_all();
    c.wait_healthy(0, 0);
    let node = &c.nodes[0];
    let ok = poll(Duration::from_secs(5), || {
        node.nft_list("table", None).is_err()
    });
    assert!(ok, "weft_policy table still there");
    assert!(!node.socket_path().exists());
    let conf = common::file_json(&node.dir.join("net.d/10-weft.conflist"));
    assert!(conf["plugins"][0].get("policySocket").is_none(), "{conf}");
    assert_eq!(node.policy_status()["enabled"], false);
    c.close();
}

#[test]
fn revisions_through_etcd() {
    let mut c = Cluster::new(VXLAN, &["198.18.0.10/24", "198.18.0.11/24"], 30);
    let _etcd = Etcd::start(&c.fabric, c.dir.path().join("etcd"));
    c.etcd = Some(CLIENT_URL.to_string());
    c.start_all();
    ready(&c, 1);
    let (_, a) = c.add_pod(0, 5);
    let (_, b) = c.add_pod(1, 5);
    let store = Store::open(&c);
    store.namespace("x", json!({}));
    store.pod("x", "a", "node0", json!({"app": "a"}), &[&a]);
    store.pod("x", "b", "node1", json!({"app": "b"}), &[&b]);
    assert!(c.pod_ping(1, &a, 3), "no policy yet");
    let rev = store.policy(
        "x",
        "deny-a",
        json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Ingress"]}),
    );
    c.wait_policy_revision(rev);
    assert!(!c.pod_ping(1, &a, 1), "a isolated");
    assert!(c.pod_ping(0, &b, 3), "b is not");
    let rev = store.delete("networkpolicies", "x/deny-a");
    c.wait_policy_revision(rev);
    assert!(c.pod_ping(1, &a, 3), "policy deleted");
    drop(store);
    c.close();
}

#[test]
fn dual_stack_pods_on_one_bridge() {
    let dual =
        r#"{"clusterCidrs":["10.244.0.0/16","fd00:10:244::/56"],"backend":{"type":"vxlan"}}"#;
    let mut c = Cluster::new(dual, &["198.18.0.10/24"], 30);
    c.start_all();
    ready(&c, 0);
    let (_, a) = c.add_pod_with(0, 5, true);
    let (_, b) = c.add_pod_with(0, 6, true);
    let store = Store::open(&c);
    store.pod("x", "a", "node0", json!({"app": "a"}), &[&a[0], &a[1]]);
    store.pod("x", "b", "node0", json!({"app": "b"}), &[&b[0], &b[1]]);
    assert!(c.pod_ping(1, &a[1], 3), "IPv6 before any policy");
    let rev = store.policy(
        "x",
        "a-from-nobody",
        json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Ingress"]}),
    );
    c.wait_policy_revision(rev);
    assert!(!c.pod_ping(1, &a[1], 1), "bridged IPv6 filtered");
    assert!(!c.pod_ping(1, &a[0], 1), "bridged IPv4 filtered");
    assert!(c.pod_ping(0, &b[1], 3), "b is not isolated");
    // An IPv6-only claim of an unknown pod is quarantined in the IPv6 set.
    let ghost = b[1].replace("::6", "::9");
    assert_eq!(
        c.nodes[0].claim("x", "ghost", &[&ghost]),
        json!({"ok": true})
    );
    let q6 = c.nodes[0].nft_list("set", Some("wp_quarantine6")).unwrap();
    assert!(q6.contains(&ghost), "{q6}");
    drop(store);
    c.close();
}
