//! Concurrency and crash safety: 64 pods ADDed by 8 workers at once, and ADDs killed with
//! SIGKILL at random instants followed by DEL or GC.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers fail loudly

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use weft_runtime::Attachment;
use weft_testns::TestNs;

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

fn all_ips(results: &[&Value]) -> Vec<String> {
    results
        .iter()
        .flat_map(|r| (0..r["ips"].as_array().map_or(0, Vec::len)).map(|i| ip_of(r, i)))
        .collect()
}

#[test]
fn sixty_four_pods_by_eight_workers() {
    let node = Node::new("conc");
    let l = weft_list(
        "1.0.0",
        "conc",
        &node.data_dir(),
        dual_ranges(),
        json!({"ipMasq": true}),
    );
    let pods: Vec<(TestNs, Attachment, Value)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (node, l) = (&node, &l);
                s.spawn(move || {
                    (0..8)
                        .map(|i| {
                            let cid = format!("conc{w}x{i}");
                            let pod = netns(&cid);
                            let att = pod_att(&cid, &pod);
                            let res = node
                                .rt
                                .add(l, &att)
                                .unwrap_or_else(|e| panic!("ADD {cid}: {e}"));
                            (pod, att, res)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let ips = all_ips(&pods.iter().map(|p| &p.2).collect::<Vec<_>>());
    let unique: HashSet<&String> = ips.iter().collect();
    assert_eq!(ips.len(), 128);
    assert_eq!(unique.len(), 128, "an address was handed out twice");
    assert_eq!(node.reservations("conc").len(), 128);
    assert_eq!(node.host_veths().len(), 64);
    assert_eq!(node.masq_elements().len(), 128);

    std::thread::scope(|s| {
        for chunk in pods.chunks(8) {
            let (node, l) = (&node, &l);
            s.spawn(move || {
                for (_, att, _) in chunk {
                    node.rt.del(l, att).unwrap_or_else(|e| panic!("DEL: {e}"));
                }
            });
        }
    });
    assert_eq!(node.reservations("conc"), vec![]);
    assert_eq!(node.host_veths(), Vec::<String>::new());
    assert_eq!(node.masq_elements(), Vec::<String>::new());
}

/// xorshift64: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Starts `weft <verb>` inside the node namespace and SIGKILLs it after `delay`; returns
/// whether the kill landed before the plugin exited.
fn killed_call(node: &Node, verb: &str, att: &Attachment, stdin: &Value, delay: Duration) -> bool {
    let path = format!("{}:{REF_DIR}", bin_dir().display());
    let env = [
        ("CNI_COMMAND", verb),
        ("CNI_CONTAINERID", att.container_id.as_str()),
        ("CNI_NETNS", att.netns.as_str()),
        ("CNI_IFNAME", att.ifname.as_str()),
        ("CNI_PATH", path.as_str()),
        ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    ];
    let stdin = stdin.to_string();
    node.ns.run(|| {
        let mut child = Command::new(WEFT)
            .env_clear()
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn weft");
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes());
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().expect("wait").code().is_none()
    })
}

/// The node holds exactly what the live pods hold: reservations, veths, masquerade.
fn assert_only_live(node: &Node, network: &str, live: &[(TestNs, Attachment, Value)], ctx: &str) {
    let mut want = all_ips(&live.iter().map(|p| &p.2).collect::<Vec<_>>());
    want.sort();
    let mut held: Vec<String> = node
        .reservations(network)
        .iter()
        .map(|(ip, _)| ip.to_string())
        .collect();
    held.sort();
    assert_eq!(held, want, "{ctx}: reservations");
    assert_eq!(
        node.host_veths().len(),
        live.len(),
        "{ctx}: host veths {:?}",
        node.host_veths()
    );
    let mut elems = node.masq_elements();
    elems.sort();
    assert_eq!(elems, want, "{ctx}: masquerade elements");
}

/// Adds a pod to the live set after checking no other live pod holds its addresses; keeps
/// at most four live pods (DELs the oldest) so the small pool is reused all the time.
fn admit(
    node: &Node,
    list: &Value,
    live: &mut Vec<(TestNs, Attachment, Value)>,
    pod: (TestNs, Attachment, Value),
    ctx: &str,
) {
    let taken: HashSet<String> = all_ips(&live.iter().map(|p| &p.2).collect::<Vec<_>>())
        .into_iter()
        .collect();
    for ip in all_ips(&[&pod.2]) {
        assert!(
            !taken.contains(&ip),
            "{ctx}: {ip} given to a second live pod"
        );
    }
    live.push(pod);
    if live.len() > 4 {
        let (_pod, att, _) = live.remove(0);
        node.rt
            .del(list, &att)
            .unwrap_or_else(|e| panic!("{ctx}: DEL oldest: {e}"));
    }
    assert_only_live(node, "kill", live, ctx);
}

#[test]
fn sigkill_during_add_then_del_gc_or_retry_leaves_nothing() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let node = Node::new("kill");
    let ranges = json!([[{"subnet": "10.60.0.0/28"}], [{"subnet": "fd60::/124"}]]);
    let l = weft_list(
        "1.1.0",
        "kill",
        &node.data_dir(),
        ranges,
        json!({"ipMasq": true}),
    );
    // Kill instants cover the whole ADD: 0-20 ms, or longer if an ADD takes longer here
    // (debug build, loaded machine), so the late steps (masquerade, result) get hit too.
    let warm = netns("kwarm");
    let warm_att = pod_att("kwarm", &warm);
    let took = node
        .call(
            "weft",
            "ADD",
            Some(&warm_att),
            &request(&l, &warm_att, None),
        )
        .elapsed;
    node.rt.del(&l, &warm_att).expect("warm-up DEL");
    let window = took.max(Duration::from_millis(20)).as_micros() as u64 * 5 / 4;
    println!("one ADD took {took:?}; kill window {window} us");
    let mut live: Vec<(TestNs, Attachment, Value)> = Vec::new();
    let mut kills = 0;
    for round in 0..30 {
        let delay = Duration::from_micros(rng.below(window));
        let ctx = format!("seed {seed} round {round} delay {delay:?}");
        let victim = netns(&format!("kv{round}"));
        let att = pod_att(&format!("kv{round}"), &victim);
        kills += usize::from(killed_call(
            &node,
            "ADD",
            &att,
            &request(&l, &att, None),
            delay,
        ));
        match round % 3 {
            0 => {
                node.rt
                    .del(&l, &att)
                    .unwrap_or_else(|e| panic!("{ctx}: DEL: {e}"));
                assert_eq!(links(&victim).len(), 1, "{ctx}: pod interface left");
            }
            1 => {
                let valid: Vec<(String, String)> = live
                    .iter()
                    .map(|p| (p.1.container_id.clone(), "eth0".into()))
                    .collect();
                node.rt
                    .gc(&l, &valid)
                    .unwrap_or_else(|e| panic!("{ctx}: GC: {e}"));
            }
            _ => {
                // The runtime retries the ADD instead: it must finish what the killed one began.
                let res = node
                    .rt
                    .add(&l, &att)
                    .unwrap_or_else(|e| panic!("{ctx}: ADD retried after the kill: {e}"));
                node.rt
                    .check(&l, &att)
                    .unwrap_or_else(|e| panic!("{ctx}: CHECK after the retried ADD: {e}"));
                admit(&node, &l, &mut live, (victim, att, res), &ctx);
                continue;
            }
        }
        drop(victim);
        assert_only_live(&node, "kill", &live, &ctx);

        let pod = netns(&format!("kl{round}"));
        let att = pod_att(&format!("kl{round}"), &pod);
        let res = node
            .rt
            .add(&l, &att)
            .unwrap_or_else(|e| panic!("{ctx}: fresh ADD: {e}"));
        admit(&node, &l, &mut live, (pod, att, res), &ctx);
    }
    for (_, att, _) in live.drain(..) {
        node.rt.del(&l, &att).expect("final DEL");
    }
    assert_only_live(&node, "kill", &[], "end");
    println!("{kills} of 30 ADDs were killed before they finished");
}

#[test]
fn sigkill_during_del_then_del_again_leaves_nothing() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let node = Node::new("kdel");
    let ranges = json!([[{"subnet": "10.61.0.0/28"}], [{"subnet": "fd61::/124"}]]);
    let l = weft_list(
        "1.1.0",
        "kdel",
        &node.data_dir(),
        ranges,
        json!({"ipMasq": true}),
    );
    for round in 0..20 {
        let delay = Duration::from_micros(rng.below(15_000));
        let ctx = format!("seed {seed} round {round} delay {delay:?}");
        let pod = netns(&format!("kd{round}"));
        let att = pod_att(&format!("kd{round}"), &pod);
        let res = node.rt.add(&l, &att).expect("ADD");
        let stdin = request(&l, &att, Some(&res));
        killed_call(&node, "DEL", &att, &stdin, delay);
        if round % 2 == 0 {
            node.rt
                .del(&l, &att)
                .unwrap_or_else(|e| panic!("{ctx}: DEL after a killed DEL: {e}"));
        } else {
            node.rt
                .gc(&l, &[])
                .unwrap_or_else(|e| panic!("{ctx}: GC after a killed DEL: {e}"));
        }
        assert_eq!(links(&pod).len(), 1, "{ctx}: pod interface left");
        assert_only_live(&node, "kdel", &[], &ctx);
    }
}
