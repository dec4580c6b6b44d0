//! host-local behaviour (digest checklist 46-65) against the disk store in a tempdir.

// Test helpers outside #[test] fns are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashSet;
use std::fs;
use std::net::IpAddr;
use std::path::Path;

use serde_json::{Value, json};
use weft_ipam::{DiskStore, IpamConfig, IpamError, add, check, del, gc, open_store, status, usage};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config(dir: &Path, ipam: Value) -> IpamConfig {
    let mut ipam = ipam;
    ipam["dataDir"] = json!(dir);
    IpamConfig::from_request(&json!({"cniVersion": "1.1.0", "name": "net", "ipam": ipam})).unwrap()
}

fn addr(cfg: &IpamConfig, store: &mut DiskStore, id: &str, ifname: &str) -> IpAddr {
    add(cfg, store, id, ifname, &[]).unwrap().allocations[0]
        .address
        .addr()
}

#[test]
fn first_add_layout_and_round_robin() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        json!({"type": "host-local", "subnet": "10.1.2.0/24"}),
    );
    let mut store = open_store(&cfg).unwrap();
    let r = add(&cfg, &mut store, "ctr1", "eth0", &[]).unwrap();
    assert_eq!(r.allocations[0].address.to_string(), "10.1.2.2/24");
    assert_eq!(r.allocations[0].gateway, Some(ip("10.1.2.1")));
    let dir = tmp.path().join("net");
    assert_eq!(
        fs::read_to_string(dir.join("10.1.2.2")).unwrap(),
        "ctr1\r\neth0"
    );
    assert_eq!(
        fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(),
        "10.1.2.2"
    );
    assert!(dir.join("lock").exists());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".weft-holders")
        .collect();
    names.sort();
    assert_eq!(names, vec!["10.1.2.2", "last_reserved_ip.0", "lock"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir.join("10.1.2.2"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    assert_eq!(addr(&cfg, &mut store, "ctr2", "eth0"), ip("10.1.2.3"));
    del(&mut store, "ctr1", "eth0").unwrap();
    assert_eq!(addr(&cfg, &mut store, "ctr3", "eth0"), ip("10.1.2.4"));
}

#[test]
fn default_data_dir() {
    let cfg =
        IpamConfig::from_request(&json!({"name": "n", "ipam": {"subnet": "10.1.2.0/24"}})).unwrap();
    assert_eq!(cfg.data_dir, Path::new("/var/lib/cni/networks"));
}

#[test]
fn exhausted_range_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        json!({"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.9", "rangeEnd": "10.1.2.9"}),
    );
    let mut store = open_store(&cfg).unwrap();
    addr(&cfg, &mut store, "a", "eth0");
    let snapshot = |d: &Path| {
        let mut v: Vec<(String, String)> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| {
                (
                    e.file_name().into_string().unwrap(),
                    fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = snapshot(store.dir());
    let err = add(&cfg, &mut store, "b", "eth0", &[]).unwrap_err();
    assert!(matches!(err, IpamError::Exhausted { .. }), "{err}");
    assert_eq!(err.cni_code(), 100);
    assert!(err.to_string().contains("10.1.2.9"));
    assert_eq!(snapshot(store.dir()), before);
    let status_err = status(&cfg, &mut store).unwrap_err();
    assert!(
        status_err.to_string().contains("range set 0"),
        "{status_err}"
    );
}

#[test]
fn dual_stack_and_ipv6_slash126() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        json!({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/126"}]]}),
    );
    let mut store = open_store(&cfg).unwrap();
    let r = add(&cfg, &mut store, "a", "eth0", &[]).unwrap();
    let got: Vec<String> = r
        .allocations
        .iter()
        .map(|a| a.address.to_string())
        .collect();
    assert_eq!(got, vec!["10.1.2.2/24", "2001:db8::2/126"]);
    assert_eq!(r.allocations[1].gateway, Some(ip("2001:db8::1")));
    let r2 = add(&cfg, &mut store, "b", "eth0", &[]).unwrap();
    assert_eq!(r2.allocations[1].address.to_string(), "2001:db8::3/126");
    assert!(store.dir().join("2001:db8::3").exists());
    assert!(store.dir().join("last_reserved_ip.1").exists());
    let err = add(&cfg, &mut store, "c", "eth0", &[]).unwrap_err();
    assert!(
        matches!(err, IpamError::Exhausted { set_index: 1, .. }),
        "{err}"
    );
    // The v4 address taken for "c" before set 1 failed was rolled back.
    assert!(!store.dir().join("10.1.2.4").exists());
}

#[test]
fn ipv4_never_network_broadcast_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), json!({"subnet": "10.1.2.0/24"}));
    let mut store = open_store(&cfg).unwrap();
    let mut seen = HashSet::new();
    for i in 0..253 {
        assert!(seen.insert(addr(&cfg, &mut store, &format!("c{i}"), "eth0")));
    }
    for bad in ["10.1.2.0", "10.1.2.1", "10.1.2.255"] {
        assert!(!seen.contains(&ip(bad)));
    }
    assert!(add(&cfg, &mut store, "full", "eth0", &[]).is_err());
    let u = usage(&cfg, &mut store).unwrap();
    assert_eq!((u[0].total, u[0].used), (253, 253));
}

#[test]
fn requested_ips() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), json!({"subnet": "10.1.2.0/24"}));
    let mut store = open_store(&cfg).unwrap();
    let r = add(&cfg, &mut store, "a", "eth0", &[ip("10.1.2.50")]).unwrap();
    assert_eq!(r.allocations[0].address.to_string(), "10.1.2.50/24");
    for bad in ["10.1.2.1", "10.1.2.50", "10.9.0.1"] {
        let err = add(&cfg, &mut store, "b", "eth0", &[ip(bad)]).unwrap_err();
        assert_eq!(err.cni_code(), 109, "{bad}: {err}");
    }
    assert!(check(&mut store, "b", "eth0").is_err());
    // args.cni.ips / runtimeConfig.ips are merged by requested_ips and behave the same.
    let req = weft_ipam::requested_ips(&json!({"runtimeConfig": {"ips": ["10.1.2.60/24"]}}), None)
        .unwrap();
    let r = add(&cfg, &mut store, "c", "eth0", &req).unwrap();
    assert_eq!(r.allocations[0].address.addr(), ip("10.1.2.60"));
}

#[test]
fn runtime_ip_ranges_come_first() {
    let tmp = tempfile::tempdir().unwrap();
    let request = json!({"name": "net",
        "runtimeConfig": {"ipRanges": [[{"subnet": "10.7.0.0/24"}]]},
        "ipam": {"dataDir": tmp.path(), "ranges": [[{"subnet": "10.1.2.0/24"}]]}});
    let cfg = IpamConfig::from_request(&request).unwrap();
    let mut store = open_store(&cfg).unwrap();
    let r = add(&cfg, &mut store, "a", "eth0", &[]).unwrap();
    let got: Vec<String> = r
        .allocations
        .iter()
        .map(|a| a.address.to_string())
        .collect();
    assert_eq!(got, vec!["10.7.0.2/24", "10.1.2.2/24"]);
}

#[test]
fn del_is_per_interface_and_handles_legacy() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), json!({"subnet": "10.1.2.0/24"}));
    let mut store = open_store(&cfg).unwrap();
    let a0 = addr(&cfg, &mut store, "a", "eth0");
    let a1 = addr(&cfg, &mut store, "a", "eth1");
    assert_ne!(a0, a1);
    assert_eq!(del(&mut store, "a", "eth0").unwrap(), vec![a0]);
    assert_eq!(check(&mut store, "a", "eth1").unwrap(), vec![a1]);
    assert!(check(&mut store, "a", "eth0").is_err());
    // Nothing left for eth0 and no legacy record: success, nothing removed.
    assert_eq!(del(&mut store, "a", "eth0").unwrap(), Vec::<IpAddr>::new());

    fs::write(store.dir().join("10.1.2.77"), "old").unwrap();
    assert_eq!(
        check(&mut store, "old", "eth0").unwrap(),
        vec![ip("10.1.2.77")]
    );
    assert_eq!(
        del(&mut store, "old", "eth0").unwrap(),
        vec![ip("10.1.2.77")]
    );
    assert!(!store.dir().join("10.1.2.77").exists());
}

#[test]
fn check_fails_after_file_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), json!({"subnet": "10.1.2.0/24"}));
    let mut store = open_store(&cfg).unwrap();
    let a = addr(&cfg, &mut store, "a", "eth0");
    assert_eq!(check(&mut store, "a", "eth0").unwrap(), vec![a]);
    fs::remove_file(store.dir().join(a.to_string())).unwrap();
    let err = check(&mut store, "a", "eth0").unwrap_err();
    assert_eq!(err.cni_code(), 3);
}

#[test]
fn resolv_conf_and_routes_in_result() {
    let tmp = tempfile::tempdir().unwrap();
    let resolv = tmp.path().join("resolv.conf");
    fs::write(
        &resolv,
        "nameserver 10.0.0.10\ndomain cluster.local\nsearch a b\noptions ndots:5\n",
    )
    .unwrap();
    let cfg = config(
        tmp.path(),
        json!({"subnet": "10.1.2.0/24", "resolvConf": resolv,
               "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.2.254"}]}),
    );
    let mut store = open_store(&cfg).unwrap();
    let r = add(&cfg, &mut store, "a", "eth0", &[]).unwrap();
    let dns = serde_json::to_value(r.dns.unwrap()).unwrap();
    assert_eq!(
        dns,
        json!({"nameservers": ["10.0.0.10"], "domain": "cluster.local",
               "search": ["a", "b"], "options": ["ndots:5"]})
    );
    assert_eq!(
        serde_json::to_value(&r.routes).unwrap(),
        json!([{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.2.254"}])
    );
}

#[test]
fn gc_keeps_valid_and_removes_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), json!({"subnet": "10.1.2.0/24"}));
    let mut store = open_store(&cfg).unwrap();
    let keep = addr(&cfg, &mut store, "keep", "eth0");
    let gone = addr(&cfg, &mut store, "gone", "eth0");
    let dir = store.dir().to_path_buf();
    fs::write(dir.join("10.1.2.90"), "keep").unwrap(); // legacy record of a valid container
    fs::write(dir.join("10.1.2.91"), "dead").unwrap(); // legacy record of a dead one
    fs::write(dir.join("10.1.2.92"), "").unwrap(); // host-local crash leftover
    fs::write(dir.join(".weft-tmp.1.2.3"), "x\r\neth0").unwrap();
    fs::write(dir.join("unrelated"), "x").unwrap();
    let valid: HashSet<(String, String)> = [("keep".to_string(), "eth0".to_string())].into();
    let report = gc(&mut store, &valid);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let mut removed = report.removed.clone();
    removed.sort();
    assert_eq!(removed, vec![gone, ip("10.1.2.91"), ip("10.1.2.92")]);
    assert_eq!(report.debris, vec![".weft-tmp.1.2.3"]);
    assert!(dir.join(keep.to_string()).exists());
    assert!(dir.join("10.1.2.90").exists());
    for kept in ["lock", "last_reserved_ip.0", "unrelated"] {
        assert!(dir.join(kept).exists(), "{kept}");
    }
}

#[test]
fn status_and_invalid_names() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), json!({"subnet": "10.1.2.0/24"}));
    let mut store = open_store(&cfg).unwrap();
    status(&cfg, &mut store).unwrap();
    assert!(DiskStore::open(tmp.path(), "..").is_err());
    assert!(DiskStore::open(tmp.path(), "a/b").is_err());
    assert_eq!(
        add(&cfg, &mut store, "../../etc", "eth0", &[])
            .unwrap_err()
            .cni_code(),
        4
    );
}

#[test]
fn missing_ipam_or_empty_ranges() {
    for request in [
        json!({"name": "n"}),
        json!({"name": "n", "ipam": {"type": "host-local", "ranges": []}}),
    ] {
        assert_eq!(
            IpamConfig::from_request(&request).unwrap_err().cni_code(),
            7
        );
    }
}

#[test]
fn reserved_at_reports_when_an_address_was_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), json!({"subnet": "10.1.2.0/24"}));
    let mut store = open_store(&cfg).unwrap();
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(2);
    let a = addr(&cfg, &mut store, "c1", "eth0");
    assert!(store.reserved_at(a).unwrap().unwrap() >= before);
    assert_eq!(store.reserved_at(ip("10.1.2.200")).unwrap(), None);
}
