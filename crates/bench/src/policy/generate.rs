//! A synthetic but realistic cluster: namespaces, pods and NetworkPolicies as the API server
//! serves them (JSON), so the same objects can be compiled in-process or written to weftd's
//! datastore.
//!
//! The mix (per namespace, repeating): label selectors within the namespace, selectors
//! across namespaces (`namespaceSelector` by team/env, by `kubernetes.io/metadata.name`,
//! with `matchExpressions`), `ipBlock` with `except`, numeric, named and ranged ports,
//! ingress and egress, one default-deny per namespace. Plus a namespace `bench` with three
//! pods the traffic test really runs (client, server, intruder) and three policies: deny all
//! in `bench`, server ingress from the client, client egress to the server.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

/// Store kinds, as weftd watches them.
pub const NAMESPACES: &str = "namespaces";
/// Pods kind.
pub const PODS: &str = "pods";
/// NetworkPolicies kind.
pub const POLICIES: &str = "networkpolicies";

/// The traffic test's namespace and its pods' addresses (on the measured node).
pub const BENCH_NS: &str = "bench";
/// The client pod's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 250, 2);
/// The server pod's address.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 250, 3);
/// A pod no policy lets reach the server.
pub const INTRUDER_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 250, 4);

const TEAMS: usize = 5;
const APPS: usize = 25;
const TIERS: [&str; 4] = ["web", "api", "db", "cache"];

/// One object: store kind, key (`<namespace>/<name>` or `<name>`), JSON.
#[derive(Debug, Clone)]
pub struct Object {
    /// Store kind.
    pub kind: &'static str,
    /// Store key.
    pub key: String,
    /// The object.
    pub value: Value,
}

/// Shape of the generated cluster.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Pods in total (including the three bench pods).
    pub pods: usize,
    /// Policies in total (including the three bench policies).
    pub policies: usize,
    /// Namespaces besides `bench`.
    pub namespaces: usize,
    /// Nodes the generated pods are spread over (`node1` ... ); bench pods are on `node1`.
    pub nodes: usize,
}

/// The generated objects: namespaces first, then pods, then policies.
pub fn cluster(shape: Shape) -> Vec<Object> {
    let mut out = Vec::new();
    let namespaces = shape.namespaces.max(1);
    for n in 0..namespaces {
        out.push(namespace(&ns_name(n), n));
    }
    out.push(namespace(BENCH_NS, 0));
    for i in 0..shape.pods.saturating_sub(3) {
        out.push(pod(i, namespaces, shape.nodes.max(1)));
    }
    for (name, role, ip) in [
        ("client", "client", CLIENT_IP),
        ("server", "server", SERVER_IP),
        ("intruder", "intruder", INTRUDER_IP),
    ] {
        out.push(bench_pod(name, role, ip));
    }
    for j in 0..shape.policies.saturating_sub(3) {
        let ns = j % namespaces;
        out.push(policy(&ns_name(ns), j / namespaces, j, namespaces));
    }
    out.extend(bench_policies());
    out
}

fn ns_name(n: usize) -> String {
    format!("ns{n}")
}

fn namespace(name: &str, n: usize) -> Object {
    Object {
        kind: NAMESPACES,
        key: name.to_string(),
        value: json!({"metadata": {"name": name, "labels": {
            "team": format!("team{}", n % TEAMS),
            "env": if n.is_multiple_of(2) { "prod" } else { "staging" },
        }}}),
    }
}

/// Address of generated pod `i`: 10.244.0.0/16 minus the bench block 10.244.250.0/24.
pub fn pod_ip(i: usize) -> Ipv4Addr {
    let hi = u8::try_from((i / 200) % 250).unwrap_or(0);
    let lo = u8::try_from(i % 200 + 10).unwrap_or(10);
    Ipv4Addr::new(10, 244, hi, lo)
}

/// Labels of generated pod `i` (its app label is what label-change tests flip).
pub fn pod_labels(i: usize, app: usize) -> Value {
    json!({
        "app": format!("app{}", app % APPS),
        "tier": TIERS[i % TIERS.len()],
        "version": format!("v{}", i % 3),
    })
}

/// The `app` index generated pod `i` starts with.
pub fn pod_app(i: usize) -> usize {
    (i / 2) % APPS
}

/// Generated pod `i` as an API object (`labels` override the generated ones).
pub fn pod_object(i: usize, namespaces: usize, nodes: usize, labels: Value) -> Object {
    let ns = ns_name(i % namespaces);
    let name = format!("pod{i}");
    Object {
        kind: PODS,
        key: format!("{ns}/{name}"),
        value: json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {
                "nodeName": format!("node{}", i % nodes + 1),
                "containers": [{"name": "main", "ports": [
                    {"name": "http", "containerPort": 8080},
                    {"name": "metrics", "containerPort": 9090},
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                ]}]
            },
            "status": {"podIP": pod_ip(i).to_string(), "podIPs": [{"ip": pod_ip(i).to_string()}]}
        }),
    }
}

fn pod(i: usize, namespaces: usize, nodes: usize) -> Object {
    pod_object(i, namespaces, nodes, pod_labels(i, pod_app(i)))
}

fn bench_pod(name: &str, role: &str, ip: Ipv4Addr) -> Object {
    Object {
        kind: PODS,
        key: format!("{BENCH_NS}/{name}"),
        value: json!({
            "metadata": {"name": name, "namespace": BENCH_NS,
                         "labels": {"role": role, "app": "app0", "tier": "web"}},
            "spec": {"nodeName": "node1", "containers": [{"name": "main",
                     "ports": [{"name": "iperf", "containerPort": 5201}]}]},
            "status": {"podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}]}
        }),
    }
}

fn bench_policies() -> Vec<Object> {
    let meta = |name: &str| json!({"name": name, "namespace": BENCH_NS});
    let role = |r: &str| json!({"matchLabels": {"role": r}});
    [
        json!({"metadata": meta("deny-all"), "spec": {"podSelector": {},
               "policyTypes": ["Ingress", "Egress"]}}),
        json!({"metadata": meta("server-from-client"), "spec": {"podSelector": role("server"),
               "ingress": [{"from": [{"podSelector": role("client")}]}]}}),
        json!({"metadata": meta("client-to-server"), "spec": {"podSelector": role("client"),
               "policyTypes": ["Egress"],
               "egress": [{"to": [{"podSelector": role("server")}]}]}}),
    ]
    .into_iter()
    .map(|value| policy_object(BENCH_NS, &value))
    .collect()
}

fn policy_object(ns: &str, value: &Value) -> Object {
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    Object {
        kind: POLICIES,
        key: format!("{ns}/{name}"),
        value: value.clone(),
    }
}

fn app(k: usize) -> Value {
    json!({"matchLabels": {"app": format!("app{}", k % APPS)}})
}

fn tcp(port: u16) -> Value {
    json!({"protocol": "TCP", "port": port})
}

/// Policy `j` (the `nth` in its namespace); `variant` shifts the port so that a policy
/// change is a real change.
pub fn policy_spec(nth: usize, j: usize, namespaces: usize, variant: u16) -> Value {
    let target = app(j);
    let peer_app = app(j * 7 + 3);
    let other_ns = format!("ns{}", (j + 1) % namespaces);
    // The kind varies within a namespace and across namespaces.
    match (nth, (nth + j) % 10) {
        (0, _) => json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        (_, 0) => json!({"podSelector": target, "ingress": [{
            "from": [{"podSelector": {"matchLabels": {"tier": "web"}}}],
            "ports": [tcp(8080 + variant)]}]}),
        (_, 1) => json!({"podSelector": target, "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {"team": format!("team{}", j % TEAMS)}},
                      "podSelector": {"matchLabels": {"tier": "api"}}}],
            "ports": [{"protocol": "TCP", "port": "http"}, tcp(8000 + variant)]}]}),
        (_, 2) => json!({"podSelector": {"matchLabels": {"tier": "db"}}, "ingress": [{
            "from": [{"podSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                "values": [format!("app{}", j % APPS), format!("app{}", (j + 5) % APPS)]}]}}],
            "ports": [tcp(5432 + variant)]}]}),
        (_, 3) => json!({"podSelector": target, "ingress": [{
            "from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                "except": [format!("10.244.{}.0/24", j % 200), "10.96.0.0/12"]}}],
            "ports": [tcp(443 + variant)]}]}),
        (_, 4) => json!({"podSelector": target, "policyTypes": ["Egress"], "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, tcp(53 + variant)]}]}),
        (_, 5) => json!({"podSelector": target, "policyTypes": ["Egress"], "egress": [{
            "to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                "except": ["169.254.169.254/32", "10.0.0.0/8"]}}],
            "ports": [tcp(443 + variant)]}]}),
        (_, 6) => json!({"podSelector": {"matchExpressions": [
                {"key": "tier", "operator": "NotIn", "values": ["db"]},
                {"key": "app", "operator": "Exists"}]},
            "ingress": [{"from": [{"namespaceSelector": {}}],
                "ports": [{"protocol": "TCP", "port": 9000 + variant, "endPort": 9100}]}]}),
        (_, 7) => json!({"podSelector": target, "ingress": [{
            "from": [{"namespaceSelector": {"matchExpressions": [
                        {"key": "env", "operator": "In", "values": ["prod"]}]},
                      "podSelector": peer_app}],
            "ports": [tcp(80 + variant), tcp(8443)]}]}),
        (_, 8) => json!({"podSelector": target, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
            "egress": [{"to": [{"podSelector": peer_app}, {"ipBlock": {"cidr": "172.16.0.0/12"}}],
                        "ports": [tcp(8080 + variant)]}]}),
        _ => json!({"podSelector": target, "ingress": [{
            "from": [{"ipBlock": {"cidr": "192.168.0.0/16"}},
                     {"namespaceSelector": {"matchLabels":
                         {"kubernetes.io/metadata.name": other_ns}},
                      "podSelector": {"matchLabels": {"tier": "api"}}}],
            "ports": [{"protocol": "TCP", "port": "metrics"}, tcp(9100 + variant)]}]}),
    }
}

/// Policy `j` as an API object.
pub fn policy_with(ns: &str, nth: usize, j: usize, namespaces: usize, variant: u16) -> Object {
    policy_object(
        ns,
        &json!({
            "metadata": {"name": format!("np{j}"), "namespace": ns},
            "spec": policy_spec(nth, j, namespaces, variant),
        }),
    )
}

fn policy(ns: &str, nth: usize, j: usize, namespaces: usize) -> Object {
    policy_with(ns, nth, j, namespaces, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_policy::k8s::{namespace_from_object, pod_from_object, policy_from_object};

    #[test]
    fn every_generated_object_is_valid() {
        let objects = cluster(Shape {
            pods: 1000,
            policies: 1000,
            namespaces: 20,
            nodes: 1,
        });
        let count = |kind| objects.iter().filter(|o| o.kind == kind).count();
        assert_eq!(count(PODS), 1000);
        assert_eq!(count(POLICIES), 1000);
        assert_eq!(count(NAMESPACES), 21);
        for o in &objects {
            match o.kind {
                NAMESPACES => {
                    namespace_from_object(&o.key, &o.value).unwrap();
                }
                PODS => {
                    assert_eq!(pod_from_object(&o.key, &o.value).unwrap().ips.len(), 1);
                }
                _ => {
                    policy_from_object(&o.key, &o.value).unwrap();
                }
            }
        }
        let mut keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), objects.len(), "keys are unique");
    }

    #[test]
    fn pod_addresses_are_unique_and_avoid_the_bench_block() {
        let mut ips: Vec<Ipv4Addr> = (0..5000).map(pod_ip).collect();
        assert!(ips.iter().all(|ip| ip.octets()[2] != 250));
        ips.sort_unstable();
        ips.dedup();
        assert_eq!(ips.len(), 5000);
    }
}
