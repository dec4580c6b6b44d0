//! Privileged: creates real namespaces (fails with a clear message when not root).

use std::process::Command;

use weft_testns::TestNs;

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn own_ns_inode() -> std::path::PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").unwrap()
}

#[test]
fn namespace_is_visible_isolated_and_removed_on_drop() {
    let before = own_ns_inode();
    let ns = TestNs::new("basic").unwrap();
    assert!(
        ns.name()
            .starts_with(&format!("weft-t-{}-basic-", std::process::id()))
    );
    assert!(netns_list().contains(ns.name()));
    assert_eq!(
        own_ns_inode(),
        before,
        "the test thread must not change netns"
    );

    let inside = ns.run(own_ns_inode);
    assert_ne!(inside, before);

    let out = ns
        .exec(Command::new("ip").args(["-o", "link", "show", "lo"]))
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("UP"), "lo not up: {text}");
    let out = ns.exec(Command::new("ip").args(["-o", "link"])).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    let path = ns.path().to_path_buf();
    drop(ns);
    assert!(!path.exists());
}

#[test]
fn drop_runs_on_panic_unwind() {
    let mut path = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ns = TestNs::new("panic").unwrap();
        path = Some(ns.path().to_path_buf());
        ns.run(|| panic!("boom inside the namespace"));
    }));
    assert!(result.is_err());
    assert!(!path.unwrap().exists());
}

#[test]
fn stale_namespace_of_dead_pid_is_swept() {
    // pid_max is far below this, so no live process owns it.
    let stale = std::path::Path::new("/run/netns/weft-t-4194999-stale-0");
    std::fs::create_dir_all("/run/netns").unwrap();
    std::fs::write(stale, b"").unwrap();
    let _ns = TestNs::new("sweeper").unwrap();
    assert!(!stale.exists());
}
