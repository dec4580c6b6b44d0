//! weftctl operator commands against an embedded store and an IPAM dir in temp dirs
//! (no namespaces: the node's links are injected).

// Helpers outside #[test] fns are test code too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::Cell;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use weft_cluster::{NodeLocalConfig, NodeRecord};
use weft_ctl::ops::attach::LinkSnapshot;
use weft_ctl::ops::ipam::{NetworkIpam, State, network_ipam};
use weft_ctl::ops::ipam_cmd::{Probe, inspect};
use weft_ctl::ops::status::{Health, StatusArgs, gather};
use weft_ctl::ops::{OutputArgs, OutputFormat, StoreArgs, StoreKind, nodes, trace};
use weft_store::{Datastore, PutOptions, StoreConfig};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn store_args(dir: &Path) -> StoreArgs {
    StoreArgs {
        store: Some(StoreKind::Embedded),
        store_path: Some(dir.to_path_buf()),
        ..StoreArgs::default()
    }
}

fn open(dir: &Path) -> std::sync::Arc<dyn Datastore> {
    rt().block_on(StoreConfig::Embedded { dir: dir.into() }.open())
        .unwrap()
}

fn put(store: &dyn Datastore, kind: &str, key: &str, value: Value) {
    rt().block_on(store.put(kind, key, &value, PutOptions::default()))
        .unwrap();
}

fn pod(ns: &str, name: &str, node: &str, ip: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
           "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
           "status": {"podIPs": [{"ip": ip}]}})
}

fn conflist(data_dir: &Path) -> Value {
    json!({"cniVersion": "1.0.0", "name": "weft", "plugins": [{
        "type": "weft", "mode": "bridge", "bridge": "weft0",
        "ipam": {"type": "weft-ipam", "ranges": [[{"subnet": "10.244.1.0/24"}]],
                 "dataDir": data_dir}}]})
}

/// Reserves an address for each container through the real IPAM code.
fn reserve(net: &NetworkIpam, containers: &[&str]) -> Vec<IpAddr> {
    let mut store = weft_ipam::open_store(&net.config).unwrap();
    containers
        .iter()
        .map(|c| {
            weft_ipam::add(&net.config, &mut store, c, "eth0", &[])
                .unwrap()
                .allocations[0]
                .address
                .addr()
        })
        .collect()
}

fn links(attached: &[&str]) -> LinkSnapshot {
    let aliases: Vec<(String, Option<String>)> = std::iter::once(("weft0".to_string(), None))
        .chain(
            attached
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("veth{i}"), Some(format!("weft/weft/{c}/eth0")))),
        )
        .collect();
    LinkSnapshot::from_links(aliases.iter().map(|(n, a)| (n.as_str(), a.as_deref())))
}

#[test]
fn nodes_lists_published_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut n2 = NodeRecord::new("n2", "198.18.0.12".parse().unwrap());
    n2.subnets = vec!["10.244.2.0/24".parse().unwrap()];
    let n1 = NodeRecord::new("n1", "198.18.0.11".parse().unwrap());
    for n in [&n2, &n1] {
        put(
            store.as_ref(),
            "nodes",
            &n.name,
            serde_json::to_value(n).unwrap(),
        );
    }
    let listed = nodes::load(&store_args(dir.path())).unwrap();
    assert_eq!(
        listed.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["n1", "n2"]
    );
    let text = nodes::render(&listed);
    assert!(text.contains("10.244.2.0/24"), "{text}");
    let e = nodes::load(&StoreArgs::default()).unwrap_err();
    assert!(e.to_string().contains("--store"), "{e}");
}

struct World {
    _tmp: tempfile::TempDir,
    store: std::sync::Arc<dyn Datastore>,
    net: NetworkIpam,
    ips: Vec<IpAddr>,
}

/// c-pod: a pod object has its IP on n1. c-starting: no pod IP yet, veth present.
/// c-gone: nothing. c-elsewhere: a pod object has the IP, but on another node.
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(&tmp.path().join("store"));
    let net = network_ipam(&conflist(&tmp.path().join("ipam"))).unwrap();
    let ips = reserve(&net, &["c-pod", "c-starting", "c-gone", "c-elsewhere"]);
    put(
        store.as_ref(),
        "pods",
        "x/a",
        pod("x", "a", "n1", &ips[0].to_string()),
    );
    put(
        store.as_ref(),
        "pods",
        "x/b",
        pod("x", "b", "n2", &ips[3].to_string()),
    );
    World {
        _tmp: tmp,
        store,
        net,
        ips,
    }
}

fn states(report: &weft_ctl::ops::ipam_cmd::IpamReport) -> Vec<State> {
    report
        .reservations
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| f.state.clone())
        .collect()
}

#[test]
fn ipam_usage_check_and_release() {
    let w = world();
    let usage = inspect(&w.net, None, false).unwrap();
    assert_eq!(usage.ranges[0].used, 4);
    assert_eq!(usage.ranges[0].total, 253);
    assert!(usage.reservations.is_none());

    let snapshot = || Ok(links(&["c-starting"]));
    let runtime = rt();
    let probe = Probe {
        runtime: &runtime,
        datastore: w.store.as_ref(),
        node: "n1",
        links: &snapshot,
        grace: Duration::ZERO,
    };
    let check = inspect(&w.net, Some(&probe), false).unwrap();
    assert_eq!(
        states(&check),
        [State::InUse, State::Attached, State::Leaked, State::Leaked]
    );
    assert_eq!(check.leaked_left(), 2);
    assert!(check.render().contains("2 leaked reservation(s) left"));

    let released = inspect(&w.net, Some(&probe), true).unwrap();
    assert_eq!(released.released.as_deref().unwrap(), &[w.ips[2], w.ips[3]]);
    assert_eq!(released.leaked_left(), 0);
    let after = inspect(&w.net, None, false).unwrap();
    assert_eq!(after.ranges[0].used, 2);
    let json = serde_json::to_value(&released).unwrap();
    assert_eq!(json["reservations"][2]["state"], "leaked");
}

#[test]
fn release_rechecks_under_the_lock() {
    let w = world();
    // The first look sees no veth for c-gone; by the time the lock is held it has one
    // (a pod wired in between): it must be kept.
    let calls = Cell::new(0);
    let snapshot = || {
        calls.set(calls.get() + 1);
        Ok(if calls.get() == 1 {
            links(&["c-starting"])
        } else {
            links(&["c-starting", "c-gone"])
        })
    };
    let runtime = rt();
    let probe = Probe {
        runtime: &runtime,
        datastore: w.store.as_ref(),
        node: "n1",
        links: &snapshot,
        grace: Duration::ZERO,
    };
    let report = inspect(&w.net, Some(&probe), true).unwrap();
    assert_eq!(report.released.as_deref().unwrap(), &[w.ips[3]]);
    assert_eq!(calls.get(), 2);
    assert_eq!(inspect(&w.net, None, false).unwrap().ranges[0].used, 3);
}

#[test]
fn fresh_reservations_and_foreign_namespaces_are_never_released() {
    let w = world();
    let snapshot = || Ok(links(&[]));
    let runtime = rt();
    let patient = Probe {
        runtime: &runtime,
        datastore: w.store.as_ref(),
        node: "n1",
        links: &snapshot,
        grace: Duration::from_secs(3600),
    };
    let report = inspect(&w.net, Some(&patient), true).unwrap();
    assert!(report.released.unwrap().is_empty());
    assert_eq!(
        states(&inspect(&w.net, Some(&patient), false).unwrap())[2],
        State::Recent
    );

    // Not the node's namespace (no weft bridge): refuse instead of calling everything gone.
    let elsewhere = || Ok(LinkSnapshot::from_links([("lo", None)]));
    let blind = Probe {
        links: &elsewhere,
        grace: Duration::ZERO,
        ..patient
    };
    let e = inspect(&w.net, Some(&blind), true).unwrap_err();
    assert!(e.to_string().contains("weft0"), "{e}");

    // An unreadable pod object could hold any address: refuse to judge.
    put(
        w.store.as_ref(),
        "pods",
        "x/broken",
        json!({"metadata": {}}),
    );
    let probe = Probe {
        links: &snapshot,
        grace: Duration::ZERO,
        ..patient
    };
    assert!(inspect(&w.net, Some(&probe), true).is_err());
    assert_eq!(inspect(&w.net, None, false).unwrap().ranges[0].used, 4);
}

#[test]
fn status_reads_weftd_files_and_counts_pods() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, conf, ipam) = (
        tmp.path().join("run"),
        tmp.path().join("net.d"),
        tmp.path().join("ipam"),
    );
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&conf).unwrap();
    let list = conflist(&ipam);
    std::fs::write(conf.join("10-weft.conflist"), list.to_string()).unwrap();
    reserve(&network_ipam(&list).unwrap(), &["p1", "p2", "p3"]);
    let local = NodeLocalConfig {
        node: "n1".into(),
        subnets: vec!["10.244.1.0/24".parse().unwrap()],
        mtu: 1450,
        backend: weft_cluster::Backend::HostGw,
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
    };
    std::fs::write(run.join("node.json"), local.to_json().unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let status = json!({"node": "n1", "pid": 1, "healthy": true, "lastReconcile": now,
        "subnets": ["10.244.1.0/24"], "peers": 1, "underlayIp": "198.18.0.11",
        "backend": {"type": "host-gw"}});
    std::fs::write(run.join("status.json"), status.to_string()).unwrap();
    let args = StatusArgs {
        run_dir: run.clone(),
        cni_conf_dir: conf,
        metrics_address: "none".into(),
        out: OutputArgs {
            output: OutputFormat::Table,
        },
    };
    let s = gather(&args);
    assert_eq!(s.health, Health::Healthy);
    assert_eq!(s.pods, Some(3));
    assert!(s.ok());
    assert!(s.render().contains("host-gw"));
    std::fs::remove_file(run.join("status.json")).unwrap();
    assert_eq!(gather(&args).health, Health::Missing);
}

#[test]
fn policy_trace_against_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    put(
        store.as_ref(),
        "namespaces",
        "x",
        json!({"metadata": {"name": "x"}}),
    );
    put(
        store.as_ref(),
        "pods",
        "x/a",
        pod("x", "a", "n1", "10.244.1.2"),
    );
    put(
        store.as_ref(),
        "pods",
        "x/b",
        pod("x", "b", "n1", "10.244.1.3"),
    );
    put(
        store.as_ref(),
        "networkpolicies",
        "x/only-a",
        json!({
        "metadata": {"name": "only-a", "namespace": "x"},
        "spec": {"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}],
                              "ports": [{"port": 80}]}]}}),
    );
    let args = |from: &str, port: u16| trace::TraceArgs {
        from: from.into(),
        to: "x/b".into(),
        port,
        protocol: weft_policy::Protocol::Tcp,
        store: store_args(tmp.path()),
        out: OutputArgs {
            output: OutputFormat::Json,
        },
    };
    let loaded = rt()
        .block_on(weft_ctl::policy::load_cluster(store.as_ref()))
        .unwrap();
    let (allowed, json, text) = trace::report(&loaded, &args("x/a", 80), true).unwrap();
    assert!(allowed, "{text}");
    assert_eq!(json["allowed"], true);
    assert!(text.contains("only-a"), "{text}");
    let (allowed, _, text) = trace::report(&loaded, &args("x/a", 81), false).unwrap();
    assert!(!allowed, "{text}");
    assert!(trace::run(&args("x/a", 80)).unwrap());
}

#[test]
fn link_snapshot_reads_the_current_namespace() {
    // A read-only netlink dump; every namespace has `lo`.
    let snapshot = weft_ctl::ops::attach::snapshot_current_netns().unwrap();
    assert!(snapshot.names.contains("lo"));
}
