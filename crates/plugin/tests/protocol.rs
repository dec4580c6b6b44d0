//! Black-box protocol tests (checklist section 7, items 1-34 that apply to `weft` and
//! `weft-ipam`): the binaries run with raw env + stdin in a throwaway node namespace.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers fail loudly

mod common;

use common::*;
use serde_json::{Value, json};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");
const IPAM: &str = env!("CARGO_BIN_EXE_weft-ipam");

fn conf(node: &Node, version: &str, name: &str) -> Value {
    json!({
        "cniVersion": version, "name": name, "type": "weft",
        "ipam": {"type": "weft-ipam", "ranges": dual_ranges(), "dataDir": node.data_dir()},
    })
}

/// Nothing on the node or in the pod was created, nothing reserved.
fn assert_untouched(node: &Node, pod: &weft_testns::TestNs, network: &str) {
    assert_eq!(node.reservations(network), vec![], "reservation left");
    assert_eq!(
        links(&node.ns).len(),
        1,
        "node links: {:?}",
        links(&node.ns)
    );
    assert_eq!(links(pod).len(), 1, "pod links: {:?}", links(pod));
    assert!(node.masq_elements().is_empty());
}

#[test]
fn version_with_empty_stdin_and_with_a_version_object() {
    let node = Node::new("pver");
    for bin in [WEFT, IPAM] {
        let out = success(&node.exec(bin, &[("CNI_COMMAND", "VERSION")], b""));
        let list: Vec<&str> = out["supportedVersions"]
            .as_array()
            .expect("supportedVersions")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            assert!(list.contains(&v), "{bin}: {v} missing from {list:?}");
        }
        assert!(out["cniVersion"].is_string());
        let dummy = [
            ("CNI_COMMAND", "VERSION"),
            ("CNI_NETNS", "dummy"),
            ("CNI_IFNAME", "dummy"),
            ("CNI_PATH", "dummy"),
        ];
        let out = success(&node.exec(bin, &dummy, br#"{"cniVersion":"1.0.0"}"#));
        assert_eq!(out["cniVersion"], "1.0.0");
    }
}

#[test]
fn unknown_command_and_missing_env_vars_are_code_4() {
    let node = Node::new("penv");
    let pod = netns("penvpod");
    let p = pod.path().to_string_lossy().into_owned();
    let stdin = conf(&node, "1.0.0", "penv").to_string();
    for bin in [WEFT, IPAM] {
        let (code, _) = failure(&node.exec(bin, &[("CNI_COMMAND", "FOO")], stdin.as_bytes()));
        assert_eq!(code, 4);
        for missing in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let env: Vec<_> = att_env("ADD", "c1", &p, "eth0")
                .into_iter()
                .filter(|(k, _)| *k != missing)
                .collect();
            let (code, msg) = failure(&node.exec(bin, &env, stdin.as_bytes()));
            assert_eq!(code, 4, "{bin} without {missing}");
            assert!(
                msg.contains(missing),
                "{bin}: msg {msg:?} must name {missing}"
            );
        }
    }
    assert_untouched(&node, &pod, "penv");
}

#[test]
fn bad_ifnames_and_container_ids_are_code_4_and_change_nothing() {
    let node = Node::new("pbad");
    let pod = netns("pbadpod");
    let p = pod.path().to_string_lossy().into_owned();
    let stdin = conf(&node, "1.0.0", "pbad").to_string();
    let long = "a".repeat(16);
    for bin in [WEFT, IPAM] {
        for ifname in [long.as_str(), ".", "..", "a/b", "a:b", "a b", ""] {
            let out = node.exec(bin, &att_env("ADD", "c1", &p, ifname), stdin.as_bytes());
            assert_eq!(failure(&out).0, 4, "{bin} ifname {ifname:?}");
        }
        for cid in ["-x", "a/b", "..", "a\nb", "../../etc"] {
            let out = node.exec(bin, &att_env("ADD", cid, &p, "eth0"), stdin.as_bytes());
            assert_eq!(failure(&out).0, 4, "{bin} container id {cid:?}");
        }
    }
    assert_untouched(&node, &pod, "pbad");
}

#[test]
fn decode_name_and_version_errors() {
    let node = Node::new("pdec");
    let pod = netns("pdecpod");
    let p = pod.path().to_string_lossy().into_owned();
    let env = att_env("ADD", "c1", &p, "eth0");
    let good = conf(&node, "1.0.0", "pdec").to_string();
    let truncated = &good[..good.len() / 2];
    let mut no_name = conf(&node, "1.0.0", "x");
    no_name.as_object_mut().unwrap().remove("name");
    let cases: Vec<(String, u64)> = vec![
        ("not json".into(), 6),
        (truncated.into(), 6),
        (no_name.to_string(), 7),
        (conf(&node, "1.0.0", "a/b").to_string(), 7),
        (conf(&node, "1.0.0", ".hidden").to_string(), 7),
        (conf(&node, "9.9.9", "pdec").to_string(), 1),
    ];
    for bin in [WEFT, IPAM] {
        for (stdin, want) in &cases {
            let (code, _) = failure(&node.exec(bin, &env, stdin.as_bytes()));
            assert_eq!(code, *want, "{bin} with {stdin}");
        }
        let check = conf(&node, "0.3.1", "pdec").to_string();
        let out = node.exec(bin, &att_env("CHECK", "c1", &p, "eth0"), check.as_bytes());
        assert_eq!(failure(&out).0, 1, "{bin} CHECK at 0.3.1");
        for verb in ["GC", "STATUS"] {
            let stdin = conf(&node, "1.0.0", "pdec").to_string();
            let out = node.exec(
                bin,
                &[("CNI_COMMAND", verb), ("CNI_PATH", REF_DIR)],
                stdin.as_bytes(),
            );
            assert_eq!(failure(&out).0, 1, "{bin} {verb} at 1.0.0");
        }
    }
    assert_untouched(&node, &pod, "pdec");
}

#[test]
fn netns_that_is_a_regular_file_is_rejected() {
    let node = Node::new("pfile");
    let pod = netns("pfilepod");
    let file = node.scratch.path().join("not-a-netns");
    std::fs::write(&file, "x").unwrap();
    let f = file.to_string_lossy().into_owned();
    let stdin = conf(&node, "1.0.0", "pfile").to_string();
    let out = node.exec(WEFT, &att_env("ADD", "c1", &f, "eth0"), stdin.as_bytes());
    let (code, msg) = failure(&out);
    assert!(code == 4 || code == 8 || code == 106, "code {code}: {msg}");
    assert_untouched(&node, &pod, "pfile");
}

#[test]
fn invalid_ranges_are_code_7_and_reserve_nothing() {
    let node = Node::new("prng");
    let pod = netns("prngpod");
    let p = pod.path().to_string_lossy().into_owned();
    let bad_ranges = [
        json!([[{"subnet": "10.9.0.0/24"}], [{"subnet": "10.9.0.0/25"}]]),
        json!([[{"subnet": "10.9.0.0/24"}, {"subnet": "10.9.0.128/25"}]]),
        json!([[{"subnet": "10.9.0.0/24", "gateway": "10.10.0.1"}]]),
        json!([[{"subnet": "10.9.0.0/33"}]]),
        json!([[{"subnet": "10.9.0.5/24"}]]),
        json!([[{"subnet": "10.9.0.0/32"}]]),
        json!([[{"subnet": "banana"}]]),
        json!([[{"subnet": "10.9.0.0/24", "rangeStart": "10.8.0.1"}]]),
        json!([[{"subnet": "10.9.0.0/24"}, {"subnet": "fd00::/64"}]]),
        json!([]),
    ];
    for ranges in bad_ranges {
        let stdin = json!({
            "cniVersion": "1.0.0", "name": "prng", "type": "weft",
            "ipam": {"type": "weft-ipam", "ranges": ranges, "dataDir": node.data_dir()},
        })
        .to_string();
        for bin in [WEFT, IPAM] {
            let (code, msg) =
                failure(&node.exec(bin, &att_env("ADD", "c1", &p, "eth0"), stdin.as_bytes()));
            assert_eq!(code, 7, "{bin} with {ranges}: {msg}");
        }
    }
    assert_untouched(&node, &pod, "prng");
}

#[test]
fn exhausted_pool_is_code_100_and_changes_nothing() {
    let node = Node::new("pexh");
    let pod1 = netns("pexh1");
    let pod2 = netns("pexh2");
    let ranges =
        json!([[{"subnet": "10.7.0.0/24", "rangeStart": "10.7.0.9", "rangeEnd": "10.7.0.9"}]]);
    let list = weft_list("1.0.0", "pexh", &node.data_dir(), ranges, json!({}));
    node.rt
        .add(&list, &pod_att("c1", &pod1))
        .expect("first ADD");
    let before = node.reservations("pexh");
    let veths = node.host_veths();
    let a2 = pod_att("c2", &pod2);
    let (code, msg) = failure(&node.call("weft", "ADD", Some(&a2), &request(&list, &a2, None)));
    assert_eq!(code, 100, "{msg}");
    assert_eq!(node.reservations("pexh"), before);
    assert_eq!(node.host_veths(), veths);
    assert_eq!(links(&pod2).len(), 1, "pod 2 got a link");
    // The standalone IPAM agrees.
    let stdin = json!({"cniVersion": "1.0.0", "name": "pexh", "type": "bridge", "ipam": {
        "type": "weft-ipam",
        "ranges": [[{"subnet": "10.7.0.0/24", "rangeStart": "10.7.0.9", "rangeEnd": "10.7.0.9"}]],
        "dataDir": node.data_dir()}});
    let p2 = pod2.path().to_string_lossy().into_owned();
    let out = node.exec(
        IPAM,
        &att_env("ADD", "c2", &p2, "eth0"),
        stdin.to_string().as_bytes(),
    );
    assert_eq!(failure(&out).0, 100);
    assert_eq!(node.reservations("pexh"), before);
    node.rt.del(&list, &pod_att("c1", &pod1)).expect("DEL");
}

#[test]
fn unknown_fields_capabilities_and_cni_args() {
    let node = Node::new("pargs");
    let pod = netns("pargspod");
    let p = pod.path().to_string_lossy().into_owned();
    let mut c = conf(&node, "1.0.0", "pargs");
    merge(
        &mut c,
        json!({"someFutureField": {"x": [1, 2]}, "capabilities": {"mac": true}}),
    );
    let stdin = c.to_string();
    let with_args = |args: &'static str| {
        let mut env = att_env("ADD", "c1", &p, "eth0");
        env.push(("CNI_ARGS", args));
        node.exec(WEFT, &env, stdin.as_bytes())
    };
    let (code, msg) = failure(&with_args("FOO=bar"));
    assert!(code != 0, "{msg}");
    assert!(msg.contains("FOO"), "msg should name the key: {msg}");
    failure(&with_args("FOO"));
    assert_untouched(&node, &pod, "pargs");
    success(&with_args("IgnoreUnknown=1;FOO=bar"));
    let del = {
        let mut env = att_env("DEL", "c1", &p, "eth0");
        env.push(("CNI_ARGS", "IgnoreUnknown=1;FOO=bar"));
        node.exec(WEFT, &env, stdin.as_bytes())
    };
    assert_eq!(success(&del), Value::Null, "DEL prints nothing");
    success(&with_args(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=u",
    ));
    success(&node.exec(WEFT, &att_env("DEL", "c1", &p, "eth0"), stdin.as_bytes()));
    assert_eq!(node.reservations("pargs"), vec![]);
    assert_eq!(node.host_veths(), Vec::<String>::new());
    assert_eq!(links(&pod).len(), 1);
}

#[test]
fn del_without_netns_prev_result_or_prior_add_succeeds_silently() {
    let node = Node::new("pdel");
    let stdin = conf(&node, "1.0.0", "pdel").to_string();
    for bin in [WEFT, IPAM] {
        let env = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "never-added"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", REF_DIR),
        ];
        let out = node.exec(bin, &env, stdin.as_bytes());
        assert_eq!(success(&out), Value::Null);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn netns_that_is_the_plugins_own_is_code_8() {
    let node = Node::new("pown");
    let own = node.ns.path().to_string_lossy().into_owned();
    let stdin = conf(&node, "1.0.0", "pown").to_string();
    let (code, msg) =
        failure(&node.exec(WEFT, &att_env("ADD", "c1", &own, "eth0"), stdin.as_bytes()));
    assert_eq!(code, 8, "{msg}");
    assert_eq!(node.reservations("pown"), vec![]);
    assert_eq!(links(&node.ns).len(), 1, "{:?}", links(&node.ns));
}

#[test]
fn two_ipv4_range_sets_at_0_2_0_are_rejected() {
    let node = Node::new("p020");
    let pod = netns("p020pod");
    let p = pod.path().to_string_lossy().into_owned();
    let ranges = json!([[{"subnet": "10.3.0.0/24"}], [{"subnet": "10.4.0.0/24"}]]);
    for (bin, ty) in [(WEFT, "weft"), (IPAM, "bridge")] {
        let stdin = json!({"cniVersion": "0.2.0", "name": "p020", "type": ty,
            "ipam": {"type": "weft-ipam", "ranges": ranges, "dataDir": node.data_dir()}});
        let out = node.exec(
            bin,
            &att_env("ADD", "c1", &p, "eth0"),
            stdin.to_string().as_bytes(),
        );
        let (code, msg) = failure(&out);
        assert_ne!(code, 0, "{msg}");
    }
    assert_untouched(&node, &pod, "p020");
}
