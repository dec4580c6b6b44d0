//! Validation as the API server does it for `networking.k8s.io/v1` NetworkPolicy
//! (`pkg/apis/networking/validation`): every error names the object and the field path.

use std::fmt;
use std::ops::Deref;

use crate::ipblock::parse_cidr;
use crate::model::{
    IntOrString, IpBlock, LabelSelector, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
    Operator, PolicyType, Protocol,
};

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path in API notation, e.g. `spec.ingress[0].from[1].ipBlock.except[0]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A rejected policy: the object (`NetworkPolicy "ns/name"`) and all its invalid fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// `namespace/name` of the object.
    pub object: String,
    /// At least one entry.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetworkPolicy \"{}\" is invalid: ", self.object)?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

/// A policy that passed [`NetworkPolicy::validate`]. The evaluator and the compiler only
/// take this type, so they never see a malformed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedPolicy(NetworkPolicy);

impl Deref for ValidatedPolicy {
    type Target = NetworkPolicy;
    fn deref(&self) -> &NetworkPolicy {
        &self.0
    }
}

impl ValidatedPolicy {
    /// Gives the policy back.
    pub fn into_inner(self) -> NetworkPolicy {
        self.0
    }
}

impl TryFrom<NetworkPolicy> for ValidatedPolicy {
    type Error = ValidationError;
    fn try_from(p: NetworkPolicy) -> Result<Self, ValidationError> {
        p.validate()
    }
}

impl NetworkPolicy {
    /// Checks the policy like the API server; on success returns the typed hand-off.
    pub fn validate(self) -> Result<ValidatedPolicy, ValidationError> {
        let mut v = Collector::default();
        self.check(&mut v);
        if v.errors.is_empty() {
            Ok(ValidatedPolicy(self))
        } else {
            Err(ValidationError {
                object: format!("{}/{}", self.namespace(), self.metadata.name),
                errors: v.errors,
            })
        }
    }

    fn check(&self, v: &mut Collector) {
        if self.metadata.name.is_empty() {
            v.err("metadata.name", "Required value: name is required");
        } else if !is_dns_subdomain(&self.metadata.name) {
            v.err("metadata.name", "Invalid value: must be a DNS subdomain");
        }
        if let Some(ns) = &self.metadata.namespace
            && !is_dns_label(ns)
        {
            v.err("metadata.namespace", "Invalid value: must be a DNS label");
        }
        let spec = &self.spec;
        check_selector(v, "spec.podSelector", &spec.pod_selector);
        if let Some(types) = &spec.policy_types {
            for (i, t) in types.iter().enumerate() {
                if let PolicyType::Unsupported(s) = t {
                    v.err(
                        &format!("spec.policyTypes[{i}]"),
                        &format!(
                            "Unsupported value: \"{s}\": supported values: \"Egress\", \"Ingress\""
                        ),
                    );
                }
            }
            if types.len() > 2 {
                v.err(
                    "spec.policyTypes",
                    "Invalid value: may not specify more than two policyTypes",
                );
            }
        }
        for (i, rule) in spec.ingress.iter().flatten().enumerate() {
            let base = format!("spec.ingress[{i}]");
            check_ports(v, &base, &rule.ports);
            check_peers(v, &format!("{base}.from"), &rule.from);
        }
        for (i, rule) in spec.egress.iter().flatten().enumerate() {
            let base = format!("spec.egress[{i}]");
            check_ports(v, &base, &rule.ports);
            check_peers(v, &format!("{base}.to"), &rule.to);
        }
    }
}

#[derive(Default)]
struct Collector {
    errors: Vec<FieldError>,
}

impl Collector {
    fn err(&mut self, path: &str, message: &str) {
        self.errors.push(FieldError {
            path: path.to_string(),
            message: message.to_string(),
        });
    }
}

fn check_ports(v: &mut Collector, base: &str, ports: &[NetworkPolicyPort]) {
    for (j, port) in ports.iter().enumerate() {
        check_port(v, &format!("{base}.ports[{j}]"), port);
    }
}

fn check_port(v: &mut Collector, path: &str, port: &NetworkPolicyPort) {
    if let Some(Protocol::Unsupported(s)) = &port.protocol {
        v.err(
            &format!("{path}.protocol"),
            &format!("Unsupported value: \"{s}\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
        );
    }
    match &port.port {
        Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => v.err(
            &format!("{path}.port"),
            &format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
        ),
        Some(IntOrString::String(name)) if !is_port_name(name) => v.err(
            &format!("{path}.port"),
            &format!("Invalid value: \"{name}\": must be a valid port name (IANA_SVC_NAME)"),
        ),
        _ => {}
    }
    let Some(end) = port.end_port else { return };
    let end_path = format!("{path}.endPort");
    match &port.port {
        None => v.err(
            &end_path,
            "Required value: may not be specified when `port` is not specified",
        ),
        Some(IntOrString::String(_)) => v.err(
            &end_path,
            "Invalid value: may not be specified when `port` is non-numeric",
        ),
        Some(IntOrString::Int(start)) => {
            if i64::from(end) < *start {
                v.err(
                    &end_path,
                    &format!("Invalid value: {end}: must be greater than or equal to `port`"),
                );
            }
            if !(1..=65535).contains(&end) {
                v.err(
                    &end_path,
                    &format!("Invalid value: {end}: must be between 1 and 65535, inclusive"),
                );
            }
        }
    }
}

fn check_peers(v: &mut Collector, base: &str, peers: &[NetworkPolicyPeer]) {
    for (j, peer) in peers.iter().enumerate() {
        let path = format!("{base}[{j}]");
        let selectors = usize::from(peer.pod_selector.is_some())
            + usize::from(peer.namespace_selector.is_some());
        match (&peer.ip_block, selectors) {
            (None, 0) => v.err(&path, "Required value: must specify a peer"),
            (Some(_), n) if n > 0 => v.err(
                &path,
                "Forbidden: may not specify both ipBlock and another peer",
            ),
            _ => {}
        }
        if let Some(s) = &peer.pod_selector {
            check_selector(v, &format!("{path}.podSelector"), s);
        }
        if let Some(s) = &peer.namespace_selector {
            check_selector(v, &format!("{path}.namespaceSelector"), s);
        }
        if let Some(block) = &peer.ip_block {
            check_ip_block(v, &format!("{path}.ipBlock"), block);
        }
    }
}

fn check_ip_block(v: &mut Collector, path: &str, block: &IpBlock) {
    if block.cidr.is_empty() {
        v.err(&format!("{path}.cidr"), "Required value");
        return;
    }
    let Some(cidr) = parse_cidr(&block.cidr) else {
        v.err(
            &format!("{path}.cidr"),
            &format!("Invalid value: \"{}\": must be a valid CIDR", block.cidr),
        );
        return;
    };
    for (k, text) in block.except.iter().enumerate() {
        let except_path = format!("{path}.except[{k}]");
        match parse_cidr(text) {
            None => v.err(
                &except_path,
                &format!("Invalid value: \"{text}\": must be a valid CIDR"),
            ),
            // Kubernetes: "must be a strict subset of `cidr`".
            Some(e) if !(cidr.contains(&e.network()) && e.prefix_len() > cidr.prefix_len()) => v
                .err(
                    &except_path,
                    &format!("Invalid value: \"{text}\": must be a strict subset of `cidr`"),
                ),
            Some(_) => {}
        }
    }
}

fn check_selector(v: &mut Collector, path: &str, sel: &LabelSelector) {
    for (key, value) in &sel.match_labels {
        if !is_qualified_name(key) {
            v.err(
                &format!("{path}.matchLabels"),
                &format!("Invalid value: \"{key}\": invalid label key"),
            );
        }
        if !is_label_value(value) {
            v.err(
                &format!("{path}.matchLabels"),
                &format!("Invalid value: \"{value}\": invalid label value"),
            );
        }
    }
    for (i, req) in sel.match_expressions.iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        if !is_qualified_name(&req.key) {
            v.err(
                &format!("{p}.key"),
                &format!("Invalid value: \"{}\": invalid label key", req.key),
            );
        }
        match &req.operator {
            Operator::In | Operator::NotIn if req.values.is_empty() => v.err(
                &format!("{p}.values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            ),
            Operator::Exists | Operator::DoesNotExist if !req.values.is_empty() => v.err(
                &format!("{p}.values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            Operator::Unsupported(op) => v.err(
                &format!("{p}.operator"),
                &format!("Invalid value: \"{op}\": not a valid selector operator"),
            ),
            _ => {}
        }
        for (k, value) in req.values.iter().enumerate() {
            if !is_label_value(value) {
                v.err(
                    &format!("{p}.values[{k}]"),
                    &format!("Invalid value: \"{value}\": invalid label value"),
                );
            }
        }
    }
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// RFC 1123 label: lowercase alphanumerics and '-', alphanumeric at both ends, at most 63.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Label value: empty, or at most 63 of `[A-Za-z0-9_.-]` with alphanumerics at both ends.
pub(crate) fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

fn is_label_name(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.chars().next().is_some_and(is_alnum)
        && s.chars().last().is_some_and(is_alnum)
}

/// Label key: `[prefix/]name`, prefix a DNS subdomain.
pub(crate) fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

/// `IANA_SVC_NAME`: 1-15 of lowercase alphanumerics and '-', at least one letter, no
/// leading, trailing or doubled '-'.
pub(crate) fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_syntaxes() {
        assert!(
            is_dns_label("x-1") && !is_dns_label("-x") && !is_dns_label("X") && !is_dns_label("")
        );
        assert!(is_dns_subdomain("a.b-c.d") && !is_dns_subdomain("a..b"));
        assert!(
            is_label_value("")
                && is_label_value("A_b.c-9")
                && !is_label_value("_a")
                && !is_label_value(&"a".repeat(64))
        );
        assert!(
            is_qualified_name("kubernetes.io/metadata.name")
                && !is_qualified_name("/x")
                && !is_qualified_name("a/b/c")
        );
        assert!(
            is_port_name("http")
                && is_port_name("serve-80-tcp")
                && !is_port_name("80")
                && !is_port_name("a--b")
        );
        assert!(!is_port_name("sixteen-chars-xx") && !is_port_name("Http"));
    }
}
