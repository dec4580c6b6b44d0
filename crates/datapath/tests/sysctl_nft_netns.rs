//! Privileged: NetnsFd validation, run_in_netns, sysctls and nft inside a namespace.

mod common;

use weft_datapath::nft::{apply_nft, nft_list_json};
use weft_datapath::sysctl::{read_sysctl, write_sysctl};
use weft_datapath::{DatapathError, NetnsFd, run_in_netns};

#[test]
fn netns_fd_rejects_non_network_namespaces() {
    let dir = std::env::temp_dir().join(format!("weft-dp-notns-{}", std::process::id()));
    std::fs::write(&dir, b"x").unwrap();
    let err = NetnsFd::open(&dir).unwrap_err();
    std::fs::remove_file(&dir).unwrap();
    assert!(matches!(err, DatapathError::NotNetns { .. }), "{err}");
    let err = NetnsFd::open("/proc/self/ns/uts").unwrap_err();
    assert!(matches!(err, DatapathError::NotNetns { .. }), "{err}");
    assert!(NetnsFd::open("/nonexistent/netns").is_err());
    assert!(NetnsFd::current().is_ok());
}

#[test]
fn run_in_netns_keeps_caller_thread() {
    let n = common::ns("runin");
    let before = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let inside = run_in_netns(&n.fd, || {
        std::fs::read_link("/proc/thread-self/ns/net").unwrap()
    })
    .unwrap();
    assert_ne!(inside, before);
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        before
    );
    let again = NetnsFd::open(n.ns.path()).unwrap();
    assert!(again.same_as(&n.fd).unwrap());
    assert!(!again.same_as(&NetnsFd::current().unwrap()).unwrap());
    common::close(vec![n]);
}

#[test]
fn sysctl_inside_namespace() {
    let n = common::ns("sysctl");
    let root_before = read_sysctl(None, "net/ipv4/conf/lo/arp_notify").unwrap();
    let key = "net/ipv4/conf/lo/arp_notify";
    let flipped = if root_before == "1" { "0" } else { "1" };
    write_sysctl(Some(&n.fd), key, flipped).unwrap();
    assert_eq!(read_sysctl(Some(&n.fd), key).unwrap(), flipped);
    write_sysctl(Some(&n.fd), "net/ipv4/ip_forward", "1").unwrap();
    assert_eq!(
        read_sysctl(Some(&n.fd), "net/ipv4/ip_forward").unwrap(),
        "1"
    );
    assert_eq!(
        read_sysctl(None, key).unwrap(),
        root_before,
        "root ns untouched"
    );
    for bad in [
        "net/../kernel/hostname",
        "kernel/hostname",
        "net/ipv4/../../kernel/x",
    ] {
        let err = write_sysctl(Some(&n.fd), bad, "1").unwrap_err();
        assert!(matches!(err, DatapathError::Sysctl { .. }), "{bad}: {err}");
    }
    assert!(read_sysctl(Some(&n.fd), "net/ipv4/no_such_key").is_err());
    common::close(vec![n]);
}

#[test]
fn nft_apply_is_atomic_and_scoped_to_namespace() {
    let n = common::ns("nft");
    let good = "table inet weft_t {\n\
        set weft_pods { type ipv4_addr; elements = { 10.99.0.2 } }\n\
        chain weft_fwd { type filter hook forward priority 0; ip saddr @weft_pods accept; }\n\
        }\n";
    apply_nft(good, Some(&n.fd)).unwrap();
    let listed = nft_list_json(&["list", "set", "inet", "weft_t", "weft_pods"], Some(&n.fd))
        .unwrap()
        .to_string();
    assert!(listed.contains("10.99.0.2"), "{listed}");

    // One batch: a valid element add plus a rule jumping to a missing chain.
    let bad = "add element inet weft_t weft_pods { 10.99.0.3 }\n\
        add rule inet weft_t weft_fwd jump weft_missing\n";
    let err = apply_nft(bad, Some(&n.fd)).unwrap_err();
    match &err {
        DatapathError::Nft { stderr } => assert!(!stderr.is_empty()),
        other => panic!("unexpected {other}"),
    }
    let after = nft_list_json(&["list", "ruleset"], Some(&n.fd))
        .unwrap()
        .to_string();
    assert!(
        after.contains("10.99.0.2") && !after.contains("10.99.0.3"),
        "{after}"
    );
    assert!(after.contains("weft_fwd"));

    let root = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&root.stdout).contains("weft_t"));
    common::close(vec![n]);
}
