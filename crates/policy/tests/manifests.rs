//! Standard manifests (as in the Kubernetes documentation) in YAML and JSON.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers may fail loudly

use weft_policy::{IntOrString, NetworkPolicy, Operator, PolicyType, Protocol};

/// The example from the Kubernetes "Network Policies" concept page.
const DOCS_EXAMPLE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
  labels: {team: net}
  annotations: {note: ignored}
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
    - Ingress
    - Egress
  ingress:
    - from:
        - ipBlock:
            cidr: 172.17.0.0/16
            except:
              - 172.17.1.0/24
        - namespaceSelector:
            matchLabels:
              project: myproject
        - podSelector:
            matchLabels:
              role: frontend
      ports:
        - protocol: TCP
          port: 6379
  egress:
    - to:
        - ipBlock:
            cidr: 10.0.0.0/24
      ports:
        - protocol: TCP
          port: 5978
          endPort: 6000
status: {}
"#;

#[test]
fn docs_example_yaml() {
    let p: NetworkPolicy = serde_yaml_ng::from_str(DOCS_EXAMPLE).unwrap();
    assert_eq!(p.metadata.name, "test-network-policy");
    assert_eq!(p.namespace(), "default");
    assert_eq!(
        p.spec.policy_types,
        Some(vec![PolicyType::Ingress, PolicyType::Egress])
    );
    let ingress = p.spec.ingress.as_ref().unwrap();
    assert_eq!(ingress[0].from.len(), 3);
    assert_eq!(
        ingress[0].from[0].ip_block.as_ref().unwrap().except,
        ["172.17.1.0/24"]
    );
    assert_eq!(ingress[0].ports[0].port, Some(IntOrString::Int(6379)));
    let egress = p.spec.egress.as_ref().unwrap();
    assert_eq!(egress[0].ports[0].end_port, Some(6000));
    assert!(p.validate().is_ok());
}

#[test]
fn json_form_and_round_trip() {
    let json = r#"{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy",
      "metadata":{"name":"np","namespace":"x","uid":"123","resourceVersion":"9"},
      "spec":{"podSelector":{"matchExpressions":[{"key":"app","operator":"In","values":["a","b"]}]},
      "ingress":[{"ports":[{"port":"http","protocol":"UDP"},{"protocol":"SCTP"}]}],
      "egress":[]}}"#;
    let p: NetworkPolicy = serde_json::from_str(json).unwrap();
    let sel = &p.spec.pod_selector.match_expressions[0];
    assert_eq!(sel.operator, Operator::In);
    let ports = &p.spec.ingress.as_ref().unwrap()[0].ports;
    assert_eq!(ports[0].port, Some(IntOrString::String("http".into())));
    assert_eq!(ports[0].effective_protocol(), Protocol::Udp);
    assert_eq!(ports[1].effective_protocol(), Protocol::Sctp);
    assert_eq!(p.spec.egress, Some(vec![]));
    // Defaulting looks at len(egress): an empty list is no egress section.
    assert_eq!(p.spec.effective_policy_types(), (true, false));
    let back: NetworkPolicy = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn absent_versus_empty_is_preserved() {
    let absent: NetworkPolicy =
        serde_yaml_ng::from_str("metadata: {name: a}\nspec: {podSelector: {}}").unwrap();
    let empty: NetworkPolicy = serde_yaml_ng::from_str(
        "metadata: {name: a}\nspec: {podSelector: {}, ingress: [], egress: []}",
    )
    .unwrap();
    assert_eq!(absent.spec.ingress, None);
    assert_eq!(absent.spec.effective_policy_types(), (true, false));
    assert_eq!(empty.spec.ingress, Some(vec![]));
    assert_eq!(empty.spec.effective_policy_types(), (true, false));
    let one: NetworkPolicy =
        serde_yaml_ng::from_str("metadata: {name: a}\nspec: {egress: [{}]}").unwrap();
    assert_eq!(one.spec.effective_policy_types(), (true, true));
}

#[test]
fn unknown_enum_values_survive_parsing_for_validation() {
    let p: NetworkPolicy = serde_yaml_ng::from_str(
        "metadata: {name: a}\nspec: {policyTypes: [Both], ingress: [{ports: [{protocol: ICMP}]}]}",
    )
    .unwrap();
    assert_eq!(
        p.spec.policy_types,
        Some(vec![PolicyType::Unsupported("Both".into())])
    );
    let e = p.validate().unwrap_err();
    assert_eq!(e.errors.len(), 2);
}

#[test]
fn multi_document_stream() {
    let stream =
        format!("{DOCS_EXAMPLE}\n---\nmetadata: {{name: second, namespace: y}}\nspec: {{}}\n");
    let docs: Vec<NetworkPolicy> = serde_yaml_ng::Deserializer::from_str(&stream)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].namespace(), "y");
}
