//! The reference conflist `bridge` + `host-local` + `portmap` + `bandwidth` + `tuning`, with
//! only the chained `type`s changed to weft's, plus containerd's separate `loopback` network.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test helpers may fail loudly

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;
use weft_testns::TestNs;

#[test]
fn reference_conflist_with_weft_chained_plugins() {
    let node = TestNs::new("ch-node").expect("creating namespaces needs root");
    let pod = TestNs::new("ch-pod").unwrap();
    let dir = tempdir();
    let rt = runtime(&node, &dir.path().join("cache"));
    let data = dir.path().join("tuning");
    let mut bridge = ref_bridge("ch0", &["10.95.0.0/24"], &dir.path().join("ipam"));
    bridge["isDefaultGateway"] = json!(true);
    let list = conflist(
        "chnet",
        vec![
            bridge,
            json!({"type": "weft-portmap", "capabilities": {"portMappings": true}, "snat": true}),
            json!({"type": "weft-bandwidth", "capabilities": {"bandwidth": true}}),
            json!({"type": "weft-tuning", "dataDir": data, "sysctl": {"net.core.somaxconn": "500"}}),
        ],
    );
    let lo = conflist("cni-loopback", vec![json!({"type": "weft-loopback"})]);
    let mut att = attachment("ch1", &pod);
    att.capability_args.insert(
        "portMappings".into(),
        json!([{"hostPort": 8088, "containerPort": 80, "protocol": "tcp"}]),
    );
    att.capability_args.insert(
        "bandwidth".into(),
        json!({"ingressRate": 50_000_000, "ingressBurst": 1_000_000,
               "egressRate": 50_000_000, "egressBurst": 1_000_000}),
    );
    rt.add(&lo, &att).unwrap();
    let result = rt.add(&list, &att).unwrap();
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(sysctl(&pod, "net/core/somaxconn"), "500");

    let listener = pod.run(|| TcpListener::bind("[::]:80").unwrap());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = s.write_all(b"chained");
        }
    });
    let got = node.run(|| {
        let mut s =
            TcpStream::connect_timeout(&"127.0.0.1:8088".parse().unwrap(), Duration::from_secs(3))
                .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    });
    assert_eq!(got, "chained");
    rt.check(&list, &att).unwrap();
    rt.check(&lo, &att).unwrap();

    rt.del(&list, &att).unwrap();
    rt.del(&lo, &att).unwrap();
    let table = node
        .exec(Command::new("nft").args(["list", "table", "inet", "weft_portmap"]))
        .unwrap();
    assert!(!String::from_utf8_lossy(&table.stdout).contains("comment \"ch1 "));
    let ifb = weft_chained::bandwidth::ifb_name("chnet", "ch1");
    let links = node
        .exec(Command::new("ip").args(["link", "show"]))
        .unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&ifb));
    assert!(!data.join("ch1_eth0.json").exists());
}
