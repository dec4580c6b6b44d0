//! The differential NetworkPolicy truth table on a real lab: for every case in
//! `tests/policy/cases.yaml`, `lab apply` the policies (which waits until every weftd
//! enforces them), compute the expected 9x9 matrix with the pure evaluator from the objects
//! in the lab's store, probe every ordered pod pair with real packets (IPv4 and IPv6 of a
//! dual-stack lab), and report every disagreement. Node sources and pod -> own-node
//! addresses are not probed (see `weft_policy::nft`: node traffic is allowed by design).
//!
//! Needs root and the `weftd`, `weft`, `weft-ipam` binaries next to `weftctl` (and
//! /usr/bin/etcd with `WEFT_POLICY_LAB_STORE=etcd`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use support::{Lab, SERIAL};
use weft_ctl::lab::agents::read_status;
use weft_ctl::lab::probe::{ProbeResult, probe_udp_from_port, probe_with_timeout};
use weft_ctl::lab::state::{PodState, Proto};
use weft_ctl::lab::trace::lab_cluster;
use weft_datapath::{NetnsFd, named_netns_path};
use weft_policy::{Cluster, Endpoint, Protocol, evaluate};

const FIXTURE: &str = include_str!("policy/fixture.yaml");
const CASES: &str = include_str!("policy/cases.yaml");
/// First try of every probe; a denial the evaluator did not expect is retried slower.
const FAST_TIMEOUT: Duration = Duration::from_millis(300);
const SLOW_TIMEOUT: Duration = Duration::from_millis(2000);
const PARALLEL: usize = 24;

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    probes: Vec<String>,
    #[serde(default)]
    policies: Vec<Value>,
}

#[derive(Debug, Clone, Copy)]
struct ProbeSpec {
    proto: Proto,
    port: u16,
    /// Between the pods' IPv6 addresses (dual-stack labs).
    v6: bool,
}

impl ProbeSpec {
    fn parse(text: &str) -> ProbeSpec {
        let (proto, port) = text.split_once('/').unwrap();
        ProbeSpec {
            proto: proto.parse().unwrap(),
            port: port.parse().unwrap(),
            v6: false,
        }
    }
    fn policy_protocol(self) -> Protocol {
        match self.proto {
            Proto::Tcp => Protocol::Tcp,
            Proto::Udp => Protocol::Udp,
        }
    }
}

impl std::fmt::Display for ProbeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let family = if self.v6 { " over IPv6" } else { "" };
        write!(f, "{}/{}{family}", self.proto, self.port)
    }
}

/// `${ip:x/a}` and `${subnet:node1}` replaced with the lab's addresses.
fn substitute(text: &str, pods: &[PodState], subnets: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for pod in pods {
        let ip = pod.ips.iter().find(|ip| ip.is_ipv4()).unwrap();
        out = out.replace(&format!("${{ip:{}}}", pod.key()), &ip.to_string());
    }
    for (node, subnet) in subnets {
        out = out.replace(&format!("${{subnet:{node}}}"), subnet);
    }
    let left: Vec<&str> = out
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains("${"))
        .collect();
    assert!(
        left.is_empty(),
        "unknown placeholders in cases.yaml: {left:?}"
    );
    out
}

fn manifest(policies: &[Value]) -> String {
    policies
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p["apiVersion"] = json!("networking.k8s.io/v1");
            p["kind"] = json!("NetworkPolicy");
            serde_yaml_ng::to_string(&p).unwrap()
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A UDP source port not used before in this run (below the kernel's ephemeral range, so
/// no other socket takes it): an allowed probe leaves a conntrack entry that would accept a
/// later probe on the same 4-tuple whatever the policies say by then (TCP is immune: a new
/// SYN on a closed tuple starts a new conntrack entry).
fn fresh_udp_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst) % 12_000;
    20_000 + u16::try_from(n).unwrap()
}

/// A pod's address of the family asked for.
fn address(pod: &PodState, v6: bool) -> &std::net::IpAddr {
    pod.ips.iter().find(|ip| ip.is_ipv6() == v6).unwrap()
}

/// Probes `pairs` (indices into `pods`) in parallel; `timeout` per probe.
fn probe_pairs(
    pods: &[PodState],
    pairs: &[(usize, usize)],
    spec: ProbeSpec,
    timeout: Duration,
) -> Vec<ProbeResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ProbeResult>>> = Mutex::new(vec![None; pairs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(pairs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&(from, to)) = pairs.get(i) else {
                        break;
                    };
                    let ns = NetnsFd::open(named_netns_path(&pods[from].netns)).unwrap();
                    let ip = address(&pods[to], spec.v6);
                    let target = SocketAddr::new(*ip, spec.port);
                    let r = match spec.proto {
                        Proto::Tcp => probe_with_timeout(&ns, target, spec.proto, timeout),
                        Proto::Udp => probe_udp_from_port(&ns, target, timeout, fresh_udp_port()),
                    }
                    .unwrap();
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

/// Evaluator vs kernel for one probe spec; returns readable disagreements.
fn compare(cluster: &Cluster, pods: &[PodState], spec: ProbeSpec) -> Vec<String> {
    let pairs: Vec<(usize, usize)> = (0..pods.len())
        .flat_map(|f| (0..pods.len()).map(move |t| (f, t)))
        .filter(|(f, t)| f != t)
        .collect();
    let verdicts: Vec<_> = pairs
        .iter()
        .map(|&(f, t)| {
            let ep = |p: &PodState| {
                if spec.v6 {
                    Endpoint::Ip(*address(p, true))
                } else {
                    Endpoint::pod(&p.namespace, &p.name)
                }
            };
            evaluate(
                cluster,
                &ep(&pods[f]),
                &ep(&pods[t]),
                &spec.policy_protocol(),
                spec.port,
            )
            .unwrap()
        })
        .collect();
    let mut observed = probe_pairs(pods, &pairs, spec, FAST_TIMEOUT);
    // A denial where the evaluator allows may be a slow machine: ask again, patiently.
    let retry: Vec<usize> = (0..pairs.len())
        .filter(|&i| verdicts[i].allowed && !observed[i].allowed)
        .collect();
    if !retry.is_empty() {
        let again: Vec<(usize, usize)> = retry.iter().map(|&i| pairs[i]).collect();
        for (k, r) in probe_pairs(pods, &again, spec, SLOW_TIMEOUT)
            .into_iter()
            .enumerate()
        {
            observed[retry[k]] = r;
        }
    }
    let mut lines = Vec::new();
    let mut grid = BTreeMap::new();
    for (i, &(f, t)) in pairs.iter().enumerate() {
        let (want, got) = (verdicts[i].allowed, observed[i].allowed);
        grid.insert((f, t), (want, got));
        if want != got {
            let word = |b: bool| if b { "ALLOWED" } else { "DENIED" };
            let reasons: Vec<String> = verdicts[i].reasons.iter().map(|r| r.to_string()).collect();
            lines.push(format!(
                "  {} -> {} {spec}: evaluator {} ({}), kernel {}{}",
                pods[f].key(),
                pods[t].key(),
                word(want),
                reasons.join("; "),
                word(got),
                observed[i]
                    .error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
        }
    }
    if !lines.is_empty() {
        lines.push(render_grid(pods, &grid));
    }
    lines
}

/// Rows are sources, columns targets: `.` both allow, `-` both deny, `E` only the
/// evaluator allows, `K` only the kernel allows.
fn render_grid(pods: &[PodState], grid: &BTreeMap<(usize, usize), (bool, bool)>) -> String {
    let mut out = String::from("    from\\to");
    for p in pods {
        out.push_str(&format!(" {:>4}", p.key()));
    }
    out.push('\n');
    for (f, p) in pods.iter().enumerate() {
        out.push_str(&format!("    {:<7}", p.key()));
        for t in 0..pods.len() {
            let c = match grid.get(&(f, t)) {
                None => ' ',
                Some((true, true)) => '.',
                Some((false, false)) => '-',
                Some((true, false)) => 'E',
                Some((false, true)) => 'K',
            };
            out.push_str(&format!(" {c:>4}"));
        }
        out.push('\n');
    }
    out
}

/// Every node's weftd must report policy enforcement, else every case would only prove
/// that nothing is enforced.
fn require_enforcement(lab: &Lab) {
    let paths = lab.paths();
    for node in &lab.state().nodes {
        let status = read_status(&paths, &node.name);
        let policy = status.as_ref().and_then(|s| s.policy.as_ref());
        assert!(
            policy.is_some_and(|p| p.enabled),
            "weftd on {} reports no enabled `policy` section in status.json: NetworkPolicy enforcement is missing (policy contract)",
            node.name
        );
    }
}

fn fixture_pods(lab: &Lab) -> Vec<PodState> {
    let state = lab.state();
    let mut pods = Vec::new();
    for ns in ["x", "y", "z"] {
        for p in ["a", "b", "c"] {
            pods.push(state.pod(ns, p).unwrap().clone());
        }
    }
    pods
}

fn v4_subnets(lab: &Lab) -> BTreeMap<String, String> {
    let paths = lab.paths();
    lab.state()
        .nodes
        .iter()
        .map(|n| {
            let status = read_status(&paths, &n.name).unwrap();
            let v4 = status.subnets.iter().find(|s| s.contains('.')).unwrap();
            (n.name.clone(), v4.clone())
        })
        .collect()
}

#[test]
fn policy_truth_table_matches_real_packets() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let lab = Lab::new("p");
    // The default is vxlan with the embedded store; WEFT_POLICY_LAB_BACKEND=host-gw and
    // WEFT_POLICY_LAB_STORE=etcd run the same table on the other datapath and datastore.
    let backend = std::env::var("WEFT_POLICY_LAB_BACKEND").unwrap_or_else(|_| "vxlan".into());
    let store = std::env::var("WEFT_POLICY_LAB_STORE").unwrap_or_else(|_| "embedded".into());
    // Dual stack: every probe also between the IPv6 addresses (where the IPv4 ipBlocks of
    // the cases match nothing). WEFT_POLICY_LAB_IPV6=0 probes IPv4 only.
    let ipv6 = std::env::var("WEFT_POLICY_LAB_IPV6").map_or(true, |v| v != "0");
    let mut up = vec![
        "up",
        "--nodes",
        "2",
        "--pods-per-node",
        "0",
        "--backend",
        &backend,
        "--store",
        &store,
    ];
    if ipv6 {
        up.push("--ipv6");
    }
    lab.ok(&up);
    require_enforcement(&lab);
    lab.apply("fixture.yaml", FIXTURE);
    let pods = fixture_pods(&lab);
    assert!(pods[0].node == "node1" && pods[1].node == "node2");
    let cases: Vec<Case> =
        serde_yaml_ng::from_str(&substitute(CASES, &pods, &v4_subnets(&lab))).unwrap();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    eprintln!("lab and fixture ready in {:?}", started.elapsed());
    let mut failures = Vec::new();
    for case in &cases {
        let case_started = Instant::now();
        let file = format!("case-{}.yaml", case.name);
        let yaml = manifest(&case.policies);
        if !case.policies.is_empty() {
            lab.apply(&file, &yaml);
        }
        let loaded = lab_cluster(&lab.paths()).unwrap();
        assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
        assert_eq!(loaded.cluster.policies.len(), case.policies.len());
        assert_eq!(loaded.cluster.pods.len(), 9);
        let specs: Vec<ProbeSpec> = if case.probes.is_empty() {
            vec![ProbeSpec::parse("TCP/80")]
        } else {
            case.probes.iter().map(|p| ProbeSpec::parse(p)).collect()
        };
        let specs: Vec<ProbeSpec> = specs
            .into_iter()
            .flat_map(|s| [s, ProbeSpec { v6: true, ..s }])
            .filter(|s| ipv6 || !s.v6)
            .collect();
        let mut lines = Vec::new();
        for spec in specs {
            lines.extend(compare(&loaded.cluster, &pods, spec));
        }
        if !case.policies.is_empty() {
            lab.delete(&file, &yaml);
        }
        eprintln!(
            "case {}: {} in {:?}",
            case.name,
            if lines.is_empty() { "ok" } else { "MISMATCH" },
            case_started.elapsed()
        );
        if !lines.is_empty() {
            failures.push(format!("case {}:\n{}", case.name, lines.join("\n")));
        }
    }
    eprintln!("{} cases in {:?}", cases.len(), started.elapsed());
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree with the evaluator:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
