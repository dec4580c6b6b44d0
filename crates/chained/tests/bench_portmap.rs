//! ADD/DEL latency and CPU of `weft-portmap` against the reference `portmap` in one run,
//! one hostPort mapping per pod. Ignored by default (timing on a shared machine):
//! `cargo test -p weft-chained --test bench_portmap -- --ignored --nocapture`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test helpers may fail loudly

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use weft_runtime::{Attachment, Runtime};
use weft_testns::TestNs;

const PODS: usize = 20;
const ROUNDS: usize = 4;

fn request(plugin: &str, i: usize, netns: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "bench",
        "type": plugin,
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [
            {"hostPort": 20000 + i, "containerPort": 80, "protocol": "tcp"}
        ]},
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0"},
                {"name": format!("veth{i:08x}")},
                {"name": "eth0", "sandbox": netns}
            ],
            "ips": [{"address": format!("10.99.{}.{}/16", i / 200, 2 + i % 200),
                     "gateway": "10.99.0.1", "interface": 2}]
        }
    })
}

/// Runs ADD then DEL for `PODS` pods; returns (add wall, add cpu, del wall, del cpu) lists.
fn run(rt: &Runtime, plugin: &str, pod: &TestNs, round: usize) -> [Vec<Duration>; 4] {
    let netns = pod.path().to_string_lossy().into_owned();
    let mut out: [Vec<Duration>; 4] = Default::default();
    for command in ["ADD", "DEL"] {
        for i in 0..PODS {
            let att = Attachment::kubernetes(&format!("b{round}x{i}"), &netns, "eth0", "p");
            let stdin = request(plugin, i, &netns).to_string();
            let o = rt
                .exec_raw(plugin, command, Some(&att), stdin.as_bytes())
                .unwrap();
            assert_eq!(
                o.status,
                0,
                "{plugin} {command}: {}",
                String::from_utf8_lossy(&o.stdout)
            );
            let base = if command == "ADD" { 0 } else { 2 };
            out[base].push(o.elapsed);
            out[base + 1].push(o.cpu);
        }
    }
    out
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

#[test]
#[ignore = "benchmark"]
fn portmap_add_del_latency_against_the_reference() {
    let node = TestNs::new("bench-node").expect("creating namespaces needs root");
    let pod = TestNs::new("bench-pod").unwrap();
    let dir = tempdir();
    let rt = runtime(&node, &dir.path().join("cache"));
    let mut weft: [Vec<Duration>; 4] = Default::default();
    let mut reference: [Vec<Duration>; 4] = Default::default();
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            ["weft-portmap", "portmap"]
        } else {
            ["portmap", "weft-portmap"]
        };
        for plugin in order {
            let r = run(&rt, plugin, &pod, round);
            let acc = if plugin == "portmap" {
                &mut reference
            } else {
                &mut weft
            };
            for (a, b) in acc.iter_mut().zip(r) {
                a.extend(b);
            }
        }
    }
    let labels = ["ADD wall", "ADD cpu", "DEL wall", "DEL cpu"];
    for (k, label) in labels.iter().enumerate() {
        let w = median(&mut weft[k]);
        let r = median(&mut reference[k]);
        eprintln!(
            "{label}: weft-portmap {w:.2} ms, reference portmap {r:.2} ms, ratio {:.1}x",
            r / w
        );
    }
}
