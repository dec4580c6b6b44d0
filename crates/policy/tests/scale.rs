//! Scale: compile time and table shape with many pods and policies. Size via
//! `WEFT_POLICY_SCALE` (default 200 pods and 200 policies so CI stays fast; the issue's
//! benchmark uses 1000). `WEFT_POLICY_DUMP=<file>` writes the rendered table for timing `nft -f`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers may fail loudly

use std::collections::BTreeMap;
use std::time::Instant;

use weft_policy::nft::compile;
use weft_policy::{Cluster, ContainerPort, Namespace, NetworkPolicy, Node, Pod, Protocol};

fn big_cluster(n: usize) -> Cluster {
    let mut c = Cluster::default();
    for ns in 0..10 {
        c.namespaces.push(Namespace::new(
            &format!("ns{ns}"),
            BTreeMap::from([("team".into(), format!("t{}", ns % 3))]),
        ));
    }
    for i in 0..n {
        c.pods.push(Pod {
            namespace: format!("ns{}", i % 10),
            name: format!("pod{i}"),
            labels: BTreeMap::from([
                ("app".into(), format!("app{}", i % 50)),
                ("tier".into(), format!("tier{}", i % 4)),
            ]),
            ips: vec![
                format!("10.{}.{}.{}", 20 + i / 65536, (i / 256) % 256, i % 256)
                    .parse()
                    .unwrap(),
                format!("fd20::{i:x}").parse().unwrap(),
            ],
            node: format!("node{}", i % 10),
            ports: vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8000 + (i % 3) as u16,
                protocol: Protocol::Tcp,
            }],
        });
    }
    c.nodes = (0..10)
        .map(|k| Node {
            name: format!("node{k}"),
            ips: vec![format!("10.0.0.{}", k + 1).parse().unwrap()],
        })
        .collect();
    for p in 0..n {
        let yaml = format!(
            "metadata: {{name: p{p}, namespace: ns{ns}}}\nspec:\n  podSelector: {{matchLabels: {{app: app{app}}}}}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - from:\n    - namespaceSelector: {{matchLabels: {{team: t{team}}}}}\n      podSelector: {{matchExpressions: [{{key: tier, operator: In, values: [tier{tier}]}}]}}\n    - ipBlock: {{cidr: 172.16.0.0/12, except: [172.16.{p3}.0/24]}}\n    ports: [{{port: http}}, {{port: 9000, endPort: 9100}}]\n  egress:\n  - to: [{{podSelector: {{matchLabels: {{tier: tier{tier}}}}}}}]\n    ports: [{{port: http}}, {{port: 53, protocol: UDP}}]",
            ns = p % 10,
            app = p % 50,
            team = p % 3,
            tier = p % 4,
            p3 = p % 256,
        );
        let np: NetworkPolicy = serde_yaml_ng::from_str(&yaml).unwrap();
        c.policies.push(np.validate().unwrap());
    }
    c
}

#[test]
fn compile_at_scale() {
    let n: usize = std::env::var("WEFT_POLICY_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let c = big_cluster(n);
    let start = Instant::now();
    let rs = compile(&c, "node0");
    let compiled = start.elapsed();
    let text = rs.render();
    eprintln!(
        "{n} pods, {n} policies: compile {:?}, render {:?}, {} sets, {} chains, {} bytes",
        compiled,
        start.elapsed() - compiled,
        rs.sets.len(),
        rs.chains.len(),
        text.len()
    );
    if let Some(path) = std::env::var_os("WEFT_POLICY_DUMP") {
        std::fs::write(path, &text).unwrap();
    }
    // Pods with equal labels and ports share chains: far fewer chains than pods.
    assert!(rs.chains.len() <= 2 * 50 + 2, "{} chains", rs.chains.len());
}
