//! GC and STATUS (CNI 1.1.0): GC frees reservations, host veths and masquerade elements of
//! attachments not listed as valid (current and legacy key, `null` list); STATUS tells
//! whether the plugin can take ADDs.
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

const WEFT: &str = env!("CARGO_BIN_EXE_weft");
const IPAM: &str = env!("CARGO_BIN_EXE_weft-ipam");

fn masq_list(node: &Node, name: &str) -> Value {
    weft_list(
        "1.1.0",
        name,
        &node.data_dir(),
        dual_ranges(),
        json!({"ipMasq": true}),
    )
}

fn add_pods(node: &Node, list: &Value, prefix: &str, n: usize) -> Vec<(TestNs, Attachment, Value)> {
    (0..n)
        .map(|i| {
            let pod = netns(&format!("{prefix}{i}"));
            let att = pod_att(&format!("{prefix}{i}"), &pod);
            let res = node.rt.add(list, &att).expect("ADD");
            (pod, att, res)
        })
        .collect()
}

/// A raw GC with the attachment list under `key` (`None` = key absent).
fn gc_raw(node: &Node, list: &Value, key: &str, attachments: Value) -> Value {
    let mut stdin = request(list, &Attachment::default(), None);
    stdin[key] = attachments;
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", REF_DIR)];
    success(&node.exec(WEFT, &env, stdin.to_string().as_bytes()))
}

#[test]
fn gc_frees_everything_of_invalid_attachments() {
    let node = Node::new("gcall");
    let l = masq_list(&node, "gcall");
    let pods = add_pods(&node, &l, "gcall", 3);
    let keep = &pods[0];
    let keep_ips = [ip_of(&keep.2, 0), ip_of(&keep.2, 1)];
    node.rt
        .gc(&l, &[(keep.1.container_id.clone(), "eth0".into())])
        .expect("GC");
    let held: Vec<String> = node
        .reservations("gcall")
        .iter()
        .map(|(ip, _)| ip.to_string())
        .collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(keep_ips.iter().all(|ip| held.contains(ip)), "{held:?}");
    assert_eq!(node.host_veths().len(), 1);
    let mut elems = node.masq_elements();
    elems.sort();
    let mut want = keep_ips.to_vec();
    want.sort();
    assert_eq!(elems, want);
    assert!(
        !has_link(&pods[1].0, "eth0"),
        "pod end goes with its host end"
    );
    node.rt
        .check(&l, &keep.1)
        .expect("the valid attachment still passes CHECK");

    // The legacy key with an empty list: nothing is valid any more.
    gc_raw(&node, &l, "cni.dev/attachments", json!([]));
    assert_eq!(node.reservations("gcall"), vec![]);
    assert_eq!(node.host_veths(), Vec::<String>::new());
    assert_eq!(node.masq_elements(), Vec::<String>::new());
}

#[test]
fn gc_accepts_a_null_list() {
    let node = Node::new("gcnull");
    let l = masq_list(&node, "gcnull");
    let _pods = add_pods(&node, &l, "gcnull", 2);
    gc_raw(&node, &l, "cni.dev/valid-attachments", Value::Null);
    assert_eq!(node.reservations("gcnull"), vec![]);
    assert_eq!(node.host_veths(), Vec::<String>::new());
    assert_eq!(node.masq_elements(), Vec::<String>::new());

    // This project's rule: an absent key means nothing is valid either.
    let _more = add_pods(&node, &l, "gcnone", 2);
    let stdin = request(&l, &Attachment::default(), None);
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", REF_DIR)];
    success(&node.exec(WEFT, &env, stdin.to_string().as_bytes()));
    assert_eq!(node.reservations("gcnull"), vec![]);
    assert_eq!(node.host_veths(), Vec::<String>::new());
}

#[test]
fn gc_collects_a_veth_whose_add_died_before_writing_the_alias() {
    let node = Node::new("gcgrp");
    let l = masq_list(&node, "gcgrp");
    // weft's link group (0x77656674) but no alias: an ADD killed right after creating it.
    node.sh(&[
        "ip",
        "link",
        "add",
        "veth0badc0de",
        "group",
        "2003134068",
        "type",
        "veth",
        "peer",
        "name",
        "gcgrp-p",
    ]);
    // Someone else's veth (default group, no alias) must survive.
    node.sh(&[
        "ip",
        "link",
        "add",
        "veth1234abcd",
        "type",
        "veth",
        "peer",
        "name",
        "gcgrp-q",
    ]);
    node.rt.gc(&l, &[]).expect("GC");
    assert_eq!(node.host_veths(), vec!["veth1234abcd".to_string()]);
}

#[test]
fn gc_through_weft_ipam_standalone() {
    let node = Node::new("gcipam");
    let pod = netns("gcipam");
    let p = pod.path().to_string_lossy().into_owned();
    let stdin = json!({"cniVersion": "1.1.0", "name": "gcipam", "type": "bridge",
        "ipam": {"type": "weft-ipam", "ranges": dual_ranges(), "dataDir": node.data_dir()}});
    for cid in ["a", "b"] {
        success(&node.exec(
            IPAM,
            &att_env("ADD", cid, &p, "eth0"),
            stdin.to_string().as_bytes(),
        ));
    }
    let mut gc = stdin.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "a", "ifname": "eth0"}]);
    success(&node.exec(IPAM, &[("CNI_COMMAND", "GC")], gc.to_string().as_bytes()));
    let owners: Vec<String> = node
        .reservations("gcipam")
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    assert_eq!(owners, vec!["a\r\neth0".to_string(); 2]);
}

#[test]
fn status_healthy_exhausted_and_unwritable() {
    let node = Node::new("status");
    let env = [("CNI_COMMAND", "STATUS"), ("CNI_PATH", REF_DIR)];
    let tiny =
        json!([[{"subnet": "10.5.0.0/24", "rangeStart": "10.5.0.7", "rangeEnd": "10.5.0.7"}]]);
    let l = weft_list("1.1.0", "status", &node.data_dir(), tiny.clone(), json!({}));
    let stdin = request(&l, &Attachment::default(), None).to_string();
    for bin in [WEFT, IPAM] {
        let out = node.exec(bin, &env, stdin.as_bytes());
        assert_eq!(
            success(&out),
            Value::Null,
            "{bin}: healthy STATUS prints nothing"
        );
    }
    node.rt.status(&l).expect("STATUS through the runtime");

    let pod = netns("statuspod");
    let att = pod_att("s1", &pod);
    node.rt.add(&l, &att).expect("ADD takes the only address");
    for bin in [WEFT, IPAM] {
        let (code, msg) = failure(&node.exec(bin, &env, stdin.as_bytes()));
        assert_eq!(code, 50, "{bin} with an exhausted pool: {msg}");
    }
    node.rt.del(&l, &att).expect("DEL");
    success(&node.exec(WEFT, &env, stdin.as_bytes()));

    // A data dir that cannot be created (its parent is a regular file).
    let file = node.scratch.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let bad_dir = file.join("data").to_string_lossy().into_owned();
    let l = weft_list("1.1.0", "status", &bad_dir, tiny, json!({}));
    let stdin = request(&l, &Attachment::default(), None).to_string();
    for bin in [WEFT, IPAM] {
        let (code, msg) = failure(&node.exec(bin, &env, stdin.as_bytes()));
        assert_eq!(code, 50, "{bin} with an unwritable data dir: {msg}");
    }
}
