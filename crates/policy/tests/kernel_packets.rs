//! Real packets through the rendered table: a throwaway "node" namespace routes between two
//! pod namespaces (all anonymous `unshare --net` namespaces, gone when the processes end;
//! the root namespace is never touched). Each probe's outcome must equal the evaluator's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers may fail loudly

mod common;

use std::process::Command;

use common::*;
use weft_policy::Protocol::Tcp;
use weft_policy::nft::compile;
use weft_policy::{Endpoint, evaluate};

/// Node namespace script: pods x/a (10.10.1.1) and y/a (10.10.2.1) behind veths, TCP
/// servers on 80 and 81 in both, then one connect per probe line `FROM_PID_VAR IP PORT`.
const SCRIPT: &str = r#"
set -e
# Every background process has its output detached (so it never holds our stdout open),
# is killed by pid at the end, and gives up by itself after a few seconds anyway.
unshare --net sleep 45 >/dev/null 2>&1 & A=$!
unshare --net sleep 45 >/dev/null 2>&1 & B=$!
PIDS="$A $B"
sleep 0.3
ip link add va type veth peer name eth0 netns $A
ip link add vb type veth peer name eth0 netns $B
ip addr add 10.10.1.254/24 dev va; ip -6 addr add fd10::1:fe/112 dev va nodad; ip link set va up
ip addr add 10.10.2.254/24 dev vb; ip -6 addr add fd10::2:fe/112 dev vb nodad; ip link set vb up
ip link set lo up
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.ipv6.conf.all.forwarding=1
for P in $A:1 $B:2; do
  pid=${P%%:*}; n=${P#*:}
  nsenter --net=/proc/$pid/ns/net sh -c "ip link set lo up; ip addr add 10.10.$n.1/24 dev eth0; ip -6 addr add fd10::$n:1/112 dev eth0 nodad; ip link set eth0 up; ip route add default via 10.10.$n.254; ip -6 route add default via fd10::$n:fe"
done
# Wait until IPv6 works on both links (link-local DAD must finish before neighbour
# discovery does); pinging the node itself goes to `input`, untouched by the table.
for P in $A:1 $B:2; do
  pid=${P%%:*}; n=${P#*:}
  for i in $(seq 30); do
    nsenter --net=/proc/$pid/ns/net ping -6 -c1 -W1 fd10::$n:fe >/dev/null 2>&1 && break
    sleep 0.2
  done
  # The node resolves the pod's IPv4 neighbour now, so the first probe does not spend
  # its short connect timeout on ARP (node-to-pod is `output`, untouched by the table).
  ping -c1 -W1 10.10.$n.1 >/dev/null 2>&1 || true
done
nft -f "$RULES"
SERVER='
import socket,sys
s=socket.create_server(("::", int(sys.argv[1])), family=socket.AF_INET6, dualstack_ipv6=True, backlog=8)
s.settimeout(30)
while True:
    c,_=s.accept(); c.sendall(b"hi"); c.close()
'
CLIENT='
import socket,sys
s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5); assert s.recv(2)==b"hi"
'
for pid in $A $B; do for port in 80 81; do
  nsenter --net=/proc/$pid/ns/net python3 -c "$SERVER" $port >/dev/null 2>&1 &
  PIDS="$PIDS $!"
done; done
sleep 0.5
set +e
while read from ip port; do
  eval pid=\$$from
  # A second try keeps a loaded machine from turning an allowed probe into "denied"; a
  # dropped one fails both times.
  r=denied
  for try in 1 2; do
    if nsenter --net=/proc/$pid/ns/net timeout 4 python3 -c "$CLIENT" $ip $port 2>/dev/null; then r=allowed; break; fi
  done
  echo "$from $ip $port $r"
done <<PROBES
$PROBES
PROBES
kill $PIDS 2>/dev/null
exit 0
"#;

fn tools_available() -> bool {
    let ok = |c: &str, a: &str| {
        Command::new(c)
            .arg(a)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ok("nft", "--version")
        && ok("unshare", "--version")
        && ok("nsenter", "--version")
        && ok("python3", "--version")
        && Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n")
}

#[test]
fn packets_follow_the_evaluator() {
    assert!(
        tools_available(),
        "this test needs root, nft, unshare, nsenter and python3 (scripts/install-deps.sh)"
    );
    let cluster = with(&[
        "metadata: {name: from-y, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: 81}]}]",
        "metadata: {name: out-81, namespace: y}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: serve-81-tcp}]}]",
    ]);
    // Both pods are `a` pods, so both live on node n1: one table sees both directions.
    let rules =
        std::env::temp_dir().join(format!("weft-policy-packets-{}.nft", std::process::id()));
    std::fs::write(&rules, compile(&cluster, "n1").render()).unwrap();
    let mut probes = String::new();
    let mut expected = Vec::new();
    for (var, from, to) in [("A", "x/a", "y/a"), ("B", "y/a", "x/a")] {
        for port in [80u16, 81] {
            let (tns, tp) = to.split_once('/').unwrap();
            for ip in [pod_ip4(tns, tp), pod_ip6(tns, tp)] {
                probes.push_str(&format!("{var} {ip} {port}\n"));
                let from = ep(from);
                let v = evaluate(&cluster, &from, &Endpoint::Ip(ip), &Tcp, port).unwrap();
                let verdict = if v.allowed { "allowed" } else { "denied" };
                expected.push(format!("{var} {ip} {port} {verdict}"));
            }
        }
    }
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", SCRIPT])
        .env("RULES", &rules)
        .env("PROBES", probes.trim_end())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&rules);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        got,
        expected,
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The matrix is not trivial: both allowed and denied probes, incl. a reply that needs ct.
    assert!(
        expected.iter().any(|e| e.ends_with("denied"))
            && expected.iter().any(|e| e.ends_with("allowed"))
    );
}
