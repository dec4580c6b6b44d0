//! `weft-tuning` after the reference `bridge` (a mixed chain), in throwaway namespaces.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test helpers may fail loudly

mod common;

use common::*;
use serde_json::{Value, json};
use weft_testns::TestNs;

fn tuning(data_dir: &std::path::Path, extra: Value) -> Value {
    let mut conf =
        json!({"type": "weft-tuning", "dataDir": data_dir, "capabilities": {"mac": true}});
    for (k, v) in extra.as_object().unwrap() {
        conf[k] = v.clone();
    }
    conf
}

#[test]
fn applies_checks_restores_and_is_idempotent() {
    let node = TestNs::new("tun-node").expect("creating namespaces needs root");
    let pod = TestNs::new("tun-pod").unwrap();
    let dir = tempdir();
    let rt = runtime(&node, &dir.path().join("cache"));
    let data = dir.path().join("tuning");
    let list = conflist(
        "tun",
        vec![
            ref_bridge("tun0", &["10.77.0.0/24"], &dir.path().join("ipam")),
            tuning(
                &data,
                json!({
                    "sysctl": {
                        "net.ipv4.conf.IFNAME.rp_filter": "2",
                        "net/core/somaxconn": "512",
                        "net.ipv4.tcp_rmem": "4096 87380 1048576"
                    },
                    "mac": "02:00:00:00:00:01",
                    "mtu": 1400,
                    "promisc": true,
                    "allmulti": true,
                    "txQLen": 42
                }),
            ),
        ],
    );
    let mut att = attachment("tun1", &pod);
    // runtimeConfig.mac wins over the config's `mac`.
    att.capability_args
        .insert("mac".into(), json!("02:00:00:00:00:02"));
    let result = rt.add(&list, &att).unwrap();
    let eth0 = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .unwrap();
    assert_eq!(eth0["mac"], "02:00:00:00:00:02");
    let live = ip_link(&pod, "eth0");
    assert_eq!(live["address"], "02:00:00:00:00:02");
    assert_eq!(live["mtu"], 1400);
    assert_eq!(live["txqlen"], 42);
    let flags: Vec<String> = serde_json::from_value(live["flags"].clone()).unwrap();
    assert!(flags.contains(&"PROMISC".to_string()), "{flags:?}");
    assert!(flags.contains(&"ALLMULTI".to_string()), "{flags:?}");
    assert_eq!(sysctl(&pod, "net/ipv4/conf/eth0/rp_filter"), "2");
    assert_eq!(sysctl(&pod, "net/core/somaxconn"), "512");
    assert!(data.join("tun1_eth0.json").is_file());
    rt.check(&list, &att).unwrap();

    // A repeated ADD of the plugin alone changes nothing and keeps the true originals.
    let second = run_alone(&rt, &list, 1, "ADD", &att, Some(&result));
    assert_eq!(second, result);

    // CHECK notices drift.
    pod.run(|| {
        let mut nl = weft_datapath::Netlink::open().unwrap();
        let l = nl.link_by_name("eth0").unwrap();
        nl.set_mtu(l.index, 1300).unwrap();
    });
    assert!(rt.check(&list, &att).is_err());

    // DEL restores everything tuning changed (the bridge plugin runs after it).
    let tuning_only = conflist("tun", vec![list["plugins"][1].clone()]);
    let cached = rt.cached_result(&list, &att).unwrap();
    let saved: Value =
        serde_json::from_slice(&std::fs::read(data.join("tun1_eth0.json")).unwrap()).unwrap();
    run_alone(&rt, &tuning_only, 0, "DEL", &att, Some(&cached));
    let after = ip_link(&pod, "eth0");
    assert_eq!(after["address"], saved["mac"]);
    assert_ne!(after["address"], "02:00:00:00:00:02");
    assert_eq!(after["mtu"], 1500);
    assert_eq!(
        after["txqlen"].as_u64().unwrap_or(0),
        saved["txqlen"].as_u64().unwrap()
    );
    let flags: Vec<String> = serde_json::from_value(after["flags"].clone()).unwrap();
    assert!(!flags.contains(&"PROMISC".to_string()), "{flags:?}");
    assert!(!flags.contains(&"ALLMULTI".to_string()), "{flags:?}");
    assert_eq!(
        sysctl(&pod, "net/ipv4/conf/eth0/rp_filter"),
        saved["sysctls"][0][1]
    );
    assert_eq!(sysctl(&pod, "net/core/somaxconn"), "4096");
    assert!(!data.join("tun1_eth0.json").exists());
    rt.del(&list, &att).unwrap();
    rt.del(&list, &att).unwrap();
}

#[test]
fn refuses_bad_sysctls_and_missing_prev_result() {
    let node = TestNs::new("tun-node").expect("creating namespaces needs root");
    let pod = TestNs::new("tun-pod").unwrap();
    let dir = tempdir();
    let rt = runtime(&node, &dir.path().join("cache"));
    let data = dir.path().join("tuning");
    let att = attachment("tun2", &pod);
    let alone = conflist("tunalone", vec![tuning(&data, json!({"mtu": 1400}))]);
    let err = rt.add(&alone, &att).unwrap_err().to_string();
    assert!(err.contains("prevResult"), "{err}");
    for bad in [
        json!({"kernel.panic": "1"}),
        json!({"net/../kernel/panic": "1"}),
        json!({"net.core.somaxconn": "1", "net/core/somaxconn": "2"}),
    ] {
        let list = conflist(
            "tunbad",
            vec![
                ref_bridge("tun1", &["10.78.0.0/24"], &dir.path().join("ipam")),
                tuning(&data, json!({ "sysctl": bad, "mtu": 1300 })),
            ],
        );
        assert!(rt.add(&list, &att).is_err(), "{bad}");
        // Nothing was changed in the pod before the refusal.
        assert_eq!(ip_link(&pod, "eth0")["mtu"], 1500);
        rt.del(&list, &att).unwrap();
    }
    assert!(!data.join("tun2_eth0.json").exists());
}

#[test]
fn gc_removes_backups_of_vanished_attachments() {
    let node = TestNs::new("tun-node").expect("creating namespaces needs root");
    let pod = TestNs::new("tun-pod").unwrap();
    let dir = tempdir();
    let rt = runtime(&node, &dir.path().join("cache"));
    let data = dir.path().join("tuning");
    let mut list = conflist(
        "tungc",
        vec![
            ref_bridge("tun2", &["10.79.0.0/24"], &dir.path().join("ipam")),
            tuning(&data, json!({"sysctl": {"net.core.somaxconn": "256"}})),
        ],
    );
    let att = attachment("tun3", &pod);
    rt.add(&list, &att).unwrap();
    assert!(data.join("tun3_eth0.json").is_file());
    // GC is a 1.1.0 verb; the reference bridge does not speak it, so GC runs tuning alone.
    list["cniVersion"] = json!("1.1.0");
    let gc_list = conflist("tungc", vec![list["plugins"][1].clone()]);
    let mut gc_list = gc_list;
    gc_list["cniVersion"] = json!("1.1.0");
    rt.gc(&gc_list, &[("tun3".into(), "eth0".into())]).unwrap();
    assert!(data.join("tun3_eth0.json").is_file());
    rt.gc(&gc_list, &[]).unwrap();
    assert!(!data.join("tun3_eth0.json").exists());
    list["cniVersion"] = json!("1.0.0");
    rt.del(&list, &att).unwrap();
}
