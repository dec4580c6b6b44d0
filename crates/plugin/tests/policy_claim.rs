//! The policy claim (policy contract, "the claim socket"): with `policySocket` set, ADD of a
//! Kubernetes pod tells a (fake) weftd the pod's addresses after IPAM and before any
//! interface exists, and fails with code 11, undone, when weftd does not say yes in time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers fail loudly

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use weft_runtime::Attachment;
use weft_testns::TestNs;

/// What the fake weftd saw when a claim arrived.
struct Seen {
    claim: Value,
    pod_had_eth0: bool,
    node_veths: usize,
}

/// A fake weftd: answers `claims` connections with `answer`, looking at the namespaces at
/// the moment each claim arrives.
fn fake_weftd(
    listener: &UnixListener,
    claims: usize,
    answer: &str,
    pod: &TestNs,
    node: &Node,
) -> Vec<Seen> {
    let mut seen = Vec::new();
    for _ in 0..claims {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read claim");
        assert!(
            line.ends_with('\n'),
            "claim not newline-terminated: {line:?}"
        );
        seen.push(Seen {
            claim: serde_json::from_str(&line).expect("claim JSON"),
            pod_had_eth0: has_link(pod, "eth0"),
            node_veths: node.host_veths().len(),
        });
        let mut stream = reader.into_inner();
        stream.write_all(answer.as_bytes()).expect("answer");
        stream.write_all(b"\n").expect("answer newline");
    }
    seen
}

fn claim_list(node: &Node, name: &str, socket: &Path, timeout_ms: u64) -> Value {
    weft_list(
        "1.0.0",
        name,
        &node.data_dir(),
        dual_ranges(),
        json!({"isGateway": true, "policySocket": socket, "policyTimeoutMs": timeout_ms}),
    )
}

fn socket_path(node: &Node) -> PathBuf {
    node.scratch.path().join("policy.sock")
}

/// Nobody connected to `listener` (it must be non-blocking).
fn no_claim_arrived(listener: &UnixListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn claim_arrives_before_any_interface_and_repeats_on_a_repeated_add() {
    let node = Node::new("pclaim");
    let sock = socket_path(&node);
    let listener = UnixListener::bind(&sock).unwrap();
    let list = claim_list(&node, "pclaim", &sock, 10_000);
    let pod = netns("pclaim1");
    let att = pod_att("pclaim1", &pod);

    let (res, seen) = std::thread::scope(|s| {
        let weftd = s.spawn(|| fake_weftd(&listener, 2, r#"{"ok":true}"#, &pod, &node));
        let res = node.rt.add(&list, &att).expect("ADD");
        // ADD again: weftd treats every claim as authoritative, so it is sent again.
        let again = success(&node.call("weft", "ADD", Some(&att), &request(&list, &att, None)));
        assert_eq!(again["ips"], res["ips"]);
        (res, weftd.join().unwrap())
    });
    assert_eq!(seen.len(), 2);
    assert!(!seen[0].pod_had_eth0, "eth0 existed when the claim arrived");
    assert_eq!(seen[0].node_veths, 0, "a host veth existed at claim time");
    assert!(seen[1].pod_had_eth0, "second ADD of a wired pod");
    let want = json!({
        "op": "claim",
        "namespace": "default",
        "name": "pclaim1",
        "containerId": "pclaim1",
        "ips": [ip_of(&res, 0), ip_of(&res, 1)],
    });
    assert_eq!(seen[0].claim, want);
    assert_eq!(seen[1].claim, want);

    // No claim on CHECK or DEL: with nobody answering they would time out, and the
    // listener would have a pending connection.
    node.rt.check(&list, &att).expect("CHECK");
    node.rt.del(&list, &att).expect("DEL");
    assert!(no_claim_arrived(&listener));
    assert!(node.reservations("pclaim").is_empty());
}

/// ADD fails with code 11 naming weftd and the socket, and leaves nothing behind.
fn assert_refused_cleanly(
    node: &Node,
    list: &Value,
    att: &Attachment,
    pod: &TestNs,
    sock: &Path,
) -> String {
    let out = node.call("weft", "ADD", Some(att), &request(list, att, None));
    let (code, msg) = failure(&out);
    assert_eq!(code, 11, "{msg}");
    assert!(msg.contains("weftd"), "{msg}");
    assert!(msg.contains(&sock.display().to_string()), "{msg}");
    assert!(
        !has_link(pod, "eth0"),
        "pod interface created despite the failed claim"
    );
    assert!(node.host_veths().is_empty(), "{:?}", node.host_veths());
    let network = list["name"].as_str().unwrap();
    assert_eq!(node.reservations(network), vec![], "reservation kept");
    msg
}

#[test]
fn refused_claim_fails_with_code_11_and_frees_the_addresses() {
    let node = Node::new("prefuse");
    let sock = socket_path(&node);
    let listener = UnixListener::bind(&sock).unwrap();
    let list = claim_list(&node, "prefuse", &sock, 10_000);
    let pod = netns("prefuse1");
    let att = pod_att("prefuse1", &pod);
    std::thread::scope(|s| {
        let weftd = s.spawn(|| {
            fake_weftd(
                &listener,
                1,
                r#"{"ok":false,"error":"ruleset not applied"}"#,
                &pod,
                &node,
            )
        });
        let msg = assert_refused_cleanly(&node, &list, &att, &pod, &sock);
        assert!(msg.contains("ruleset not applied"), "{msg}");
        assert_eq!(weftd.join().unwrap().len(), 1);
    });
}

#[test]
fn no_listener_fails_with_code_11() {
    let node = Node::new("pnolis");
    let pod = netns("pnolis1");
    let att = pod_att("pnolis1", &pod);
    // Nothing at the path at all, then a socket file whose listener is gone.
    let missing = socket_path(&node);
    let list = claim_list(&node, "pnolis", &missing, 10_000);
    assert_refused_cleanly(&node, &list, &att, &pod, &missing);
    drop(UnixListener::bind(&missing).unwrap());
    assert!(missing.exists());
    assert_refused_cleanly(&node, &list, &att, &pod, &missing);
}

#[test]
fn silent_weftd_times_out_with_code_11() {
    let node = Node::new("ptmo");
    let sock = socket_path(&node);
    // Bound but never accepting: connect and send succeed, the answer never comes.
    let _listener = UnixListener::bind(&sock).unwrap();
    let list = claim_list(&node, "ptmo", &sock, 300);
    let pod = netns("ptmo1");
    let att = pod_att("ptmo1", &pod);
    let start = std::time::Instant::now();
    assert_refused_cleanly(&node, &list, &att, &pod, &sock);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn no_kubernetes_args_means_no_claim() {
    let node = Node::new("pnok8s");
    let sock = socket_path(&node);
    let listener = UnixListener::bind(&sock).unwrap();
    // Had a claim been sent, nobody would answer and ADD would fail after 300 ms.
    let list = claim_list(&node, "pnok8s", &sock, 300);
    let pod = netns("pnok8s1");
    let att = Attachment {
        container_id: "pnok8s1".into(),
        netns: pod.path().to_string_lossy().into_owned(),
        ifname: "eth0".into(),
        ..Attachment::default()
    };
    node.rt.add(&list, &att).expect("ADD without K8S args");
    assert!(no_claim_arrived(&listener));
    node.rt.del(&list, &att).expect("DEL");
}
