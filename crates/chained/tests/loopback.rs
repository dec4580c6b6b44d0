//! `weft-loopback` run like a runtime runs it, in throwaway namespaces.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test helpers may fail loudly

use std::path::PathBuf;

use serde_json::json;
use weft_runtime::{Attachment, Runtime};
use weft_testns::TestNs;

fn runtime(node: &TestNs, cache: &std::path::Path) -> Runtime {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_weft-loopback"));
    Runtime {
        cni_path: vec![bin.parent().unwrap().to_path_buf()],
        node_netns: Some(node.path().to_path_buf()),
        cache_dir: cache.to_path_buf(),
    }
}

#[test]
fn add_reports_lo_and_del_tolerates_a_vanished_namespace() {
    let node = TestNs::new("lo-node").expect("creating namespaces needs root");
    let pod = TestNs::new("lo-pod").unwrap();
    let cache = std::env::temp_dir().join(format!("weft-lo-{}", std::process::id()));
    let rt = runtime(&node, &cache);
    let list = json!({"cniVersion": "1.1.0", "name": "lo", "plugins": [{"type": "weft-loopback"}]});
    // Even with CNI_IFNAME=eth0 the plugin configures lo.
    let att = Attachment::kubernetes("c1", &pod.path().to_string_lossy(), "eth0", "p");
    pod.run(|| {
        let mut nl = weft_datapath::netlink::Netlink::open().unwrap();
        let lo = nl.link_by_name("lo").unwrap();
        nl.set_up(lo.index, false).unwrap();
    });
    let result = rt.add(&list, &att).unwrap();
    assert_eq!(result["cniVersion"], "1.1.0");
    assert_eq!(result["interfaces"][0]["name"], "lo");
    assert_eq!(result["ips"][0]["address"], "127.0.0.1/8");
    assert_eq!(result["ips"][0]["interface"], 0);
    rt.check(&list, &att).unwrap();
    rt.del(&list, &att).unwrap();
    assert!(rt.check(&list, &att).is_err(), "lo is down after DEL");
    let gone = Attachment {
        netns: "/run/netns/does-not-exist".into(),
        ..att.clone()
    };
    rt.del(&list, &gone).unwrap();
    let empty = Attachment {
        netns: String::new(),
        ..att
    };
    rt.del(&list, &empty).unwrap();
    let _ = std::fs::remove_dir_all(&cache);
}
