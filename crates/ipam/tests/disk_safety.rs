//! Crash safety, concurrency and scale of the disk store.

// Test helpers outside #[test] fns are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use weft_ipam::{Holder, IpamConfig, Store, add, del, gc, open_store, with_lock};

const CHILD_ENV: &str = "WEFT_IPAM_CRASH_CHILD_DIR";

fn config(dir: &Path, subnet: &str) -> IpamConfig {
    IpamConfig::from_request(&json!({"name": "net",
        "ipam": {"subnet": subnet, "dataDir": dir}}))
    .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".weft-holders")
        .collect();
    v.sort();
    v
}

#[test]
fn concurrent_adds_get_unique_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = Arc::new(config(tmp.path(), "10.1.2.0/24"));
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let cfg = Arc::clone(&cfg);
            std::thread::spawn(move || {
                // Each "plugin process" opens its own store, so its own lock descriptor.
                let mut store = open_store(&cfg).unwrap();
                add(&cfg, &mut store, &format!("ctr{i}"), "eth0", &[])
                    .unwrap()
                    .allocations[0]
                    .address
                    .addr()
            })
        })
        .collect();
    let got: HashSet<IpAddr> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got.len(), 32);
    let files = names(&tmp.path().join("net"));
    assert_eq!(files.len(), 32 + 2, "{files:?}");
}

#[test]
fn temp_file_without_link_is_harmless_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "10.1.2.0/24");
    let mut store = open_store(&cfg).unwrap();
    let dir = store.dir().to_path_buf();
    // SIGKILL after writing the temp file, before hard_link.
    fs::write(dir.join(".weft-tmp.4242.0.1"), "victim\r\neth0").unwrap();
    let other = add(&cfg, &mut store, "other", "eth0", &[]).unwrap();
    assert_eq!(other.allocations[0].address.addr(), ip("10.1.2.2"));
    // The runtime's DEL for the killed ADD finds nothing and succeeds; debris is gone.
    assert!(del(&mut store, "victim", "eth0").unwrap().is_empty());
    assert_eq!(names(&dir), vec!["10.1.2.2", "last_reserved_ip.0", "lock"]);
}

#[test]
fn link_without_temp_removal_is_freed_by_del() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "10.1.2.0/24");
    let mut store = open_store(&cfg).unwrap();
    let dir = store.dir().to_path_buf();
    // SIGKILL after hard_link, before the temp name was removed (and before
    // last_reserved_ip was written).
    let temp = dir.join(".weft-tmp.4242.0.2");
    fs::write(&temp, "victim\r\neth0").unwrap();
    fs::hard_link(&temp, dir.join("10.1.2.2")).unwrap();
    let other = add(&cfg, &mut store, "other", "eth0", &[]).unwrap();
    assert_eq!(
        other.allocations[0].address.addr(),
        ip("10.1.2.3"),
        "no double allocation"
    );
    assert_eq!(
        del(&mut store, "victim", "eth0").unwrap(),
        vec![ip("10.1.2.2")]
    );
    assert_eq!(names(&dir), vec!["10.1.2.3", "last_reserved_ip.0", "lock"]);
}

#[test]
fn host_local_leftovers_never_cause_double_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "10.1.2.0/28");
    let mut store = open_store(&cfg).unwrap();
    let dir = store.dir().to_path_buf();
    // host-local killed between O_EXCL create and write; and a torn last_reserved file.
    fs::write(dir.join("10.1.2.2"), "").unwrap();
    fs::write(dir.join("last_reserved_ip.0"), "").unwrap();
    let a = add(&cfg, &mut store, "a", "eth0", &[]).unwrap();
    assert_eq!(a.allocations[0].address.addr(), ip("10.1.2.3"));
    let report = gc(&mut store, &[("a".to_string(), "eth0".to_string())].into());
    assert_eq!(report.removed, vec![ip("10.1.2.2")]);
}

#[test]
fn stale_holder_index_entry_is_ignored_and_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "10.1.2.0/24");
    let mut store = open_store(&cfg).unwrap();
    let dir = store.dir().to_path_buf();
    // Make the directory indexed, then simulate SIGKILL after the index entry for
    // (victim, eth0) was written but before 10.1.2.9 was linked.
    add(&cfg, &mut store, "first", "eth0", &[]).unwrap();
    let index_file = dir.join(".weft-holders/.weft-holder.76696374696d.65746830");
    fs::write(&index_file, "10.1.2.9\n").unwrap();
    // The victim's retried ADD must not believe it holds 10.1.2.9.
    let r = add(&cfg, &mut store, "victim", "eth0", &[]).unwrap();
    assert_eq!(r.allocations[0].address.addr(), ip("10.1.2.3"));
    // Someone else can still get 10.1.2.9.
    let other = add(&cfg, &mut store, "other", "eth0", &[ip("10.1.2.9")]).unwrap();
    assert_eq!(other.allocations[0].address.addr(), ip("10.1.2.9"));
    assert_eq!(
        del(&mut store, "victim", "eth0").unwrap(),
        vec![ip("10.1.2.3")]
    );
    // The index still names 10.1.2.9 for the victim: harmless, and GC prunes it.
    let valid: HashSet<(String, String)> = [("first", "eth0"), ("other", "eth0")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let report = gc(&mut store, &valid);
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(!index_file.exists());
    assert_eq!(add(&cfg, &mut store, "other", "eth0", &[]).unwrap(), other);
}

#[test]
fn host_local_data_is_indexed_and_repeated_add_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "10.1.2.0/24");
    let dir = tmp.path().join("net");
    fs::create_dir_all(&dir).unwrap();
    // A directory written by host-local: no holder index yet.
    fs::write(dir.join("10.1.2.40"), "old\r\neth0").unwrap();
    fs::write(dir.join("last_reserved_ip.0"), "10.1.2.40").unwrap();
    let mut store = open_store(&cfg).unwrap();
    let r = add(&cfg, &mut store, "old", "eth0", &[]).unwrap();
    assert_eq!(r.allocations[0].address.addr(), ip("10.1.2.40"));
    assert_eq!(
        add(&cfg, &mut store, "new", "eth0", &[])
            .unwrap()
            .allocations[0]
            .address
            .addr(),
        ip("10.1.2.41")
    );
}

/// Not a test on its own: the body of the child process of `sigkill_at_any_time_*`.
/// Without the environment variable it returns at once.
#[test]
fn crash_child_worker() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cfg = config(Path::new(&dir), "10.1.0.0/16");
    let mut store = open_store(&cfg).unwrap();
    for i in 0u64.. {
        add(&cfg, &mut store, &format!("c{i}"), "eth0", &[]).unwrap();
        if i > 0 {
            del(&mut store, &format!("c{}", i - 1), "eth0").unwrap();
        }
    }
}

#[test]
fn sigkill_at_any_time_leaves_only_freeable_state() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "10.1.0.0/16");
    let exe = std::env::current_exe().unwrap();
    for round in 0..20u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_worker",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(60 + (round * 37) % 300));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let mut store = open_store(&cfg).unwrap();
        let held = with_lock(&mut store, |s| Ok(s.reservations()?)).unwrap();
        assert!(held.len() <= 2, "round {round}: {held:?}");
        for r in &held {
            // Every address file is complete, so the runtime's DEL can find it.
            let Holder::Attachment { id, ifname } = &r.holder else {
                panic!("round {round}: incomplete record {r:?}");
            };
            assert_eq!(del(&mut store, id, ifname).unwrap(), vec![r.ip]);
        }
        let report = gc(&mut store, &HashSet::new());
        assert!(
            report.removed.is_empty() && report.errors.is_empty(),
            "{report:?}"
        );
        let left: Vec<String> = names(store.dir())
            .into_iter()
            .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip."))
            .collect();
        assert!(left.is_empty(), "round {round}: {left:?}");
        let index_left = names(&store.dir().join(".weft-holders"));
        assert_eq!(index_left, vec![".weft-holder-index-v1"], "round {round}");
    }
    // The children did real work before being killed.
    let last = fs::read_to_string(tmp.path().join("net/last_reserved_ip.0")).unwrap();
    println!("SIGKILL rounds done; last reserved address {last}");
}

#[test]
fn nearly_full_slash16_allocates_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "10.20.0.0/16");
    let mut store = open_store(&cfg).unwrap();
    let dir = store.dir().to_path_buf();
    // 10.20.0.2 ..= 10.20.253.233 : 65,000 addresses, written directly for speed.
    let base = u32::from(Ipv4Addr::new(10, 20, 0, 2));
    for i in 0..65_000u32 {
        let addr = Ipv4Addr::from(base + i);
        fs::write(dir.join(addr.to_string()), format!("fill{i}\r\neth0")).unwrap();
    }
    let last = Ipv4Addr::from(base + 64_999).to_string();
    fs::write(dir.join("last_reserved_ip.0"), last).unwrap();
    // Mark the directory as indexed: the fill attachments never ADD again, and the
    // one-time indexing of host-local data is measured by `examples/alloc_bench.rs`.
    fs::write(dir.join(".weft-holders/.weft-holder-index-v1"), "").unwrap();

    // The first ADD's fsync may also commit the 65,000 fresh files to the journal; that
    // is set-up cost, so it is reported separately.
    let start = Instant::now();
    let a = add(&cfg, &mut store, "new1", "eth0", &[]).unwrap();
    let first = start.elapsed();
    assert_eq!(a.allocations[0].address.addr(), ip("10.20.253.234"));
    let start = Instant::now();
    let b = add(&cfg, &mut store, "new2", "eth0", &[]).unwrap();
    let second = start.elapsed();
    assert_eq!(b.allocations[0].address.addr(), ip("10.20.253.235"));
    // Start from the beginning of the set so the whole taken set is walked.
    fs::remove_file(dir.join("last_reserved_ip.0")).unwrap();
    let start = Instant::now();
    let c = add(&cfg, &mut store, "new3", "eth0", &[]).unwrap();
    let from_start = start.elapsed();
    assert_eq!(c.allocations[0].address.addr(), ip("10.20.253.236"));
    let start = Instant::now();
    assert_eq!(add(&cfg, &mut store, "new3", "eth0", &[]).unwrap(), c);
    let repeated = start.elapsed();
    println!(
        "nearly full /16 (65,000 used), debug build: first ADD {first:?}, next ADD {second:?}, \
         ADD walking from the set start {from_start:?}, repeated ADD {repeated:?}"
    );
}
