//! IPAM delegation: the reference `host-local` under `weft`, a missing IPAM binary, `weft-ipam`
//! under the reference `bridge`, and a recording fake IPAM that shows what a delegate sees.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers fail loudly

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};

#[test]
fn host_local_delegate_add_check_del() {
    require_reference_plugins();
    let node = Node::new("dhl");
    let pod = netns("dhlpod");
    let att = pod_att("dhl1", &pod);
    let l = json!({"cniVersion": "1.0.0", "name": "dhl", "plugins": [{
        "type": "weft", "isGateway": true,
        "ipam": {"type": "host-local", "dataDir": node.data_dir(),
                 "ranges": [[{"subnet": "10.44.0.0/24"}], [{"subnet": "fd44::/64"}]]}}]});
    let res = node.rt.add(&l, &att).expect("ADD with host-local");
    assert_eq!(res["ips"][0]["address"], "10.44.0.2/24");
    assert_eq!(res["ips"][1]["address"], "fd44::2/64");
    assert_eq!(res["ips"][0]["interface"], 2);
    assert_eq!(
        node.reservations("dhl").len(),
        2,
        "host-local wrote its files"
    );
    node.rt.check(&l, &att).expect("CHECK");
    node.rt.del(&l, &att).expect("DEL");
    assert_eq!(node.reservations("dhl"), vec![]);
    assert_eq!(node.host_veths(), Vec::<String>::new());

    // A failure after host-local reserved (the bridge holds another IPv4): released again.
    node.sh(&["ip", "addr", "del", "10.44.0.1/24", "dev", "cni0"]);
    node.sh(&["ip", "addr", "add", "10.44.0.254/24", "dev", "cni0"]);
    let (code, msg) = failure(&node.call("weft", "ADD", Some(&att), &request(&l, &att, None)));
    assert_eq!(code, 7, "{msg}");
    assert_eq!(node.reservations("dhl"), vec![]);
    assert_eq!(node.host_veths(), Vec::<String>::new());
    assert_eq!(links(&pod).len(), 1);
}

#[test]
fn missing_ipam_binary_is_an_error_with_no_leftovers() {
    let node = Node::with_path("dmiss", vec![bin_dir(), PathBuf::from("/nonexistent")]);
    let pod = netns("dmisspod");
    let att = pod_att("dmiss1", &pod);
    let l = json!({"cniVersion": "1.0.0", "name": "dmiss", "plugins": [{
        "type": "weft", "ipam": {"type": "host-local", "subnet": "10.45.0.0/24",
                                 "dataDir": node.data_dir()}}]});
    let (code, msg) = failure(&node.call("weft", "ADD", Some(&att), &request(&l, &att, None)));
    assert!(msg.contains("host-local"), "code {code}: {msg}");
    assert_eq!(links(&pod).len(), 1, "pod left with an interface");
    assert_eq!(node.host_veths(), Vec::<String>::new());
    // DEL cannot reach the delegate either, but must not leave anything behind.
    let _ = node.call("weft", "DEL", Some(&att), &request(&l, &att, None));
    assert_eq!(links(&pod).len(), 1);
    assert_eq!(node.host_veths(), Vec::<String>::new());
}

#[test]
fn weft_ipam_under_the_reference_bridge() {
    require_reference_plugins();
    let node = Node::new("dref");
    let pod = netns("drefpod");
    let att = pod_att("dref1", &pod);
    let l = json!({"cniVersion": "1.0.0", "name": "dref", "plugins": [{
        "type": "bridge", "bridge": "refbr0", "isGateway": true,
        "ipam": {"type": "weft-ipam", "dataDir": node.data_dir(),
                 "ranges": [[{"subnet": "10.46.0.0/24"}]]}}]});
    let res = node
        .rt
        .add(&l, &att)
        .expect("reference bridge ADD with weft-ipam");
    assert_eq!(res["ips"][0]["address"], "10.46.0.2/24");
    assert_eq!(node.reservations("dref").len(), 1);
    assert!(addrs(&pod, "eth0").contains(&"10.46.0.2/24".to_string()));
    node.rt.check(&l, &att).expect("CHECK");
    node.rt.del(&l, &att).expect("DEL");
    assert_eq!(node.reservations("dref"), vec![]);
}

const FAKE_RESULT: &str =
    r#"{"cniVersion":"1.1.0","ips":[{"address":"10.47.0.5/24","gateway":"10.47.0.1"}]}"#;

/// Writes an executable fake IPAM that records stdin and env per verb into `dir`, prints
/// `add_output` on ADD, and fails STATUS with code 50 when `fail_status`.
fn fake_ipam(dir: &Path, add_output: &str, fail_status: bool) {
    let status = if fail_status {
        r#"echo '{"cniVersion":"1.1.0","code":50,"msg":"fake says no"}'; exit 1"#
    } else {
        "exit 0"
    };
    let script = format!(
        r#"#!/bin/sh
cat > "{d}/stdin.$CNI_COMMAND"
env > "{d}/env.$CNI_COMMAND"
case "$CNI_COMMAND" in
ADD) echo '{add_output}' ;;
STATUS) {status} ;;
esac
"#,
        d = dir.display()
    );
    let tmp = dir.join("fake-ipam.tmp");
    std::fs::write(&tmp, script).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, dir.join("fake-ipam")).unwrap();
}

fn recorded(dir: &Path, verb: &str) -> (Value, HashMap<String, String>) {
    let stdin = std::fs::read(dir.join(format!("stdin.{verb}")))
        .unwrap_or_else(|e| panic!("fake IPAM never saw {verb}: {e}"));
    let env = std::fs::read_to_string(dir.join(format!("env.{verb}"))).unwrap();
    let env = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (
        serde_json::from_slice(&stdin).expect("recorded stdin is JSON"),
        env,
    )
}

#[test]
fn fake_ipam_sees_the_full_config_and_the_same_env() {
    let fake_dir = tempfile::tempdir().unwrap();
    fake_ipam(fake_dir.path(), FAKE_RESULT, false);
    let node = Node::with_path("dfake", vec![bin_dir(), fake_dir.path().to_path_buf()]);
    let pod = netns("dfakepod");
    let att = pod_att("dfake1", &pod);
    let l = json!({"cniVersion": "1.1.0", "name": "dfake", "plugins": [{
        "type": "weft", "topLevelKey": "kept", "ipam": {"type": "fake-ipam", "custom": 1}}]});
    let sent = request(&l, &att, None);
    let res = success(&node.call("weft", "ADD", Some(&att), &sent));
    assert_eq!(res["ips"][0]["address"], "10.47.0.5/24");
    let (stdin, env) = recorded(fake_dir.path(), "ADD");
    assert_eq!(stdin, sent, "the delegate gets the whole request config");
    assert_eq!(env["CNI_COMMAND"], "ADD");
    assert_eq!(env["CNI_CONTAINERID"], "dfake1");
    assert_eq!(env["CNI_IFNAME"], "eth0");
    assert_eq!(env["CNI_NETNS"], pod.path().to_string_lossy().as_ref());
    assert!(env["CNI_ARGS"].contains("K8S_POD_NAME=dfake1"));
    assert!(env["CNI_PATH"].contains(&fake_dir.path().to_string_lossy().into_owned()));

    node.rt.del(&l, &att).expect("DEL");
    let (stdin, env) = recorded(fake_dir.path(), "DEL");
    assert_eq!(env["CNI_COMMAND"], "DEL");
    assert_eq!(stdin["ipam"]["custom"], 1);
    assert_eq!(node.host_veths(), Vec::<String>::new());

    node.rt.status(&l).expect("STATUS forwarded and passing");
    assert_eq!(
        recorded(fake_dir.path(), "STATUS").1["CNI_COMMAND"],
        "STATUS"
    );
    node.rt.gc(&l, &[("x".into(), "eth0".into())]).expect("GC");
    let (stdin, _) = recorded(fake_dir.path(), "GC");
    assert_eq!(
        stdin["cni.dev/valid-attachments"],
        json!([{"containerID": "x", "ifname": "eth0"}]),
        "GC forwarded with the list unchanged"
    );
}

#[test]
fn status_fails_when_the_delegate_fails() {
    let fake_dir = tempfile::tempdir().unwrap();
    fake_ipam(fake_dir.path(), FAKE_RESULT, true);
    let node = Node::with_path("dstat", vec![bin_dir(), fake_dir.path().to_path_buf()]);
    let l = json!({"cniVersion": "1.1.0", "name": "dstat", "plugins": [{
        "type": "weft", "ipam": {"type": "fake-ipam"}}]});
    let stdin = request(&l, &weft_runtime::Attachment::default(), None);
    let (code, msg) = failure(&node.call("weft", "STATUS", None, &stdin));
    assert_eq!(code, 50, "{msg}");
}

#[test]
fn unreadable_delegate_result_is_released() {
    let fake_dir = tempfile::tempdir().unwrap();
    fake_ipam(fake_dir.path(), "{not json", false);
    let node = Node::with_path("dbadres", vec![bin_dir(), fake_dir.path().to_path_buf()]);
    let pod = netns("dbadrespod");
    let att = pod_att("dbadres1", &pod);
    let l = json!({"cniVersion": "1.1.0", "name": "dbadres", "plugins": [{
        "type": "weft", "ipam": {"type": "fake-ipam"}}]});
    let (code, msg) = failure(&node.call("weft", "ADD", Some(&att), &request(&l, &att, None)));
    assert_ne!(code, 0, "{msg}");
    assert_eq!(
        recorded(fake_dir.path(), "DEL").1["CNI_CONTAINERID"],
        "dbadres1"
    );
    assert_eq!(links(&pod).len(), 1);
    assert_eq!(node.host_veths(), Vec::<String>::new());
}
