//! The e2e-style fixture: namespaces x, y, z with pods a, b, c each, ports 80/81 TCP/UDP.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use weft_policy::nft::{L4, compile};
use weft_policy::{
    Cluster, ContainerPort, Endpoint, Namespace, NetworkPolicy, Node, Pod, Protocol,
    ValidatedPolicy, evaluate,
};

pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
pub const PODS: [&str; 3] = ["a", "b", "c"];

fn ns_index(ns: &str) -> u8 {
    NAMESPACES.iter().position(|n| *n == ns).unwrap() as u8 + 1
}

fn pod_index(p: &str) -> u8 {
    PODS.iter().position(|n| *n == p).unwrap() as u8 + 1
}

/// IPv4 of pod `ns/p`: 10.10.<ns>.<pod>; IPv6: fd10::<ns>:<pod>.
pub fn pod_ip4(ns: &str, p: &str) -> IpAddr {
    format!("10.10.{}.{}", ns_index(ns), pod_index(p))
        .parse()
        .unwrap()
}

pub fn pod_ip6(ns: &str, p: &str) -> IpAddr {
    format!("fd10::{}:{}", ns_index(ns), pod_index(p))
        .parse()
        .unwrap()
}

/// Pod `a` of each namespace on node n1, `b` and `c` on n2.
pub fn node_of(p: &str) -> &'static str {
    if p == "a" { "n1" } else { "n2" }
}

pub const NODE1_IP: &str = "10.0.0.1";
pub const NODE2_IP: &str = "10.0.0.2";
pub const EXTERNAL_IP: &str = "172.16.5.5";

fn named(name: &str, port: u16, protocol: Protocol) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol,
    }
}

pub fn base_cluster() -> Cluster {
    let mut c = Cluster::default();
    for ns in NAMESPACES {
        c.namespaces.push(Namespace::new(
            ns,
            BTreeMap::from([("ns".to_string(), ns.to_string())]),
        ));
        for p in PODS {
            c.pods.push(Pod {
                namespace: ns.into(),
                name: p.into(),
                labels: BTreeMap::from([("pod".to_string(), p.to_string())]),
                ips: vec![pod_ip4(ns, p), pod_ip6(ns, p)],
                node: node_of(p).into(),
                ports: vec![
                    named("serve-80-tcp", 80, Protocol::Tcp),
                    named("serve-81-tcp", 81, Protocol::Tcp),
                    named("serve-80-udp", 80, Protocol::Udp),
                    named("serve-81-udp", 81, Protocol::Udp),
                ],
            });
        }
    }
    c.nodes = vec![
        Node {
            name: "n1".into(),
            ips: vec![NODE1_IP.parse().unwrap(), "fd00::1".parse().unwrap()],
        },
        Node {
            name: "n2".into(),
            ips: vec![NODE2_IP.parse().unwrap(), "fd00::2".parse().unwrap()],
        },
    ];
    c
}

pub fn policy(yaml: &str) -> ValidatedPolicy {
    let p: NetworkPolicy = serde_yaml_ng::from_str(yaml).unwrap();
    p.validate().unwrap()
}

pub fn with(policies: &[&str]) -> Cluster {
    let mut c = base_cluster();
    c.policies = policies.iter().map(|y| policy(y)).collect();
    c
}

pub fn all_pods() -> Vec<String> {
    NAMESPACES
        .iter()
        .flat_map(|ns| PODS.iter().map(move |p| format!("{ns}/{p}")))
        .collect()
}

pub fn ep(id: &str) -> Endpoint {
    let (ns, p) = id.split_once('/').unwrap();
    Endpoint::pod(ns, p)
}

pub fn l4(p: &Protocol) -> L4 {
    match p {
        Protocol::Tcp => L4::Tcp,
        Protocol::Udp => L4::Udp,
        Protocol::Sctp => L4::Sctp,
        Protocol::Unsupported(_) => unreachable!(),
    }
}

/// Checks the evaluator's 9x9 matrix against `expect(from, to)` (loopback always allowed),
/// and the compiled nft rulesets of both nodes (simulated, v4 and v6) against the evaluator.
pub fn check(
    cluster: &Cluster,
    protocol: Protocol,
    port: u16,
    expect: impl Fn(&str, &str) -> bool,
) {
    let mut wrong = Vec::new();
    for from in all_pods() {
        for to in all_pods() {
            let want = from == to || expect(&from, &to);
            let got = evaluate(cluster, &ep(&from), &ep(&to), &protocol, port).unwrap();
            if got.allowed != want {
                wrong.push(format!(
                    "{from} -> {to}: expected {want}, evaluator {:?}",
                    got
                ));
            }
            if from != to {
                check_compiled(
                    cluster,
                    &from,
                    &to,
                    &protocol,
                    port,
                    got.allowed,
                    &mut wrong,
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{:?}/{port} mismatches:\n{}",
        protocol,
        wrong.join("\n")
    );
}

/// The packet crosses the source node's table and then the destination node's table.
pub fn check_compiled(
    cluster: &Cluster,
    from: &str,
    to: &str,
    protocol: &Protocol,
    port: u16,
    want: bool,
    wrong: &mut Vec<String>,
) {
    let (fns, fp) = from.split_once('/').unwrap();
    let (tns, tp) = to.split_once('/').unwrap();
    for (s, d) in [
        (pod_ip4(fns, fp), pod_ip4(tns, tp)),
        (pod_ip6(fns, fp), pod_ip6(tns, tp)),
    ] {
        let mut nodes = vec![node_of(fp)];
        if node_of(tp) != node_of(fp) {
            nodes.push(node_of(tp));
        }
        let got = nodes
            .iter()
            .all(|n| compile(cluster, n).simulate(s, d, l4(protocol), port));
        if got != want {
            wrong.push(format!(
                "{from} -> {to} ({s} -> {d}): nft {got}, evaluator {want}"
            ));
        }
    }
}

pub fn ns(id: &str) -> &str {
    id.split_once('/').unwrap().0
}

pub fn name(id: &str) -> &str {
    id.split_once('/').unwrap().1
}
