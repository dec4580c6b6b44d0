//! One packet through the reference evaluator: allowed or denied, and which policies and
//! rules decided it (the evaluator's own reasons, with the rule text looked up).

use std::net::IpAddr;

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::{Value, json};
use weft_policy::{Cluster, Decision, Direction, Endpoint, PolicyRef, Protocol, Verdict, evaluate};

/// A traced packet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    /// Source as given.
    pub from: Endpoint,
    /// Destination as given.
    pub to: Endpoint,
    /// Protocol.
    pub protocol: Protocol,
    /// Destination port.
    pub port: u16,
    /// The evaluator's answer.
    pub verdict: Verdict,
}

/// `namespace/pod` or an IP address.
pub fn parse_endpoint(text: &str) -> Result<Endpoint> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Endpoint::Ip(ip));
    }
    match text.split_once('/') {
        Some((ns, pod)) if !ns.is_empty() && !pod.is_empty() && !pod.contains('/') => {
            Ok(Endpoint::pod(ns, pod))
        }
        _ => bail!("{text:?}: expected namespace/pod or an IP address"),
    }
}

/// `tcp`, `udp` or `sctp` (any case).
pub fn parse_protocol(text: &str) -> Result<Protocol> {
    match text.to_ascii_uppercase().as_str() {
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        "SCTP" => Ok(Protocol::Sctp),
        _ => bail!("unsupported protocol {text:?} (tcp, udp or sctp)"),
    }
}

/// Evaluates one new connection.
pub fn trace(
    cluster: &Cluster,
    from: &Endpoint,
    to: &Endpoint,
    protocol: &Protocol,
    port: u16,
) -> Result<Trace> {
    let verdict = evaluate(cluster, from, to, protocol, port)?;
    Ok(Trace {
        from: from.clone(),
        to: to.clone(),
        protocol: protocol.clone(),
        port,
        verdict,
    })
}

fn endpoint_label(cluster: &Cluster, ep: &Endpoint) -> String {
    match ep {
        Endpoint::Pod { namespace, name } => {
            let ips = cluster
                .pod(namespace, name)
                .map(|p| {
                    p.ips
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!("{namespace}/{name} ({ips})")
        }
        Endpoint::Ip(ip) => match cluster.pod_by_ip(*ip) {
            Some(p) => format!("{ip} (pod {}/{})", p.namespace, p.name),
            None => ip.to_string(),
        },
    }
}

fn protocol_name(p: &Protocol) -> String {
    String::from(p.clone())
}

/// The text of rule `rule` of `policy` for `direction`, as compact JSON.
fn rule_json(cluster: &Cluster, policy: &PolicyRef, direction: Direction, rule: usize) -> Value {
    let found = cluster
        .policies
        .iter()
        .find(|p| p.namespace() == policy.namespace && p.metadata.name == policy.name);
    let Some(p) = found else {
        return Value::Null;
    };
    let rule = match direction {
        Direction::Ingress => p
            .spec
            .ingress
            .iter()
            .flatten()
            .nth(rule)
            .and_then(|r| serde_json::to_value(r).ok()),
        Direction::Egress => p
            .spec
            .egress
            .iter()
            .flatten()
            .nth(rule)
            .and_then(|r| serde_json::to_value(r).ok()),
    };
    rule.unwrap_or(Value::Null)
}

fn decision_rule(cluster: &Cluster, d: &Decision) -> Value {
    match d {
        Decision::AllowedBy {
            direction,
            policy,
            rule,
        } => rule_json(cluster, policy, *direction, *rule),
        _ => Value::Null,
    }
}

/// Text for humans: the verdict line, then one line per reason (with the allowing rule).
pub fn render_trace(cluster: &Cluster, t: &Trace) -> String {
    let verdict = if t.verdict.allowed {
        "ALLOWED"
    } else {
        "DENIED"
    };
    let mut out = format!(
        "{} -> {} port {}/{}: {verdict}\n",
        endpoint_label(cluster, &t.from),
        endpoint_label(cluster, &t.to),
        t.port,
        protocol_name(&t.protocol)
    );
    for reason in &t.verdict.reasons {
        out.push_str(&format!("  {reason}\n"));
        let rule = decision_rule(cluster, reason);
        if !rule.is_null() {
            out.push_str(&format!("    rule: {rule}\n"));
        }
    }
    out
}

/// JSON: `{"from","to","protocol","port","allowed","reasons":[{"decision","text","rule"}]}`.
pub fn trace_json(cluster: &Cluster, t: &Trace) -> Value {
    let reasons: Vec<Value> = t
        .verdict
        .reasons
        .iter()
        .map(|r| json!({"decision": r, "text": r.to_string(), "rule": decision_rule(cluster, r)}))
        .collect();
    json!({
        "from": endpoint_label(cluster, &t.from),
        "to": endpoint_label(cluster, &t.to),
        "protocol": protocol_name(&t.protocol),
        "port": t.port,
        "allowed": t.verdict.allowed,
        "reasons": reasons,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::load::{StoreObjects, cluster_from_objects};

    fn cluster() -> Cluster {
        let pod = |ns: &str, name: &str, ip: &str| {
            (
                format!("{ns}/{name}"),
                json!({"metadata": {"name": name, "namespace": ns, "labels": {"pod": name}},
                       "spec": {"nodeName": "node1"}, "status": {"podIPs": [{"ip": ip}]}}),
            )
        };
        let objects = StoreObjects {
            pods: vec![pod("x", "a", "10.244.1.2"), pod("y", "b", "10.244.2.2")],
            policies: vec![(
                "y/allow-a".into(),
                json!({"metadata": {"name": "allow-a", "namespace": "y"},
                       "spec": {"podSelector": {}, "ingress": [
                           {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "a"}}}],
                            "ports": [{"port": 80}]}]}}),
            )],
            ..StoreObjects::default()
        };
        cluster_from_objects(&objects).cluster
    }

    #[test]
    fn parses_endpoints_and_protocols() {
        assert_eq!(parse_endpoint("x/a").unwrap(), Endpoint::pod("x", "a"));
        assert_eq!(
            parse_endpoint("10.0.0.1").unwrap(),
            Endpoint::Ip("10.0.0.1".parse().unwrap())
        );
        assert!(parse_endpoint("x").is_err());
        assert!(parse_endpoint("x/a/b").is_err());
        assert_eq!(parse_protocol("udp").unwrap(), Protocol::Udp);
        assert_eq!(parse_protocol("SCTP").unwrap(), Protocol::Sctp);
        assert!(parse_protocol("icmp").is_err());
    }

    #[test]
    fn allowed_trace_names_policy_and_rule() {
        let c = cluster();
        let t = trace(
            &c,
            &Endpoint::pod("x", "a"),
            &Endpoint::pod("y", "b"),
            &Protocol::Tcp,
            80,
        )
        .unwrap();
        let text = render_trace(&c, &t);
        assert!(text.contains("ALLOWED"), "{text}");
        assert!(
            text.contains("ingress allowed by NetworkPolicy y/allow-a, spec.ingress[0]"),
            "{text}"
        );
        assert!(text.contains("rule: {"), "{text}");
        let j = trace_json(&c, &t);
        assert_eq!(j["allowed"], true);
        assert_eq!(j["reasons"][1]["rule"]["ports"][0]["port"], 80);
    }

    #[test]
    fn denied_trace_by_ip_names_isolating_policy() {
        let c = cluster();
        let t = trace(
            &c,
            &Endpoint::Ip("10.244.1.2".parse().unwrap()),
            &Endpoint::pod("y", "b"),
            &Protocol::Udp,
            80,
        )
        .unwrap();
        assert!(!t.verdict.allowed);
        let text = render_trace(&c, &t);
        assert!(text.contains("10.244.1.2 (pod x/a)"), "{text}");
        assert!(text.contains("isolated by y/allow-a"), "{text}");
        assert!(
            trace(
                &c,
                &Endpoint::pod("q", "r"),
                &Endpoint::pod("y", "b"),
                &Protocol::Tcp,
                80
            )
            .is_err()
        );
    }
}
