//! Non-pod endpoints (nodes, external addresses), decision reasons and evaluator errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers may fail loudly

mod common;

use common::*;
use weft_policy::Protocol::Tcp;
use weft_policy::nft::{L4, compile};
use weft_policy::{Decision, Direction, Endpoint, EvalError, PolicyRef, evaluate};

fn ip(s: &str) -> Endpoint {
    Endpoint::Ip(s.parse().unwrap())
}

const DENY_ALL_X_BOTH: &str =
    "metadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}";

#[test]
fn own_node_is_always_allowed_in() {
    let c = with(&[DENY_ALL_X_BOTH]);
    let v = evaluate(&c, &ip(NODE1_IP), &ep("x/a"), &Tcp, 80).unwrap();
    assert!(v.allowed);
    assert_eq!(
        v.reasons.last(),
        Some(&Decision::FromOwnNode { node: "n1".into() })
    );
    // The nft side: the node set accepts it.
    assert!(compile(&c, "n1").simulate(NODE1_IP.parse().unwrap(), pod_ip4("x", "a"), L4::Tcp, 80));
}

#[test]
fn other_node_is_not_exempt() {
    let c = with(&[DENY_ALL_X_BOTH]);
    assert!(
        !evaluate(&c, &ip(NODE2_IP), &ep("x/a"), &Tcp, 80)
            .unwrap()
            .allowed
    );
    assert!(!compile(&c, "n1").simulate(NODE2_IP.parse().unwrap(), pod_ip4("x", "a"), L4::Tcp, 80));
}

#[test]
fn external_source_needs_ip_block() {
    let c = with(&[
        "metadata: {name: ext, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]}]",
    ]);
    assert!(
        evaluate(&c, &ip(EXTERNAL_IP), &ep("x/a"), &Tcp, 80)
            .unwrap()
            .allowed
    );
    assert!(
        !evaluate(&c, &ep("y/a"), &ep("x/a"), &Tcp, 80)
            .unwrap()
            .allowed
    );
    let rs = compile(&c, "n1");
    assert!(rs.simulate(EXTERNAL_IP.parse().unwrap(), pod_ip4("x", "a"), L4::Tcp, 80));
    assert!(!rs.simulate(pod_ip4("y", "a"), pod_ip4("x", "a"), L4::Tcp, 80));
    // Selectors never match a non-pod address.
    let c = with(&[
        "metadata: {name: ns, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {}}]}]",
    ]);
    assert!(
        !evaluate(&c, &ip(EXTERNAL_IP), &ep("x/a"), &Tcp, 80)
            .unwrap()
            .allowed
    );
}

#[test]
fn egress_to_external_address() {
    let c = with(&[
        "metadata: {name: e, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 172.16.0.0/12}}], ports: [{port: 443}]}]",
    ]);
    assert!(
        evaluate(&c, &ep("x/a"), &ip(EXTERNAL_IP), &Tcp, 443)
            .unwrap()
            .allowed
    );
    assert!(
        !evaluate(&c, &ep("x/a"), &ip(EXTERNAL_IP), &Tcp, 80)
            .unwrap()
            .allowed
    );
    // Named ports never match a non-pod destination.
    let c = with(&[
        "metadata: {name: e, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: serve-80-tcp}]}]",
    ]);
    assert!(
        !evaluate(&c, &ep("x/a"), &ip(EXTERNAL_IP), &Tcp, 80)
            .unwrap()
            .allowed
    );
    assert!(
        evaluate(&c, &ep("x/a"), &ep("y/b"), &Tcp, 80)
            .unwrap()
            .allowed
    );
}

#[test]
fn pod_ip_endpoint_is_treated_as_the_pod() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]",
    ]);
    let from_b = Endpoint::Ip(pod_ip4("x", "b"));
    assert!(evaluate(&c, &from_b, &ep("x/a"), &Tcp, 80).unwrap().allowed);
    let from_b6 = Endpoint::Ip(pod_ip6("x", "b"));
    assert!(
        evaluate(&c, &from_b6, &ep("x/a"), &Tcp, 80)
            .unwrap()
            .allowed
    );
}

#[test]
fn loopback_is_always_allowed() {
    let c = with(&[DENY_ALL_X_BOTH]);
    let v = evaluate(&c, &ep("x/a"), &ep("x/a"), &Tcp, 80).unwrap();
    assert_eq!(v.reasons, vec![Decision::Loopback]);
    assert!(v.allowed);
}

#[test]
fn reasons_name_rules_and_isolating_policies() {
    let c = with(&[
        "metadata: {name: deny, namespace: x}\nspec: {podSelector: {}}",
        "metadata: {name: allow, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 81}]}, {from: [{podSelector: {}}]}]",
    ]);
    let v = evaluate(&c, &ep("x/b"), &ep("x/a"), &Tcp, 81).unwrap();
    let allow = PolicyRef {
        namespace: "x".into(),
        name: "allow".into(),
    };
    assert_eq!(
        v.reasons,
        vec![
            Decision::NotIsolated {
                direction: Direction::Egress
            },
            Decision::AllowedBy {
                direction: Direction::Ingress,
                policy: allow.clone(),
                rule: 0
            },
            Decision::AllowedBy {
                direction: Direction::Ingress,
                policy: allow.clone(),
                rule: 1
            },
        ]
    );
    let v = evaluate(&c, &ep("y/b"), &ep("x/a"), &Tcp, 80).unwrap();
    assert!(!v.allowed);
    let deny = PolicyRef {
        namespace: "x".into(),
        name: "deny".into(),
    };
    assert_eq!(
        v.reasons[1],
        Decision::DeniedByIsolation {
            direction: Direction::Ingress,
            policies: vec![deny, allow]
        }
    );
    let v = evaluate(&c, &ip(EXTERNAL_IP), &ep("y/a"), &Tcp, 80).unwrap();
    assert_eq!(
        v.reasons[0],
        Decision::NotAPod {
            direction: Direction::Egress
        }
    );
}

#[test]
fn unknown_pod_and_missing_family_are_errors() {
    let c = with(&[]);
    assert_eq!(
        evaluate(&c, &ep("x/nope"), &ep("x/a"), &Tcp, 80),
        Err(EvalError::UnknownPod("x/nope".into()))
    );
    let mut c = with(&[]);
    c.pods[0].ips.retain(|i| i.is_ipv6());
    assert!(matches!(
        evaluate(
            &c,
            &ep("x/a"),
            &Endpoint::Ip("10.10.2.1".parse().unwrap()),
            &Tcp,
            80
        ),
        Err(EvalError::NoAddress(_))
    ));
    // Two pods sharing only IPv6 talk over IPv6.
    c.pods[1].ips.retain(|i| i.is_ipv6());
    assert!(
        evaluate(&c, &ep("x/a"), &ep("x/b"), &Tcp, 80)
            .unwrap()
            .allowed
    );
}

#[test]
fn user_label_cannot_spoof_namespace_name() {
    let mut c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]}]",
    ]);
    c.namespaces[1]
        .labels
        .insert("kubernetes.io/metadata.name".into(), "z".into());
    assert!(
        !evaluate(&c, &ep("y/a"), &ep("x/a"), &Tcp, 80)
            .unwrap()
            .allowed
    );
    assert!(
        evaluate(&c, &ep("z/a"), &ep("x/a"), &Tcp, 80)
            .unwrap()
            .allowed
    );
}

#[test]
fn decisions_read_well() {
    let c = with(&[DENY_ALL_X_BOTH]);
    let v = evaluate(&c, &ep("y/a"), &ep("x/b"), &Tcp, 80).unwrap();
    let lines: Vec<String> = v.reasons.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "egress allowed: no policy isolates the pod for egress",
            "ingress denied: isolated by x/deny and no rule matches"
        ]
    );
    let d = Decision::AllowedBy {
        direction: Direction::Egress,
        policy: PolicyRef {
            namespace: "x".into(),
            name: "p".into(),
        },
        rule: 2,
    };
    assert_eq!(
        d.to_string(),
        "egress allowed by NetworkPolicy x/p, spec.egress[2]"
    );
}
