//! `weft-bandwidth` after the reference `bridge` + `host-local`, with rates measured by
//! iperf3 between the node and the pod.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test helpers may fail loudly

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use weft_testns::TestNs;

fn bandwidth(extra: Value) -> Value {
    let mut conf = json!({"type": "weft-bandwidth", "capabilities": {"bandwidth": true}});
    for (k, v) in extra.as_object().unwrap() {
        conf[k] = v.clone();
    }
    conf
}

fn links(ns: &TestNs) -> Vec<String> {
    let out = ns
        .exec(Command::new("ip").args(["-j", "link", "show"]))
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// Received bits per second of a 3 s iperf3 TCP run from `client` to `server_ip` in `server`.
fn measure(server: &TestNs, client: &TestNs, server_ip: &str) -> f64 {
    let mut srv = server.run(|| {
        Command::new("iperf3")
            .args(["-s", "-1", "-p", "5299", "-B", server_ip])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(400));
    let out = client
        .exec(Command::new("iperf3").args(["-c", server_ip, "-p", "5299", "-t", "3", "-J"]))
        .unwrap();
    let _ = srv.wait();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3: {v}"))
}

/// Measures up to three times: a shaper that lets too much through fails at once, while a
/// run slowed by a busy shared machine is repeated.
fn measure_rate(server: &TestNs, client: &TestNs, server_ip: &str, want: f64) -> f64 {
    let mut last = 0.0;
    for _ in 0..3 {
        last = measure(server, client, server_ip);
        assert!(
            last <= want * 1.10,
            "{last} bit/s exceeds {want} by more than 10 %"
        );
        if last >= want * 0.90 {
            return last;
        }
    }
    panic!("{last} bit/s is more than 10 % below {want}")
}

#[test]
fn shapes_both_directions_within_ten_percent_and_cleans_up() {
    let node = TestNs::new("bw-node").expect("creating namespaces needs root");
    let pod = TestNs::new("bw-pod").unwrap();
    let dir = tempdir();
    let rt = runtime(&node, &dir.path().join("cache"));
    let list = conflist(
        "bwnet",
        vec![
            ref_bridge("bw0", &["10.90.0.0/24"], &dir.path().join("ipam")),
            bandwidth(json!({})),
        ],
    );
    let mut att = attachment("bw1", &pod);
    let (ingress, egress) = (20_000_000u64, 40_000_000u64);
    att.capability_args.insert(
        "bandwidth".into(),
        json!({
            "ingressRate": ingress, "ingressBurst": 1_000_000,
            "egressRate": egress, "egressBurst": 1_000_000
        }),
    );
    let result = rt.add(&list, &att).unwrap();
    let ifb = weft_chained::bandwidth::ifb_name("bwnet", "bw1");
    let names: Vec<&str> = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&ifb.as_str()), "{names:?}");
    assert!(links(&node).contains(&ifb));
    rt.check(&list, &att).unwrap();

    let pod_ip = first_ip(&result);
    let into_pod = measure_rate(&pod, &node, &pod_ip, ingress as f64);
    let out_of_pod = measure_rate(&node, &pod, "10.90.0.1", egress as f64);
    eprintln!("measured: into pod {into_pod:.0} bit/s, out of pod {out_of_pod:.0} bit/s");

    // A repeated ADD of the plugin alone neither fails nor stacks a second filter.
    assert_eq!(run_alone(&rt, &list, 1, "ADD", &att, Some(&result)), result);
    let host_veth = result["interfaces"][1]["name"].as_str().unwrap();
    let filters = node
        .exec(Command::new("tc").args(["filter", "show", "dev", host_veth, "ingress"]))
        .unwrap();
    let text = String::from_utf8_lossy(&filters.stdout).into_owned();
    assert_eq!(text.matches("mirred").count(), 1, "{text}");

    rt.del(&list, &att).unwrap();
    assert!(!links(&node).contains(&ifb));
    rt.del(&list, &att).unwrap();
}

#[test]
fn refuses_bad_limits_passes_through_zero_and_gc_removes_ifbs() {
    let node = TestNs::new("bwb-node").expect("creating namespaces needs root");
    let pod = TestNs::new("bwb-pod").unwrap();
    let dir = tempdir();
    let rt = runtime(&node, &dir.path().join("cache"));
    let att = attachment("bw2", &pod);
    for bad in [
        json!({"ingressRate": 1000000}),
        json!({"egressRate": 1000000, "egressBurst": 1u64 << 35}),
    ] {
        let list = conflist(
            "bwbad",
            vec![
                ref_bridge("bw1", &["10.91.0.0/24"], &dir.path().join("ipam")),
                bandwidth(bad.clone()),
            ],
        );
        assert!(rt.add(&list, &att).is_err(), "{bad}");
        rt.del(&list, &att).unwrap();
    }
    // Without prevResult ADD fails.
    let alone = conflist("bwalone", vec![bandwidth(json!({}))]);
    assert!(rt.add(&alone, &att).is_err());
    // All-zero limits: the previous result passes through unchanged.
    let main = ref_bridge("bw1", &["10.91.0.0/24"], &dir.path().join("ipam"));
    let list = conflist("bwzero", vec![main.clone(), bandwidth(json!({}))]);
    let result = rt.add(&list, &att).unwrap();
    assert_eq!(result["interfaces"].as_array().unwrap().len(), 3);
    rt.del(&list, &att).unwrap();

    // GC (a 1.1.0 verb: run on the plugin alone) removes ifbs of unlisted attachments.
    let list = conflist(
        "bwgc",
        vec![
            main,
            bandwidth(json!({"egressRate": 8000000, "egressBurst": 800000})),
        ],
    );
    rt.add(&list, &att).unwrap();
    let ifb = weft_chained::bandwidth::ifb_name("bwgc", "bw2");
    assert!(links(&node).contains(&ifb));
    let gc = json!({"cniVersion": "1.1.0", "name": "bwgc", "plugins": [bandwidth(json!({}))]});
    rt.gc(&gc, &[("bw2".into(), "eth0".into())]).unwrap();
    assert!(links(&node).contains(&ifb));
    rt.gc(&gc, &[]).unwrap();
    assert!(!links(&node).contains(&ifb));
    rt.del(&list, &att).unwrap();
}
