//! NetworkPolicy in motion on a real lab: no window at pod start (a selected pod's very
//! first packets are already filtered, a non-selected one is reachable as soon as `apply`
//! returns), and rule updates while traffic flows (established connections survive an
//! unrelated change; new connections follow label changes and policy deletion/creation).
//!
//! Needs root and the `weftd`, `weft`, `weft-ipam` binaries next to `weftctl`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::{Lab, SERIAL};
use weft_ctl::lab::agents::NodeDirs;
use weft_ctl::lab::probe::{connect_in, probe_with_timeout};
use weft_ctl::lab::state::{PodState, Proto};
use weft_datapath::{NetnsFd, named_netns_path, run_in_netns};

const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: w, labels: {team: w}}
---
apiVersion: v1
kind: Pod
metadata: {name: client1, namespace: w, labels: {role: client}}
spec: {nodeName: node1, containers: [{name: c, ports: [{containerPort: 80}, {containerPort: 80, protocol: UDP}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client2, namespace: w, labels: {role: client}}
spec: {nodeName: node2, containers: [{name: c, ports: [{containerPort: 80}, {containerPort: 80, protocol: UDP}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: w, labels: {app: server}}
spec: {nodeName: node2, containers: [{name: c, ports: [{containerPort: 80}, {containerPort: 80, protocol: UDP}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: locked-deny-all, namespace: w}
spec: {podSelector: {matchLabels: {locked: "yes"}}, policyTypes: [Ingress, Egress]}
"#;

const LOCKED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: locked, namespace: w, labels: {locked: "yes"}}
spec: {nodeName: node2, containers: [{name: c, ports: [{containerPort: 80}, {containerPort: 80, protocol: UDP}]}]}
"#;

const OPEN: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: open, namespace: w, labels: {app: open}}
spec: {nodeName: node1, containers: [{name: c, ports: [{containerPort: 80}, {containerPort: 80, protocol: UDP}]}]}
"#;

const UNRELATED: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: unrelated, namespace: w}
spec:
  podSelector: {matchLabels: {app: open}}
  ingress: [{from: [{podSelector: {matchLabels: {role: nobody}}}]}]
"#;

const TRUSTED_ONLY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: trusted-only, namespace: w}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{podSelector: {matchLabels: {trusted: "yes"}}}], ports: [{port: 80}]}]
"#;

fn client1(labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: client1, namespace: w, labels: {labels}}}\nspec: {{nodeName: node1, containers: [{{name: c, ports: [{{containerPort: 80}}, {{containerPort: 80, protocol: UDP}}]}}]}}\n"
    )
}

fn pod(lab: &Lab, name: &str) -> PodState {
    lab.state().pod("w", name).unwrap().clone()
}

fn ns_of(p: &PodState) -> NetnsFd {
    NetnsFd::open(named_netns_path(&p.netns)).unwrap()
}

fn v4(p: &PodState) -> IpAddr {
    *p.ips.iter().find(|ip| ip.is_ipv4()).unwrap()
}

/// The address weft-ipam hands out next on `node` (round robin after the last one).
fn next_ip(lab: &Lab, node: &str) -> IpAddr {
    let ipam = NodeDirs::of(&lab.paths(), node).ipam;
    for network in std::fs::read_dir(&ipam).unwrap() {
        let file = network.unwrap().path().join("last_reserved_ip.0");
        if let Ok(text) = std::fs::read_to_string(&file) {
            let last: std::net::Ipv4Addr = text.trim().parse().unwrap();
            return IpAddr::V4((u32::from(last) + 1).into());
        }
    }
    panic!("no last_reserved_ip.0 under {}", ipam.display());
}

/// One attempt to reach `target` from `ns`: true if anything answered (a connection, a
/// reset, a UDP reply), i.e. the packet was not dropped.
fn answered(ns: &NetnsFd, target: SocketAddr, proto: Proto) -> bool {
    let timeout = Duration::from_millis(150);
    run_in_netns(ns, || match proto {
        Proto::Tcp => match TcpStream::connect_timeout(&target, timeout) {
            Ok(_) => true,
            Err(e) => e.kind() == ErrorKind::ConnectionRefused,
        },
        Proto::Udp => {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(timeout)).unwrap();
            let _ = s.send_to(b"x", target);
            let mut buf = [0u8; 512];
            matches!(s.recv_from(&mut buf), Ok((_, from)) if from == target)
        }
    })
    .unwrap()
}

fn allowed(from: &PodState, to: &PodState, proto: Proto, timeout: Duration) -> bool {
    let target = SocketAddr::new(v4(to), 80);
    probe_with_timeout(&ns_of(from), target, proto, timeout)
        .unwrap()
        .allowed
}

/// Sends a line on an open connection and expects it echoed.
fn echo(conn: &mut TcpStream, line: &str) -> bool {
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    if conn.write_all(line.as_bytes()).is_err() {
        return false;
    }
    let mut buf = vec![0u8; line.len()];
    conn.read_exact(&mut buf).is_ok() && buf == line.as_bytes()
}

#[test]
fn pod_start_has_no_window_and_updates_reach_new_connections() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("u");
    lab.ok(&["up", "--nodes", "2", "--pods-per-node", "0"]);
    lab.apply("base.yaml", BASE);
    let (c1, c2, server) = (
        pod(&lab, "client1"),
        pod(&lab, "client2"),
        pod(&lab, "server"),
    );
    let quick = Duration::from_millis(500);
    let patient = Duration::from_secs(2);
    assert!(allowed(&c1, &server, Proto::Tcp, patient));

    // (a) A deny-all policy selects `locked` before it exists: from both nodes, probe the
    // address it will get, from before CNI ADD until after apply returns. Nothing may answer.
    let predicted = next_ip(&lab, "node2");
    let stop = AtomicBool::new(false);
    let attempts = AtomicUsize::new(0);
    let leaks = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for source in [&c1, &c2] {
            for proto in [Proto::Tcp, Proto::Udp] {
                let (stop, attempts, leaks) = (&stop, &attempts, &leaks);
                scope.spawn(move || {
                    let ns = ns_of(source);
                    let target = SocketAddr::new(predicted, 80);
                    while !stop.load(Ordering::SeqCst) {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        if answered(&ns, target, proto) {
                            leaks
                                .lock()
                                .unwrap()
                                .push(format!("{} {proto}", source.key()));
                        }
                    }
                });
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        lab.apply("locked.yaml", LOCKED);
        std::thread::sleep(Duration::from_millis(700));
        stop.store(true, Ordering::SeqCst);
    });
    let locked = pod(&lab, "locked");
    assert_eq!(
        v4(&locked),
        predicted,
        "the IP prediction failed; the check proved nothing"
    );
    let leaks = leaks.into_inner().unwrap();
    assert!(
        leaks.is_empty(),
        "the deny-all-selected pod answered before its rules were in place: {leaks:?}"
    );
    let attempts = attempts.load(Ordering::SeqCst);
    assert!(
        attempts >= 8,
        "only {attempts} probe attempts during the pod's start"
    );
    assert!(!allowed(&c1, &locked, Proto::Tcp, quick));
    assert!(!allowed(&locked, &server, Proto::Tcp, quick));

    // A pod no policy selects is reachable the moment apply returns (no quarantine left).
    lab.apply("open.yaml", OPEN);
    let open = pod(&lab, "open");
    assert!(
        allowed(&c2, &open, Proto::Tcp, patient),
        "new open pod unreachable (TCP)"
    );
    assert!(
        allowed(&c2, &open, Proto::Udp, patient),
        "new open pod unreachable (UDP)"
    );

    // (b) An established connection survives an unrelated policy change.
    let mut conn = connect_in(&ns_of(&c1), SocketAddr::new(v4(&server), 80), patient).unwrap();
    let mut greeting = [0u8; 5];
    conn.set_read_timeout(Some(patient)).unwrap();
    conn.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"peer ");
    let mut rest = String::new();
    while !rest.ends_with('\n') {
        let mut byte = [0u8; 1];
        conn.read_exact(&mut byte).unwrap();
        rest.push(byte[0] as char);
    }
    assert!(echo(&mut conn, "before\n"));
    lab.apply("unrelated.yaml", UNRELATED);
    assert!(
        echo(&mut conn, "after unrelated change\n"),
        "established connection broken"
    );
    assert!(
        !allowed(&c1, &open, Proto::Tcp, quick),
        "unrelated policy not enforced"
    );

    // New connections follow a policy that denies, a label change that allows, one that
    // denies again, and the deletion of the policy.
    lab.apply("trusted-only.yaml", TRUSTED_ONLY);
    assert!(
        !allowed(&c1, &server, Proto::Tcp, quick),
        "trusted-only not enforced"
    );
    lab.apply(
        "client1-trusted.yaml",
        &client1("{role: client, trusted: \"yes\"}"),
    );
    assert!(
        allowed(&c1, &server, Proto::Tcp, patient),
        "label change that allows did not reach new connections"
    );
    assert!(!allowed(&c2, &server, Proto::Tcp, quick));
    lab.apply("client1-plain.yaml", &client1("{role: client}"));
    assert!(
        !allowed(&c1, &server, Proto::Tcp, quick),
        "label change that denies did not reach new connections"
    );
    lab.delete("trusted-only.yaml", TRUSTED_ONLY);
    assert!(
        allowed(&c1, &server, Proto::Tcp, patient),
        "policy deletion did not reach new connections"
    );
    assert!(allowed(&c2, &server, Proto::Udp, patient));
    lab.ok(&["down"]);
    assert_eq!(lab.namespaces_left(), Vec::<String>::new());
}
