//! Truth tables in the style of the Kubernetes network policy e2e suite: namespaces x, y, z
//! with pods a, b, c; every case checks the full 9x9 matrix for the evaluator and for the
//! compiled nft rulesets (simulated).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers may fail loudly

mod common;

use common::*;
use weft_policy::Protocol::{Sctp, Tcp, Udp};

const DENY_ALL_X: &str = "metadata: {name: deny-all, namespace: x}\nspec: {podSelector: {}}";

fn into(to: &str, ns_: &str) -> bool {
    ns(to) == ns_
}

#[test]
fn t01_no_policies_allow_everything() {
    let c = with(&[]);
    for (p, port) in [(Tcp, 80), (Tcp, 81), (Udp, 80), (Udp, 81)] {
        check(&c, p, port, |_, _| true);
    }
}

#[test]
fn t02_deny_all_ingress_absent_rules() {
    let c = with(&[DENY_ALL_X]);
    check(&c, Tcp, 80, |_, t| !into(t, "x"));
    check(&c, Udp, 81, |_, t| !into(t, "x"));
}

#[test]
fn t03_deny_all_ingress_empty_rule_list() {
    let c = with(&["metadata: {name: d, namespace: x}\nspec: {podSelector: {}, ingress: []}"]);
    check(&c, Tcp, 80, |_, t| !into(t, "x"));
}

#[test]
fn t04_allow_all_ingress_empty_rule() {
    let c = with(&["metadata: {name: d, namespace: x}\nspec: {podSelector: {}, ingress: [{}]}"]);
    check(&c, Tcp, 80, |_, _| true);
}

#[test]
fn t05_deny_all_egress() {
    let c = with(&[
        "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Egress]}",
    ]);
    check(&c, Tcp, 80, |f, _| ns(f) != "x");
    check(&c, Udp, 80, |f, _| ns(f) != "x");
}

#[test]
fn t06_deny_all_both_directions() {
    let c = with(&[
        "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}",
    ]);
    check(&c, Tcp, 80, |f, t| ns(f) != "x" && ns(t) != "x");
}

#[test]
fn t07_absent_policy_types_with_egress_section_isolates_both() {
    // egress: [{}] allows all egress; ingress is isolated by default with no rules.
    let c = with(&["metadata: {name: d, namespace: x}\nspec: {podSelector: {}, egress: [{}]}"]);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
}

#[test]
fn t08_explicit_egress_type_ignores_ingress_rules() {
    let c = with(&[
        "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Egress], ingress: [{}]}",
    ]);
    check(&c, Tcp, 80, |f, _| ns(f) != "x");
}

#[test]
fn t09_explicit_ingress_type_ignores_egress_rules() {
    let c = with(&[
        "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress], egress: []}",
    ]);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
}

#[test]
fn t10_pod_selector_peer_is_same_namespace_only() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| t != "x/a" || f == "x/b");
}

#[test]
fn t11_namespace_selector_peer() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| t != "x/a" || ns(f) == "y");
}

#[test]
fn t12_empty_namespace_selector_is_all_namespaces() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {}}]}]",
    ]);
    check(&c, Tcp, 80, |_, _| true);
}

#[test]
fn t13_empty_pod_selector_peer_is_own_namespace() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {}}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| ns(t) != "x" || ns(f) == "x");
}

#[test]
fn t14_namespace_and_pod_selector_in_one_peer_is_and() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n      podSelector: {matchLabels: {pod: b}}",
    ]);
    check(&c, Tcp, 80, |f, t| t != "x/a" || f == "y/b");
}

#[test]
fn t15_two_peers_are_or() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n    - podSelector: {matchLabels: {pod: b}}",
    ]);
    check(&c, Tcp, 80, |f, t| t != "x/a" || ns(f) == "y" || f == "x/b");
}

#[test]
fn t16_match_expressions_in_for_namespaces() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: [y, z]}]}",
    ]);
    check(&c, Tcp, 80, |f, t| ns(t) != "x" || ns(f) != "x");
}

#[test]
fn t17_match_expressions_not_in_target() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [a]}]}",
    ]);
    check(&c, Tcp, 80, |_, t| !(t == "x/b" || t == "x/c"));
}

#[test]
fn t18_match_expressions_exists() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {matchExpressions: [{key: pod, operator: Exists}]}}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| ns(t) != "x" || ns(f) == "x");
}

#[test]
fn t19_match_expressions_does_not_exist_matches_no_pod() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {matchExpressions: [{key: pod, operator: DoesNotExist}]}}]}]",
    ]);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
}

#[test]
fn t20_automatic_namespace_name_label() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| ns(t) != "x" || ns(f) == "z");
}

#[test]
fn t21_numeric_port() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 81}]}]",
    ]);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
    check(&c, Tcp, 81, |_, _| true);
    check(&c, Udp, 81, |_, t| ns(t) != "x");
}

#[test]
fn t22_udp_port() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 80, protocol: UDP}]}]",
    ]);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
    check(&c, Udp, 80, |_, _| true);
}

#[test]
fn t23_named_port_tcp() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: serve-81-tcp}]}]",
    ]);
    check(&c, Tcp, 81, |_, _| true);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
}

#[test]
fn t24_named_port_udp() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: serve-80-udp, protocol: UDP}]}]",
    ]);
    check(&c, Udp, 80, |_, _| true);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
}

#[test]
fn t25_unknown_named_port_allows_nothing() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: serve-99-tcp}]}]",
    ]);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
    check(&c, Tcp, 81, |_, t| ns(t) != "x");
}

#[test]
fn t26_named_port_with_wrong_protocol_allows_nothing() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: serve-80-tcp, protocol: UDP}]}]",
    ]);
    check(&c, Udp, 80, |_, t| ns(t) != "x");
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
}

#[test]
fn t27_end_port_range() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 81, endPort: 85}]}]",
    ]);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
    check(&c, Tcp, 81, |_, _| true);
    check(&c, Tcp, 85, |_, _| true);
    check(&c, Tcp, 86, |_, t| ns(t) != "x");
}

#[test]
fn t28_ports_without_peers_allow_all_sources() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{port: 80}]}]",
    ]);
    check(&c, Tcp, 80, |_, _| true);
    check(&c, Tcp, 81, |_, t| t != "x/a");
}

#[test]
fn t29_protocol_without_port_allows_all_ports() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{protocol: UDP}]}]",
    ]);
    check(&c, Udp, 80, |_, _| true);
    check(&c, Udp, 81, |_, _| true);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
}

#[test]
fn t30_peers_and_ports_combined() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: 80}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| t != "x/a" || ns(f) == "y");
    check(&c, Tcp, 81, |_, t| t != "x/a");
}

#[test]
fn t31_union_of_two_policies() {
    let c = with(&[
        "metadata: {name: from-y, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]",
        "metadata: {name: from-z, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| ns(t) != "x" || ns(f) != "x");
}

#[test]
fn t32_deny_all_plus_allow_is_allow() {
    let c = with(&[
        DENY_ALL_X,
        "metadata: {name: allow-b, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| {
        ns(t) != "x" || (t == "x/a" && f == "x/b")
    });
}

#[test]
fn t33_union_of_port_rules() {
    let c = with(&[
        "metadata: {name: p80, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 80}], from: [{podSelector: {}}]}]",
        "metadata: {name: p81, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 81}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| ns(t) != "x" || ns(f) == "x");
    check(&c, Tcp, 81, |_, _| true);
}

#[test]
fn t34_egress_to_pod_selector() {
    let c = with(&[
        "metadata: {name: e, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{to: [{podSelector: {matchLabels: {pod: b}}}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| f != "x/a" || t == "x/b");
}

#[test]
fn t35_egress_to_namespace_on_port() {
    let c = with(&[
        "metadata: {name: e, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: 80}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| ns(f) != "x" || ns(t) == "y");
    check(&c, Tcp, 81, |f, _| ns(f) != "x");
}

#[test]
fn t36_egress_named_port_resolves_on_destination() {
    let c = with(&[
        "metadata: {name: e, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: serve-81-tcp}]}]",
    ]);
    check(&c, Tcp, 81, |_, _| true);
    check(&c, Tcp, 80, |f, _| ns(f) != "x");
}

#[test]
fn t37_ip_block_ingress_covers_pod_ips() {
    let c = with(&[
        "metadata: {name: b, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.10.2.0/24}}, {ipBlock: {cidr: 'fd10::2:0/112'}}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| ns(t) != "x" || ns(f) == "y");
}

#[test]
fn t38_ip_block_except() {
    let c = with(&[
        "metadata: {name: b, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.10.0.0/16, except: [10.10.2.1/32]}\n    - ipBlock: {cidr: 'fd10::/64', except: ['fd10::2:1/128']}",
    ]);
    check(&c, Tcp, 80, |f, t| ns(t) != "x" || f != "y/a");
}

#[test]
fn t39_egress_ip_block_except() {
    let c = with(&[
        "metadata: {name: b, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock: {cidr: 10.10.3.0/24, except: [10.10.3.2/31]}\n    - ipBlock: {cidr: 'fd10::3:0/112', except: ['fd10::3:2/127']}",
    ]);
    check(&c, Tcp, 80, |f, t| f != "x/a" || t == "z/a");
}

#[test]
fn t40_subset_target_leaves_others_alone() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b]}]}",
    ]);
    check(&c, Tcp, 80, |_, t| t != "x/a" && t != "x/b");
}

#[test]
fn t41_policy_in_other_namespace_does_not_apply() {
    let c =
        with(&["metadata: {name: p, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: a}}"]);
    check(&c, Tcp, 80, |_, t| t != "y/a");
}

#[test]
fn t42_source_egress_denial_wins_over_destination_ingress_allow() {
    let c = with(&[
        "metadata: {name: e, namespace: x}\nspec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress]}",
        "metadata: {name: i, namespace: y}\nspec: {podSelector: {}, ingress: [{}]}",
    ]);
    check(&c, Tcp, 80, |f, _| f != "x/a");
}

#[test]
fn t43_both_sides_must_allow() {
    let c = with(&[
        "metadata: {name: e, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}]}]",
        "metadata: {name: i, namespace: y}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: a}}, namespaceSelector: {}}]}]",
    ]);
    check(&c, Tcp, 80, |f, t| {
        let egress_ok = ns(f) != "x" || ns(t) == "y";
        let ingress_ok = ns(t) != "y" || name(f) == "a";
        egress_ok && ingress_ok
    });
}

#[test]
fn t44_match_labels_and_expressions_are_anded() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {}\n      podSelector: {matchLabels: {pod: b}, matchExpressions: [{key: pod, operator: NotIn, values: [b]}]}",
    ]);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
}

#[test]
fn t45_empty_policy_types_and_empty_egress_list_isolate_ingress_only() {
    // The API server defaults on len(policyTypes) == 0 and len(egress) != 0.
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec: {podSelector: {}, policyTypes: [], egress: []}",
    ]);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
}

#[test]
fn t45b_explicit_egress_type_with_empty_egress_list_denies_egress() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], egress: [], ingress: [{}]}",
    ]);
    check(&c, Tcp, 80, |f, _| ns(f) != "x");
}

#[test]
fn t46_sctp_port() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 80, protocol: SCTP}]}]",
    ]);
    check(&c, Sctp, 80, |_, _| true);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
}

#[test]
fn t47_udp_end_port_and_mixed_protocols() {
    let c = with(&[
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 80, endPort: 81, protocol: UDP}, {port: 81}]}]",
    ]);
    check(&c, Udp, 80, |_, _| true);
    check(&c, Udp, 81, |_, _| true);
    check(&c, Tcp, 81, |_, _| true);
    check(&c, Tcp, 80, |_, t| ns(t) != "x");
}

#[test]
fn t48_egress_deny_all_in_every_namespace_with_dns_like_exception() {
    let docs: Vec<String> = NAMESPACES
        .iter()
        .map(|n| format!("metadata: {{name: e, namespace: {n}}}\nspec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress: [{{ports: [{{port: 80, protocol: UDP}}]}}]"))
        .collect();
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let c = with(&refs);
    check(&c, Udp, 80, |_, _| true);
    check(&c, Tcp, 80, |_, _| false);
}

#[test]
#[should_panic(expected = "mismatches")]
fn harness_detects_a_wrong_expectation() {
    check(&with(&[DENY_ALL_X]), Tcp, 80, |_, _| true);
}
