//! Shared helpers for the privileged integration tests.
// Test-only helpers: clippy treats non-#[test] functions as production code.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

use weft_datapath::{Netlink, NetnsFd};
use weft_testns::TestNs;

/// A throwaway namespace with an open descriptor and a netlink socket inside it.
pub struct Ns {
    pub fd: NetnsFd,
    pub nl: Netlink,
    pub ns: TestNs,
}

pub fn ns(tag: &str) -> Ns {
    let ns = TestNs::new(tag).unwrap_or_else(|e| {
        panic!("cannot create a test network namespace (need root + netns support): {e}")
    });
    let fd = NetnsFd::open(ns.path()).unwrap();
    let nl = Netlink::open_in(&fd).unwrap();
    Ns { fd, nl, ns }
}

pub fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Drops the namespaces and checks `ip netns` no longer lists them.
pub fn close(all: Vec<Ns>) {
    let names: Vec<String> = all.iter().map(|n| n.ns.name().to_string()).collect();
    drop(all);
    let list = netns_list();
    for name in names {
        assert!(!list.contains(&name), "{name} still listed:\n{list}");
    }
}

pub fn run_ok(ns: &TestNs, args: &[&str]) {
    let out = ns
        .exec(Command::new(args[0]).args(&args[1..]))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

/// Polls `cond` every 20 ms for up to 3 s.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
