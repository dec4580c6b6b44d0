//! Black-box: a chained plugin with nothing to do prints `prevResult` unchanged, in the
//! request's version (checklist 37, 81, 86), and refuses to run without `prevResult`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test helpers may fail loudly

mod common;

use common::*;
use serde_json::{Value, json};
use weft_runtime::Attachment;
use weft_testns::TestNs;

fn prev(version: &str, netns: &str) -> Value {
    let mut ip = json!({"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 2});
    if version.starts_with("0.") {
        ip["version"] = json!("4");
    }
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": "cni0", "mac": "02:00:00:00:00:01"},
            {"name": "veth1234abcd", "mac": "02:00:00:00:00:02"},
            {"name": "eth0", "mac": "02:00:00:00:00:03", "sandbox": netns}
        ],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        "dns": {"nameservers": ["10.1.0.1"]}
    })
}

#[test]
fn nothing_to_do_means_prev_result_unchanged() {
    let node = TestNs::new("pt-node").expect("creating namespaces needs root");
    let pod = TestNs::new("pt-pod").unwrap();
    let dir = tempdir();
    let rt = runtime(&node, &dir.path().join("cache"));
    let netns = pod.path().to_string_lossy().into_owned();
    let att = Attachment::kubernetes("pt1", &netns, "eth0", "p");
    for plugin in ["weft-portmap", "weft-bandwidth", "weft-tuning"] {
        for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            let p = prev(version, &netns);
            let conf = json!({
                "cniVersion": version, "name": "pt", "type": plugin,
                "dataDir": dir.path().join("tuning"), "prevResult": p
            });
            let out = rt
                .exec_raw(plugin, "ADD", Some(&att), conf.to_string().as_bytes())
                .unwrap();
            assert_eq!(
                out.status,
                0,
                "{plugin} {version}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            let got: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(got, p, "{plugin} {version}");
            // ADD without prevResult is refused.
            let bare = json!({"cniVersion": version, "name": "pt", "type": plugin});
            let out = rt
                .exec_raw(plugin, "ADD", Some(&att), bare.to_string().as_bytes())
                .unwrap();
            assert_ne!(out.status, 0, "{plugin} {version} without prevResult");
            let err: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(err["msg"].as_str().unwrap().contains("prevResult"), "{err}");
        }
    }
    // bandwidth speaks 0.3.0 and later only, like the reference.
    let old = json!({"cniVersion": "0.2.0", "name": "pt", "type": "weft-bandwidth",
                     "prevResult": {"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.5/24"}}});
    let out = rt
        .exec_raw(
            "weft-bandwidth",
            "ADD",
            Some(&att),
            old.to_string().as_bytes(),
        )
        .unwrap();
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], 1, "{err}");
}
