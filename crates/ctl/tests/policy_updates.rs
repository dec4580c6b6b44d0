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
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
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

const FROM_BLUE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-blue, namespace: w}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: blue}}}]}]
"#;

fn namespace_w(labels: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: w, labels: {labels}}}\n")
}

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

/// What the probes around a pod's start saw.
#[derive(Debug, Default)]
struct StartReport {
    /// Connections that got through (or were answered by a reset).
    leaks: Vec<String>,
    /// Connection attempts from the pod once it had a route.
    egress_attempts: usize,
    /// Connection attempts to the pod once it had its address.
    ingress_attempts: usize,
}

fn got_through(result: &std::io::Result<TcpStream>) -> bool {
    match result {
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionRefused,
    }
}

/// Applies the `locked` pod while probing, from its first moment, out of it (to `server`)
/// and into it (from `clients`, once its address `ip` is configured).
fn watch_pod_start(lab: &Lab, clients: &[&PodState], server: &PodState, ip: IpAddr) -> StartReport {
    let stop = AtomicBool::new(false);
    let addressed = AtomicBool::new(false);
    let report = Mutex::new(StartReport::default());
    let netns = named_netns_path(&lab.paths().pod_netns("w", "locked"));
    let to_server = SocketAddr::new(v4(server), 80);
    let timeout = Duration::from_millis(60);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // The namespace file exists a moment before it is mounted: retry until setns works.
            while !stop.load(Ordering::SeqCst) {
                let Ok(ns) = NetnsFd::open(&netns) else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                let entered = run_in_netns(&ns, || {
                    while !stop.load(Ordering::SeqCst) {
                        if UdpSocket::bind((ip, 0)).is_ok() {
                            addressed.store(true, Ordering::SeqCst);
                        }
                        let result = TcpStream::connect_timeout(&to_server, timeout);
                        let unrouted = result.as_ref().err().and_then(|e| e.raw_os_error())
                            == Some(nix::errno::Errno::ENETUNREACH as i32);
                        if unrouted {
                            std::thread::sleep(Duration::from_millis(1));
                            continue;
                        }
                        let mut r = report.lock().unwrap();
                        r.egress_attempts += 1;
                        if got_through(&result) {
                            r.leaks.push(format!("locked -> server: {result:?}"));
                        }
                    }
                });
                if entered.is_ok() {
                    break;
                }
            }
        });
        for client in clients {
            let (stop, addressed, report) = (&stop, &addressed, &report);
            scope.spawn(move || {
                let ns = ns_of(client);
                let target = SocketAddr::new(ip, 80);
                while !stop.load(Ordering::SeqCst) {
                    if !addressed.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    let result =
                        run_in_netns(&ns, || TcpStream::connect_timeout(&target, timeout)).unwrap();
                    let mut r = report.lock().unwrap();
                    r.ingress_attempts += 1;
                    if got_through(&result) {
                        r.leaks
                            .push(format!("{} -> locked: {result:?}", client.key()));
                    }
                }
            });
        }
        lab.apply("locked.yaml", LOCKED);
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
    });
    report.into_inner().unwrap()
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

    // (a) A deny-all policy selects `locked` before it exists. From inside its namespace,
    // from the moment the namespace exists, it keeps connecting to `server`; as soon as its
    // address is configured the clients keep connecting to it. Nothing may get through.
    let predicted = next_ip(&lab, "node2");
    let report = watch_pod_start(&lab, &[&c1, &c2], &server, predicted);
    let locked = pod(&lab, "locked");
    assert_eq!(
        v4(&locked),
        predicted,
        "the IP prediction failed; the check proved nothing"
    );
    let (egress, ingress) = (report.egress_attempts, report.ingress_attempts);
    eprintln!("pod start: {egress} probes out of the pod, {ingress} into it");
    assert!(
        report.leaks.is_empty(),
        "the deny-all-selected pod passed traffic before its rules were in place ({} times), first: {:?}",
        report.leaks.len(),
        report.leaks.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        egress >= 3 && ingress >= 3,
        "too few probes while the pod started: {egress} out, {ingress} in"
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
    let denied = lab.run(&["trace", "w/client1", "w/server", "--port", "80"]);
    assert_eq!(denied.status.code(), Some(1));
    let text = String::from_utf8_lossy(&denied.stdout);
    assert!(text.contains("isolated by w/trusted-only"), "{text}");
    lab.apply(
        "client1-trusted.yaml",
        &client1("{role: client, trusted: \"yes\"}"),
    );
    assert!(
        allowed(&c1, &server, Proto::Tcp, patient),
        "label change that allows did not reach new connections"
    );
    assert!(!allowed(&c2, &server, Proto::Tcp, quick));
    let json: serde_json::Value = serde_json::from_str(&lab.ok(&[
        "trace",
        "w/client1",
        "w/server",
        "--port",
        "80",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["allowed"], true, "{json}");
    assert_eq!(
        json["reasons"][1]["text"],
        "ingress allowed by NetworkPolicy w/trusted-only, spec.ingress[0]"
    );
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

    // Namespace labels count too: relabelling the namespace opens and closes the door.
    lab.apply("from-blue.yaml", FROM_BLUE);
    assert!(
        !allowed(&c1, &server, Proto::Tcp, quick),
        "from-blue not enforced"
    );
    lab.apply("ns-blue.yaml", &namespace_w("{team: blue}"));
    assert!(
        allowed(&c1, &server, Proto::Tcp, patient),
        "namespace label change that allows did not reach new connections"
    );
    lab.apply("ns-plain.yaml", &namespace_w("{team: w}"));
    assert!(
        !allowed(&c2, &server, Proto::Tcp, quick),
        "namespace label change that denies did not reach new connections"
    );
    lab.ok(&["down"]);
    assert_eq!(lab.namespaces_left(), Vec::<String>::new());
}
