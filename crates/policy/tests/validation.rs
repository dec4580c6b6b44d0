//! Validation: malformed policies are rejected naming the object and the field path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers may fail loudly

use weft_policy::{NetworkPolicy, ValidationError};

fn reject(yaml: &str) -> ValidationError {
    let p: NetworkPolicy = serde_yaml_ng::from_str(yaml).unwrap();
    p.validate().unwrap_err()
}

fn paths(e: &ValidationError) -> Vec<&str> {
    e.errors.iter().map(|f| f.path.as_str()).collect()
}

const HEAD: &str = "metadata: {name: bad, namespace: x}\nspec:\n  podSelector: {}\n";

#[test]
fn ip_block_with_selector() {
    let e = reject(&format!(
        "{HEAD}  ingress: [{{from: [{{ipBlock: {{cidr: 10.0.0.0/8}}, podSelector: {{}}}}]}}]"
    ));
    assert_eq!(e.object, "x/bad");
    assert_eq!(paths(&e), ["spec.ingress[0].from[0]"]);
    let text = e.to_string();
    assert!(
        text.starts_with("NetworkPolicy \"x/bad\" is invalid: spec.ingress[0].from[0]: Forbidden"),
        "{text}"
    );
}

#[test]
fn empty_peer() {
    let e = reject(&format!("{HEAD}  egress: [{{to: [{{}}]}}]"));
    assert_eq!(paths(&e), ["spec.egress[0].to[0]"]);
}

#[test]
fn except_outside_cidr_or_equal() {
    let e = reject(&format!(
        "{HEAD}  ingress: [{{from: [{{ipBlock: {{cidr: 10.0.0.0/16, except: [10.1.0.0/24, 10.0.0.0/16, '::/0', 10.0.1.0/24]}}}}]}}]"
    ));
    assert_eq!(
        paths(&e),
        [
            "spec.ingress[0].from[0].ipBlock.except[0]",
            "spec.ingress[0].from[0].ipBlock.except[1]",
            "spec.ingress[0].from[0].ipBlock.except[2]"
        ]
    );
}

#[test]
fn invalid_cidrs() {
    for cidr in ["10.0.0.0", "10.0.0.0/33", "nonsense", "fd00::/129", "''"] {
        let e = reject(&format!(
            "{HEAD}  ingress: [{{from: [{{ipBlock: {{cidr: {cidr}}}}}]}}]"
        ));
        assert_eq!(
            paths(&e),
            ["spec.ingress[0].from[0].ipBlock.cidr"],
            "{cidr}"
        );
    }
    let e = reject(&format!(
        "{HEAD}  ingress: [{{from: [{{ipBlock: {{cidr: 10.0.0.0/8, except: [bad]}}}}]}}]"
    ));
    assert_eq!(paths(&e), ["spec.ingress[0].from[0].ipBlock.except[0]"]);
}

#[test]
fn end_port_rules() {
    let e = reject(&format!(
        "{HEAD}  ingress: [{{ports: [{{endPort: 90}}, {{port: http, endPort: 90}}, {{port: 100, endPort: 90}}, {{port: 80, endPort: 70000}}]}}]"
    ));
    assert_eq!(
        paths(&e),
        [
            "spec.ingress[0].ports[0].endPort",
            "spec.ingress[0].ports[1].endPort",
            "spec.ingress[0].ports[2].endPort",
            "spec.ingress[0].ports[3].endPort"
        ]
    );
}

#[test]
fn bad_ports_and_protocols() {
    let e = reject(&format!(
        "{HEAD}  egress: [{{ports: [{{port: 0}}, {{port: 65536}}, {{port: '80'}}, {{port: Http}}, {{port: a--b}}, {{port: 80, protocol: ICMP}}]}}]"
    ));
    assert_eq!(
        paths(&e),
        [
            "spec.egress[0].ports[0].port",
            "spec.egress[0].ports[1].port",
            "spec.egress[0].ports[2].port",
            "spec.egress[0].ports[3].port",
            "spec.egress[0].ports[4].port",
            "spec.egress[0].ports[5].protocol"
        ]
    );
}

#[test]
fn operator_and_values_combinations() {
    let e = reject(
        "metadata: {name: bad, namespace: x}\nspec:\n  podSelector:\n    matchExpressions:\n    - {key: a, operator: In}\n    - {key: a, operator: NotIn, values: []}\n    - {key: a, operator: Exists, values: [x]}\n    - {key: a, operator: DoesNotExist, values: [x]}\n    - {key: a, operator: Equals, values: [x]}\n    - {key: a}\n    - {key: 'bad key', operator: Exists}\n",
    );
    assert_eq!(
        paths(&e),
        [
            "spec.podSelector.matchExpressions[0].values",
            "spec.podSelector.matchExpressions[1].values",
            "spec.podSelector.matchExpressions[2].values",
            "spec.podSelector.matchExpressions[3].values",
            "spec.podSelector.matchExpressions[4].operator",
            "spec.podSelector.matchExpressions[5].operator",
            "spec.podSelector.matchExpressions[6].key"
        ]
    );
}

#[test]
fn bad_labels_in_peer_selectors() {
    let e = reject(&format!(
        "{HEAD}  ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{'-x': 'y'}}}}, podSelector: {{matchLabels: {{ok: 'bad value!'}}}}}}]}}]"
    ));
    assert_eq!(
        paths(&e),
        [
            "spec.ingress[0].from[0].podSelector.matchLabels",
            "spec.ingress[0].from[0].namespaceSelector.matchLabels"
        ]
    );
}

#[test]
fn policy_types_and_metadata() {
    let e = reject(
        "metadata: {name: Bad_Name}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress, Sideways]}",
    );
    assert_eq!(e.object, "default/Bad_Name");
    assert_eq!(
        paths(&e),
        ["metadata.name", "spec.policyTypes[2]", "spec.policyTypes"]
    );
    let e = reject("metadata: {namespace: x}\nspec: {}");
    assert_eq!(paths(&e), ["metadata.name"]);
}

#[test]
fn valid_corner_cases_pass() {
    for yaml in [
        "metadata: {name: ok}\nspec: {}",
        "metadata: {name: ok.dotted, namespace: x}\nspec: {podSelector: {matchLabels: {example.com/tier: ''}}, policyTypes: [Egress, Egress]}",
        "metadata: {name: ok}\nspec: {ingress: [{from: [{ipBlock: {cidr: 10.0.0.1/24, except: [10.0.0.128/25]}}], ports: [{port: 1, endPort: 65535}, {port: serve-80-tcp}]}]}",
        "metadata: {name: ok}\nspec: {egress: [{to: [{namespaceSelector: {}, podSelector: {}}], ports: [{protocol: SCTP}]}]}",
    ] {
        let p: NetworkPolicy = serde_yaml_ng::from_str(yaml).unwrap();
        assert!(p.validate().is_ok(), "{yaml}");
    }
}
