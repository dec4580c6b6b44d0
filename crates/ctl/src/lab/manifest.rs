//! Kubernetes manifests for `lab apply/delete`: multi-document YAML with `Namespace`, `Pod`
//! and `NetworkPolicy` objects. Everything is validated before anything is applied; each
//! error names the object and the field.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use weft_policy::NetworkPolicy;

use super::state::{PortSpec, Proto};

/// A Namespace object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceObject {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// A Pod object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodObject {
    /// Namespace (`default` when absent).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// Ports of all containers.
    pub ports: Vec<PortSpec>,
    /// The object as written (stored in the datastore).
    pub raw: Value,
}

/// A validated NetworkPolicy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyObject {
    /// `namespace/name`.
    pub key: String,
    /// The object as written.
    pub raw: Value,
}

/// The objects of one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    /// Namespaces.
    pub namespaces: Vec<NamespaceObject>,
    /// Pods.
    pub pods: Vec<PodObject>,
    /// NetworkPolicies.
    pub policies: Vec<PolicyObject>,
}

/// One invalid field of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectError {
    /// `Pod "default/web"` or `document 3`.
    pub object: String,
    /// Field path, e.g. `spec.containers[0].ports[1].protocol`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.field, self.message)
    }
}

/// What the lab knows when validating: its nodes and existing namespaces.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Node names.
    pub nodes: Vec<String>,
    /// Namespaces that exist already (`default` always does).
    pub namespaces: Vec<String>,
    /// Check that namespaces and nodes referred to exist (off for `delete`, where they
    /// may be gone already).
    pub check_references: bool,
}

/// Parses and validates a whole file; returns every error found (nothing is applied then).
pub fn parse_manifest(text: &str, ctx: &Context) -> Result<Manifest, Vec<ObjectError>> {
    let mut manifest = Manifest::default();
    let mut errors = Vec::new();
    for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let document = format!("document {}", index + 1);
        let value = match Value::deserialize(doc) {
            Ok(Value::Null) => continue,
            Ok(v) => v,
            Err(e) => {
                errors.push(err(&document, "(yaml)", &e.to_string()));
                // The YAML stream cannot be resynchronised after a syntax error.
                break;
            }
        };
        parse_object(&value, &document, &mut manifest, &mut errors);
    }
    if ctx.check_references {
        check_references(&manifest, ctx, &mut errors);
    }
    if errors.is_empty() {
        Ok(manifest)
    } else {
        Err(errors)
    }
}

fn err(object: &str, field: &str, message: &str) -> ObjectError {
    ObjectError {
        object: object.to_string(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

fn parse_object(value: &Value, document: &str, m: &mut Manifest, errors: &mut Vec<ObjectError>) {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let object = match kind {
        "Namespace" => format!("Namespace \"{name}\""),
        "" => document.to_string(),
        other => format!("{other} \"{namespace}/{name}\""),
    };
    let before = errors.len();
    if !value.is_object() {
        errors.push(err(document, "(root)", "not a mapping"));
        return;
    }
    match kind {
        "Namespace" | "Pod" | "NetworkPolicy" => {}
        "" => return errors.push(err(&object, "kind", "missing")),
        other => {
            return errors.push(err(
                &object,
                "kind",
                &format!("unsupported kind {other:?} (Namespace, Pod or NetworkPolicy)"),
            ));
        }
    }
    check_name(name, &object, "metadata.name", errors);
    if kind != "Namespace" && value.pointer("/metadata/namespace").is_some() {
        check_name(&namespace, &object, "metadata.namespace", errors);
    }
    let labels = parse_labels(value, &object, errors);
    match kind {
        "Namespace" => m.namespaces.push(NamespaceObject {
            name: name.to_string(),
            labels,
        }),
        "Pod" => {
            let node_name = parse_node_name(value, &object, errors);
            let ports = parse_ports(value, &object, errors);
            if errors.len() == before {
                m.pods.push(PodObject {
                    namespace,
                    name: name.to_string(),
                    labels,
                    node_name,
                    ports,
                    raw: value.clone(),
                });
            }
        }
        _ => parse_policy(value, &object, m, errors),
    }
}

/// RFC 1123 label: what both namespace and (in the lab) pod names must be, since they
/// become part of a network namespace name.
fn check_name(name: &str, object: &str, field: &str, errors: &mut Vec<ObjectError>) {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        let message = if name.is_empty() {
            "required".to_string()
        } else {
            format!("{name:?} must be a lowercase RFC 1123 label (a-z, 0-9, '-', at most 63)")
        };
        errors.push(err(object, field, &message));
    }
}

fn parse_labels(
    value: &Value,
    object: &str,
    errors: &mut Vec<ObjectError>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    match value.pointer("/metadata/labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                match v.as_str() {
                    Some(s) => {
                        labels.insert(k.clone(), s.to_string());
                    }
                    None => errors.push(err(
                        object,
                        &format!("metadata.labels.{k}"),
                        "must be a string (quote numbers and booleans)",
                    )),
                }
            }
        }
        Some(_) => errors.push(err(object, "metadata.labels", "must be a mapping")),
    }
    labels
}

fn parse_node_name(value: &Value, object: &str, errors: &mut Vec<ObjectError>) -> Option<String> {
    match value.pointer("/spec/nodeName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(err(object, "spec.nodeName", "must be a string"));
            None
        }
    }
}

fn parse_ports(value: &Value, object: &str, errors: &mut Vec<ObjectError>) -> Vec<PortSpec> {
    let mut ports = Vec::new();
    let containers = match value.pointer("/spec/containers") {
        None | Some(Value::Null) => return ports,
        Some(Value::Array(c)) => c,
        Some(_) => {
            errors.push(err(object, "spec.containers", "must be a list"));
            return ports;
        }
    };
    for (ci, container) in containers.iter().enumerate() {
        let list = match container.get("ports") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(list)) => list,
            Some(_) => {
                errors.push(err(
                    object,
                    &format!("spec.containers[{ci}].ports"),
                    "must be a list",
                ));
                continue;
            }
        };
        for (pi, port) in list.iter().enumerate() {
            let field = format!("spec.containers[{ci}].ports[{pi}]");
            if let Some(spec) = parse_port(port, object, &field, errors) {
                if ports
                    .iter()
                    .any(|p: &PortSpec| p.port == spec.port && p.protocol == spec.protocol)
                {
                    errors.push(err(
                        object,
                        &format!("{field}.containerPort"),
                        &format!("duplicate {}/{}", spec.port, spec.protocol),
                    ));
                    continue;
                }
                ports.push(spec);
            }
        }
    }
    ports
}

fn parse_port(
    port: &Value,
    object: &str,
    field: &str,
    errors: &mut Vec<ObjectError>,
) -> Option<PortSpec> {
    let number = match port.get("containerPort") {
        None => {
            errors.push(err(object, &format!("{field}.containerPort"), "required"));
            return None;
        }
        Some(v) => match v
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
        {
            Some(n) => n,
            None => {
                errors.push(err(
                    object,
                    &format!("{field}.containerPort"),
                    &format!("{v} must be a number in 1..65535"),
                ));
                return None;
            }
        },
    };
    let protocol = match port.get("protocol") {
        None | Some(Value::Null) => Proto::Tcp,
        Some(Value::String(s)) if s == "TCP" => Proto::Tcp,
        Some(Value::String(s)) if s == "UDP" => Proto::Udp,
        Some(v) => {
            errors.push(err(
                object,
                &format!("{field}.protocol"),
                &format!("unsupported value {v} (TCP or UDP)"),
            ));
            return None;
        }
    };
    let name = match port.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(err(object, &format!("{field}.name"), "must be a string"));
            return None;
        }
    };
    Some(PortSpec {
        port: number,
        protocol,
        name,
    })
}

fn parse_policy(value: &Value, object: &str, m: &mut Manifest, errors: &mut Vec<ObjectError>) {
    let policy: NetworkPolicy = match serde_json::from_value(value.clone()) {
        Ok(p) => p,
        Err(e) => return errors.push(err(object, "spec", &e.to_string())),
    };
    let key = format!("{}/{}", policy.namespace(), policy.metadata.name);
    match policy.validate() {
        Ok(_) => m.policies.push(PolicyObject {
            key,
            raw: value.clone(),
        }),
        Err(e) => {
            for field in e.errors {
                errors.push(err(object, &field.path, &field.message));
            }
        }
    }
}

/// Pods and policies must live in a namespace that exists or is created by the same file;
/// pinned pods need an existing node; pod names must be unique within the file.
fn check_references(m: &Manifest, ctx: &Context, errors: &mut Vec<ObjectError>) {
    let known = |ns: &str| {
        ns == "default"
            || ctx.namespaces.iter().any(|n| n == ns)
            || m.namespaces.iter().any(|n| n.name == ns)
    };
    let mut seen = Vec::new();
    for pod in &m.pods {
        let object = format!("Pod \"{}/{}\"", pod.namespace, pod.name);
        if !known(&pod.namespace) {
            errors.push(err(
                &object,
                "metadata.namespace",
                &format!(
                    "namespace {:?} not found (add a Namespace object)",
                    pod.namespace
                ),
            ));
        }
        if let Some(node) = &pod.node_name
            && !ctx.nodes.contains(node)
        {
            errors.push(err(
                &object,
                "spec.nodeName",
                &format!("no node {node:?} (nodes: {})", ctx.nodes.join(", ")),
            ));
        }
        let key = (pod.namespace.clone(), pod.name.clone());
        if seen.contains(&key) {
            errors.push(err(&object, "metadata.name", "defined twice in this file"));
        }
        seen.push(key);
    }
    for policy in &m.policies {
        let ns = policy.key.split('/').next().unwrap_or("default");
        if !known(ns) {
            errors.push(err(
                &format!("NetworkPolicy \"{}\"", policy.key),
                "metadata.namespace",
                &format!("namespace {ns:?} not found"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            nodes: vec!["node1".into(), "node2".into()],
            namespaces: vec![],
            check_references: true,
        }
    }

    const GOOD: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: blue}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations: {ignored: "yes"}
spec:
  nodeName: node2
  restartPolicy: Always
  containers:
  - name: c
    image: nginx
    ports:
    - containerPort: 80
      name: http
    - containerPort: 53
      protocol: UDP
---
kind: Pod
metadata: {name: db}
spec:
  containers: [{name: c}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"#;

    #[test]
    fn parses_namespaces_pods_policies_ignoring_unknown_fields() {
        let m = parse_manifest(GOOD, &ctx()).unwrap();
        assert_eq!(m.namespaces[0].name, "shop");
        assert_eq!(m.namespaces[0].labels["team"], "blue");
        let web = &m.pods[0];
        assert_eq!((web.namespace.as_str(), web.name.as_str()), ("shop", "web"));
        assert_eq!(web.node_name.as_deref(), Some("node2"));
        assert_eq!(web.ports.len(), 2);
        assert_eq!(web.ports[0].name.as_deref(), Some("http"));
        assert_eq!(web.ports[1].protocol, Proto::Udp);
        assert_eq!(m.pods[1].namespace, "default");
        assert_eq!(m.pods[1].node_name, None);
        assert_eq!(m.policies[0].key, "shop/deny");
    }

    #[test]
    fn errors_name_object_and_field_and_nothing_is_returned() {
        let bad = GOOD
            .replace("protocol: UDP", "protocol: SCTP")
            .replace("nodeName: node2", "nodeName: node9");
        let errors = parse_manifest(&bad, &ctx()).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|e| e.starts_with(
                "Pod \"shop/web\": spec.containers[0].ports[1].protocol: unsupported value \"SCTP\""
            )),
            "{text:?}"
        );
        // The node check runs on pods whose own fields parsed; web failed, so only its port error.
        assert_eq!(errors.len(), 1, "{text:?}");
    }

    #[test]
    fn reports_every_invalid_object() {
        let bad = r#"
kind: Pod
metadata: {name: Bad_Name, labels: {tier: 3}}
---
kind: Pod
metadata: {name: p2, namespace: nowhere}
spec: {nodeName: node7, containers: [{ports: [{containerPort: 70000}]}]}
---
kind: Pod
metadata: {name: p3}
spec: {nodeName: node7}
---
kind: Service
metadata: {name: s}
---
kind: NetworkPolicy
metadata: {name: np}
spec: {policyTypes: [Sideways]}
"#;
        let errors = parse_manifest(bad, &ctx()).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let has = |needle: &str| text.iter().any(|e| e.contains(needle));
        assert!(has("Pod \"default/Bad_Name\": metadata.name:"), "{text:?}");
        assert!(
            has("Pod \"default/Bad_Name\": metadata.labels.tier: must be a string"),
            "{text:?}"
        );
        assert!(
            has("Pod \"nowhere/p2\": spec.containers[0].ports[0].containerPort: 70000"),
            "{text:?}"
        );
        assert!(
            has("Pod \"default/p3\": spec.nodeName: no node \"node7\""),
            "{text:?}"
        );
        assert!(
            has("Service \"default/s\": kind: unsupported kind"),
            "{text:?}"
        );
        assert!(
            has("NetworkPolicy \"default/np\": spec.policyTypes[0]"),
            "{text:?}"
        );
    }

    #[test]
    fn namespace_must_exist_or_be_in_the_file() {
        let pod = "kind: Pod\nmetadata: {name: a, namespace: team}\n";
        let e = parse_manifest(pod, &ctx()).unwrap_err();
        assert_eq!(e[0].field, "metadata.namespace");
        let ctx = Context {
            namespaces: vec!["team".into()],
            ..ctx()
        };
        assert!(parse_manifest(pod, &ctx).is_ok());
        let for_delete = Context {
            check_references: false,
            ..Context::default()
        };
        assert!(parse_manifest(pod, &for_delete).is_ok());
    }

    #[test]
    fn yaml_syntax_error_is_reported() {
        let e = parse_manifest("kind: Pod\nmetadata: [\n", &ctx()).unwrap_err();
        assert_eq!(e[0].object, "document 1");
    }
}
