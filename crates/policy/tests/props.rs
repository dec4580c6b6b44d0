//! Properties over random policies on the x/y/z fixture.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers may fail loudly

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use weft_policy::nft::{L4, compile};
use weft_policy::{
    Cluster, EgressRule, Endpoint, IngressRule, IntOrString, IpBlock, LabelSelector,
    LabelSelectorRequirement, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec, ObjectMeta, Operator, PolicyType, Protocol, evaluate,
};

fn labels(k: &str, v: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(k.to_string(), v.to_string())])
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    prop_oneof![
        Just(LabelSelector::default()),
        prop::sample::select(vec!["a", "b", "c"]).prop_map(|p| LabelSelector {
            match_labels: labels("pod", p),
            ..Default::default()
        }),
        prop::sample::subsequence(vec!["a", "b", "c"], 1..3).prop_map(|v| LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: "pod".into(),
                operator: Operator::NotIn,
                values: v.into_iter().map(String::from).collect(),
            }],
            ..Default::default()
        }),
    ]
}

fn ns_selector() -> impl Strategy<Value = LabelSelector> {
    prop_oneof![
        Just(LabelSelector::default()),
        prop::sample::select(vec!["x", "y", "z"]).prop_map(|n| LabelSelector {
            match_labels: labels("ns", n),
            ..Default::default()
        }),
        prop::sample::select(vec!["x", "y", "z"]).prop_map(|n| LabelSelector {
            match_labels: labels("kubernetes.io/metadata.name", n),
            ..Default::default()
        }),
    ]
}

fn peer() -> impl Strategy<Value = NetworkPolicyPeer> {
    prop_oneof![
        selector().prop_map(|s| NetworkPolicyPeer {
            pod_selector: Some(s),
            ..Default::default()
        }),
        ns_selector().prop_map(|s| NetworkPolicyPeer {
            namespace_selector: Some(s),
            ..Default::default()
        }),
        (selector(), ns_selector()).prop_map(|(p, n)| NetworkPolicyPeer {
            pod_selector: Some(p),
            namespace_selector: Some(n),
            ..Default::default()
        }),
        (1u8..=3, prop::option::of(1u8..=3)).prop_map(|(n, hole)| NetworkPolicyPeer {
            ip_block: Some(IpBlock {
                cidr: format!("10.10.{n}.0/24"),
                except: hole
                    .map(|h| format!("10.10.{n}.{h}/32"))
                    .into_iter()
                    .collect(),
            }),
            ..Default::default()
        }),
        Just(NetworkPolicyPeer {
            ip_block: Some(IpBlock {
                cidr: "fd10::/64".into(),
                except: vec!["fd10::2:0/112".into()]
            }),
            ..Default::default()
        }),
    ]
}

fn port() -> impl Strategy<Value = NetworkPolicyPort> {
    let proto = prop_oneof![
        Just(None),
        Just(Some(Protocol::Tcp)),
        Just(Some(Protocol::Udp))
    ];
    let number = prop_oneof![
        Just((None, None)),
        Just((Some(IntOrString::Int(80)), None)),
        Just((Some(IntOrString::Int(81)), None)),
        Just((Some(IntOrString::Int(80)), Some(81))),
        Just((Some(IntOrString::String("serve-81-tcp".into())), None)),
        Just((Some(IntOrString::String("serve-80-udp".into())), None)),
    ];
    (proto, number).prop_map(|(protocol, (port, end_port))| NetworkPolicyPort {
        protocol,
        port,
        end_port,
    })
}

fn rule() -> impl Strategy<Value = (Vec<NetworkPolicyPeer>, Vec<NetworkPolicyPort>)> {
    (
        prop::collection::vec(peer(), 0..3),
        prop::collection::vec(port(), 0..3),
    )
}

fn types() -> impl Strategy<Value = Option<Vec<PolicyType>>> {
    prop_oneof![
        Just(None),
        Just(Some(vec![PolicyType::Ingress])),
        Just(Some(vec![PolicyType::Egress])),
        Just(Some(vec![PolicyType::Ingress, PolicyType::Egress])),
    ]
}

fn policy_strategy(name: String) -> impl Strategy<Value = NetworkPolicy> {
    (
        prop::sample::select(vec!["x", "y", "z"]),
        selector(),
        types(),
        prop::option::of(prop::collection::vec(rule(), 0..3)),
        prop::option::of(prop::collection::vec(rule(), 0..3)),
    )
        .prop_map(
            move |(ns, pod_selector, policy_types, ingress, egress)| NetworkPolicy {
                metadata: ObjectMeta {
                    name: name.clone(),
                    namespace: Some(ns.into()),
                },
                spec: NetworkPolicySpec {
                    pod_selector,
                    policy_types,
                    ingress: ingress.map(|rs| {
                        rs.into_iter()
                            .map(|(from, ports)| IngressRule { from, ports })
                            .collect()
                    }),
                    egress: egress.map(|rs| {
                        rs.into_iter()
                            .map(|(to, ports)| EgressRule { to, ports })
                            .collect()
                    }),
                },
            },
        )
}

fn policies() -> impl Strategy<Value = Vec<NetworkPolicy>> {
    (0usize..4).prop_flat_map(|n| {
        (0..n)
            .map(|i| policy_strategy(format!("p{i}")))
            .collect::<Vec<_>>()
    })
}

fn cluster_with(ps: Vec<NetworkPolicy>) -> Cluster {
    let mut c = base_cluster();
    c.policies = ps.into_iter().map(|p| p.validate().unwrap()).collect();
    c
}

const PACKETS: [(Protocol, u16); 5] = [
    (Protocol::Tcp, 80),
    (Protocol::Tcp, 81),
    (Protocol::Udp, 80),
    (Protocol::Udp, 81),
    (Protocol::Tcp, 82),
];

fn allowed(c: &Cluster, from: &str, to: &str, p: &Protocol, port: u16) -> bool {
    evaluate(c, &ep(from), &ep(to), p, port).unwrap().allowed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_policies_allow_everything(from in 0usize..9, to in 0usize..9, pkt in 0usize..5) {
        let c = base_cluster();
        let (p, port) = &PACKETS[pkt];
        prop_assert!(allowed(&c, &all_pods()[from], &all_pods()[to], p, *port));
    }

    #[test]
    fn a_selecting_policy_without_rules_denies_ingress(ps in policies(), target in 0usize..9) {
        // Only the new policy and the others' ingress allows matter; drop other policies'
        // ingress rules so the property is exact: no rule anywhere allows ingress to target.
        let id = all_pods()[target].clone();
        let mut ps: Vec<NetworkPolicy> = ps;
        for p in &mut ps { p.spec.ingress = None; }
        ps.push(NetworkPolicy {
            metadata: ObjectMeta { name: "deny".into(), namespace: Some(ns(&id).into()) },
            spec: NetworkPolicySpec { pod_selector: LabelSelector { match_labels: labels("pod", name(&id)), ..Default::default() }, ..Default::default() },
        });
        let c = cluster_with(ps);
        for from in all_pods().iter().filter(|f| **f != id) {
            for (p, port) in &PACKETS {
                prop_assert!(!allowed(&c, from, &id, p, *port), "{from} -> {id} {p:?}/{port}");
            }
        }
    }

    #[test]
    fn adding_an_allow_never_denies_more(base in policies(), extra in policy_strategy("extra".into())) {
        let before = cluster_with(base.clone());
        let mut extra = extra;
        // An ingress-only policy: it may isolate new pods, but for pods that were already
        // isolated for ingress it can only add allows.
        extra.spec.policy_types = Some(vec![PolicyType::Ingress]);
        let mut all = base;
        all.push(extra);
        let after = cluster_with(all);
        for from in all_pods() {
            for to in all_pods() {
                for (p, port) in &PACKETS {
                    let v = evaluate(&before, &ep(&from), &ep(&to), p, *port).unwrap();
                    let ingress_was_isolated = !v.reasons.iter().any(|r| matches!(r,
                        weft_policy::Decision::NotIsolated { direction: weft_policy::Direction::Ingress }));
                    if v.allowed && ingress_was_isolated {
                        prop_assert!(allowed(&after, &from, &to, p, *port), "{from} -> {to} {p:?}/{port}");
                    }
                }
            }
        }
    }

    #[test]
    fn compiled_nft_agrees_with_evaluator(ps in policies()) {
        let c = cluster_with(ps);
        let tables = BTreeMap::from([("n1", compile(&c, "n1")), ("n2", compile(&c, "n2"))]);
        for from in all_pods() {
            for to in all_pods() {
                if from == to { continue; }
                for (p, port) in &PACKETS {
                    let l4 = if *p == Protocol::Tcp { L4::Tcp } else { L4::Udp };
                    for (s, d) in [(pod_ip4(ns(&from), name(&from)), pod_ip4(ns(&to), name(&to))),
                                   (pod_ip6(ns(&from), name(&from)), pod_ip6(ns(&to), name(&to)))] {
                        // Per family: ipBlocks may cover one family of a pod and not the other.
                        let want = evaluate(&c, &Endpoint::Ip(s), &Endpoint::Ip(d), p, *port).unwrap().allowed;
                        let got = [node_of(name(&from)), node_of(name(&to))].iter().all(|n| tables[n].simulate(s, d, l4, *port));
                        prop_assert_eq!(got, want, "{} -> {} ({} -> {}) {:?}/{}", from, to, s, d, p, port);
                    }
                }
            }
        }
    }

    #[test]
    fn json_round_trip_and_validation_is_total(ps in policies()) {
        for p in ps {
            let back: NetworkPolicy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            prop_assert_eq!(&back, &p);
            prop_assert!(back.validate().is_ok());
        }
    }
}
