//! Masquerade scope, with real packets: pods behind weftd keep their source address
//! towards pods on other nodes and towards nodes, and are masqueraded only when leaving
//! the cluster CIDR.

// Helpers outside #[test] functions count as production code for clippy.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::Cluster;
use weft_testns::TestNs;

const VXLAN: &str = r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"vxlan"}}"#;

const RECV: &str = "import socket,sys\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0',9000))\n\
s.settimeout(8)\n\
d,a=s.recvfrom(100)\n\
print(a[0])\n";

fn send(to: &str) -> String {
    format!(
        "import socket,time\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
for _ in range(20):\n    s.sendto(b'x',('{to}',9000)); time.sleep(0.1)\n"
    )
}

/// Source address a UDP datagram from `from` to `to` arrives with in `at`.
fn seen_source(at: &TestNs, from: &TestNs, to: &str) -> String {
    let receiver = at.run(|| {
        Command::new("python3")
            .args(["-c", RECV])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent = from
        .exec(Command::new("python3").args(["-c", &send(to)]))
        .unwrap();
    assert!(sent.status.success(), "{sent:?}");
    let out = receiver.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn only_traffic_leaving_the_cluster_is_masqueraded() {
    let mut c = Cluster::new(VXLAN, &["198.18.0.10/24", "198.18.0.11/24"], 5);
    c.start_all();
    c.wait_healthy(0, 1);
    c.wait_healthy(1, 1);
    let (pa, ip_a) = c.add_pod(0, 5);
    let (pb, ip_b) = c.add_pod(1, 6);

    // pod → pod on another node: the receiver sees the sender's pod IP.
    assert_eq!(seen_source(&c.pods[pb], &c.pods[pa], &ip_b), ip_a);
    // pod → its own node (the gateway): no NAT either.
    assert_eq!(
        seen_source(&c.nodes[0].ns, &c.pods[pa], &c.nodes[0].gateway_v4()),
        ip_a
    );
    // node → its own pod: from the bridge gateway, no NAT.
    assert_eq!(
        seen_source(&c.pods[pa], &c.nodes[0].ns, &ip_a),
        c.nodes[0].gateway_v4()
    );
    // node → pod on another node: the node's own address, untouched.
    let from_node = seen_source(&c.pods[pb], &c.nodes[0].ns, &ip_b);
    assert!(
        from_node.starts_with("10.244.") || from_node.starts_with("198.18."),
        "{from_node}"
    );
    assert_ne!(from_node, ip_a);
    // pod → outside the cluster (the fabric, which has no route to pods): masqueraded to
    // the node's underlay address, so the reply finds its way back.
    assert_eq!(
        seen_source(&c.fabric, &c.pods[pa], "198.18.0.1"),
        "198.18.0.10"
    );
    c.close();
}
