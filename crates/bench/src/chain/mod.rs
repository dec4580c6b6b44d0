//! `weft-bench chain`: weft's chain against the reference chain, in one run.
//!
//! weft: `weft` (bridge mode, `weft-ipam` in-process) + `weft-portmap`; reference: Debian's
//! `bridge` + `host-local` (a separate process) + `portmap`, with the same conflist shape as
//! the README's drop-in example. Each pod gets one hostPort mapping through the
//! `portMappings` capability, as a CRI runtime passes it. The chain is run plugin by plugin
//! exactly as libcni does (each gets the previous result; DEL in reverse order with the
//! cached result); the timed span is the whole chain, and the CPU is the user + system time
//! of the plugin processes and everything they waited for (`iptables`, `nft`, `host-local`).

mod traffic;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipnet::Ipv4Net;
use serde_json::{Value, json};
use weft_runtime::{Attachment, Runtime, request_conf};
use weft_testns::TestNs;

use crate::stats::Samples;

/// Options of the chain benchmark.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Pods ADDed then DELeted sequentially per round and side.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// Latency rounds; the side that goes first alternates.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Throughput rounds (each samples every path once, first path rotating).
    #[arg(long, default_value_t = 5)]
    traffic_rounds: usize,
    /// Seconds per iperf3 sample (plus one omitted warm-up second).
    #[arg(long, default_value_t = 3)]
    seconds: u32,
    /// Skip the throughput part.
    #[arg(long)]
    no_traffic: bool,
    /// Directory holding `weft`, `weft-ipam` and `weft-portmap` (default: next to this binary).
    #[arg(long)]
    weft_dir: Option<PathBuf>,
    /// Directory holding the reference plugins.
    #[arg(long, default_value = "/usr/lib/cni")]
    reference_dir: PathBuf,
}

/// First hostPort of the latency pods (pod `i` gets `BASE_HOST_PORT + i`).
const BASE_HOST_PORT: u16 = 20000;

/// One chain under test, with its own node namespace and IPAM/cache directories.
pub struct Chain {
    /// Name in the output.
    pub label: &'static str,
    runtime: Runtime,
    list: Value,
    /// The pod subnet.
    pub subnet: Ipv4Net,
    /// The node namespace the plugins run in (deleted on drop).
    pub node: TestNs,
    _data: tempfile::TempDir,
}

/// Plugin types of one chain: main, IPAM, portmap.
struct Types {
    main: &'static str,
    ipam: &'static str,
    portmap: &'static str,
}

impl Chain {
    fn new(label: &'static str, dir: &Path, types: &Types, subnet: Ipv4Net) -> Result<Chain> {
        for bin in [types.main, types.portmap] {
            if !dir.join(bin).is_file() {
                bail!(
                    "{} not found (weft: `cargo build --release --bins`; reference: apt-get install containernetworking-plugins)",
                    dir.join(bin).display()
                );
            }
        }
        let node = TestNs::new("cnode").context("node namespace")?;
        let data = tempfile::tempdir()?;
        let list = json!({
            "cniVersion": "1.0.0",
            "name": format!("bench-chain-{}", types.main),
            "plugins": [
                {
                    "type": types.main,
                    "bridge": "cni0",
                    "isGateway": true,
                    "isDefaultGateway": true,
                    "ipam": {
                        "type": types.ipam,
                        "ranges": [[{"subnet": subnet.to_string()}]],
                        "dataDir": data.path().join("ipam"),
                    }
                },
                {"type": types.portmap, "capabilities": {"portMappings": true}, "snat": true}
            ]
        });
        let runtime = Runtime {
            cni_path: vec![dir.to_path_buf()],
            node_netns: Some(node.path().to_path_buf()),
            cache_dir: data.path().join("cache"),
        };
        Ok(Chain {
            label,
            runtime,
            list,
            subnet,
            node,
            _data: data,
        })
    }

    fn plugins(&self) -> &[Value] {
        self.list["plugins"].as_array().map_or(&[], Vec::as_slice)
    }

    /// ADD through the chain; `prev` of each plugin is the previous plugin's result.
    pub fn add(&self, att: &Attachment) -> Result<ChainCall> {
        self.call("ADD", att, self.plugins().iter().collect(), None)
    }

    /// DEL through the chain in reverse order with the final ADD result.
    pub fn del(&self, att: &Attachment, cached: &Value) -> Result<ChainCall> {
        self.call(
            "DEL",
            att,
            self.plugins().iter().rev().collect(),
            Some(cached),
        )
    }

    fn call(
        &self,
        verb: &str,
        att: &Attachment,
        order: Vec<&Value>,
        cached: Option<&Value>,
    ) -> Result<ChainCall> {
        let start = Instant::now();
        let mut prev = cached.cloned();
        let mut call = ChainCall::default();
        for plugin in order {
            let (ty, conf) = request_conf(&self.list, plugin, att, prev.as_ref())?;
            let out = self
                .runtime
                .exec_raw(&ty, verb, Some(att), conf.to_string().as_bytes())?;
            if out.status != 0 {
                bail!(
                    "{}: {ty} {verb} failed: {}{}",
                    self.label,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            call.cpu += out.cpu;
            call.steps.push((ty, out.elapsed, out.cpu));
            if verb == "ADD" {
                prev = Some(serde_json::from_slice(&out.stdout).context("plugin result")?);
            }
        }
        call.wall = start.elapsed();
        call.result = prev.unwrap_or(Value::Null);
        Ok(call)
    }
}

/// What one chain call took.
#[derive(Debug, Default)]
pub struct ChainCall {
    /// The final result (ADD) or the cached one (DEL).
    pub result: Value,
    /// Wall time of the whole chain.
    pub wall: Duration,
    /// CPU (user + system) of all plugin processes and their children.
    pub cpu: Duration,
    /// Per plugin: type, wall, CPU.
    pub steps: Vec<(String, Duration, Duration)>,
}

/// An attachment with one hostPort mapping, as a CRI runtime passes `portMappings`.
pub fn attachment(id: &str, pod: &TestNs, host_port: u16, container_port: u16) -> Attachment {
    let mut att = Attachment::kubernetes(id, &pod.path().to_string_lossy(), "eth0", id);
    att.capability_args.insert(
        "portMappings".into(),
        json!([{"hostPort": host_port, "containerPort": container_port, "protocol": "tcp"}]),
    );
    att
}

/// The first IPv4 address of a CNI result.
pub fn result_ipv4(result: &Value) -> Result<Ipv4Addr> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .next()
        .context("the result has no IPv4 address")
}

/// Samples of one side.
#[derive(Default)]
struct Figures {
    add: Samples,
    del: Samples,
    add_cpu: Samples,
    del_cpu: Samples,
    /// Per plugin type: ADD wall, ADD CPU, DEL wall, DEL CPU.
    steps: Vec<(String, [Samples; 4])>,
}

impl Figures {
    fn step(&mut self, ty: &str) -> &mut [Samples; 4] {
        let at = match self.steps.iter().position(|(t, _)| t == ty) {
            Some(i) => i,
            None => {
                self.steps.push((ty.to_string(), Default::default()));
                self.steps.len() - 1
            }
        };
        &mut self.steps[at].1
    }

    fn record(&mut self, verb: usize, call: &ChainCall) {
        let (wall, cpu) = if verb == 0 {
            (&mut self.add, &mut self.add_cpu)
        } else {
            (&mut self.del, &mut self.del_cpu)
        };
        wall.push(call.wall);
        cpu.push(call.cpu);
        for (ty, w, c) in &call.steps {
            let s = self.step(ty);
            s[verb * 2].push(*w);
            s[verb * 2 + 1].push(*c);
        }
    }
}

/// Runs the chain benchmark and prints its tables.
pub fn run(args: &Args) -> Result<()> {
    let weft_dir = crate::weft_dir(args.weft_dir.as_deref()).map_err(anyhow::Error::msg)?;
    let chains = [
        Chain::new(
            "reference",
            &args.reference_dir,
            &Types {
                main: "bridge",
                ipam: "host-local",
                portmap: "portmap",
            },
            "10.91.0.0/16".parse()?,
        )?,
        Chain::new(
            "weft",
            &weft_dir,
            &Types {
                main: "weft",
                ipam: "weft-ipam",
                portmap: "weft-portmap",
            },
            "10.92.0.0/16".parse()?,
        )?,
    ];
    eprintln!("creating {} pod namespaces (not timed)...", args.pods);
    let pods: Vec<TestNs> = (0..args.pods)
        .map(|i| TestNs::new(&format!("cp{i}")))
        .collect::<std::io::Result<_>>()?;
    let mut figs = [Figures::default(), Figures::default()];
    for round in 0..args.rounds {
        for k in 0..2 {
            let which = if round % 2 == 0 { k } else { 1 - k };
            eprintln!("round {}: {}", round + 1, chains[which].label);
            latency_round(&chains[which], &pods, round, &mut figs[which])?;
        }
    }
    drop(pods);
    print_latency(args, &figs);
    if !args.no_traffic {
        traffic::run(&chains, args.traffic_rounds, args.seconds)?;
    }
    Ok(())
}

fn latency_round(chain: &Chain, pods: &[TestNs], round: usize, fig: &mut Figures) -> Result<()> {
    let mut added = Vec::with_capacity(pods.len());
    for (i, pod) in pods.iter().enumerate() {
        let port = BASE_HOST_PORT + u16::try_from(i).context("too many pods")?;
        let att = attachment(&format!("ch-r{round}-p{i}"), pod, port, 80);
        let call = chain.add(&att)?;
        fig.record(0, &call);
        added.push((att, call.result));
    }
    for (att, result) in &added {
        let call = chain.del(att, result)?;
        fig.record(1, &call);
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_latency(args: &Args, figs: &[Figures; 2]) {
    let [r, w] = figs;
    println!(
        "weft-bench chain: {} pods x {} rounds per side, one hostPort each, alternating order",
        args.pods, args.rounds
    );
    println!(
        "{:<30} {:>10} {:>10} {:>8}   target",
        "whole chain", "reference", "weft", "ratio"
    );
    let row = |name: &str, a: Duration, b: Duration, target: &str| {
        println!(
            "{name:<30} {:>10.2} {:>10.2} {:>7.1}x   {target}",
            ms(a),
            ms(b),
            a.as_secs_f64() / b.as_secs_f64().max(1e-9)
        );
    };
    row(
        "ADD median (ms)",
        r.add.median(),
        w.add.median(),
        "<= 8 ms, >= 8x",
    );
    row("ADD p90 (ms)", r.add.p90(), w.add.p90(), "");
    row("DEL median (ms)", r.del.median(), w.del.median(), "");
    row("DEL p90 (ms)", r.del.p90(), w.del.p90(), "");
    row(
        "CPU per ADD, mean (ms)",
        r.add_cpu.mean(),
        w.add_cpu.mean(),
        "",
    );
    row(
        "CPU per DEL, mean (ms)",
        r.del_cpu.mean(),
        w.del_cpu.mean(),
        "",
    );
    row(
        "CPU per pod (ADD+DEL) (ms)",
        r.add_cpu.mean() + r.del_cpu.mean(),
        w.add_cpu.mean() + w.del_cpu.mean(),
        "",
    );
    println!("per plugin (median wall / mean CPU, ms):");
    for (label, f) in [("reference", r), ("weft", w)] {
        for (ty, s) in &f.steps {
            println!(
                "  {label:<10} {ty:<14} ADD {:>7.2} / {:>7.2}   DEL {:>7.2} / {:>7.2}",
                ms(s[0].median()),
                ms(s[1].mean()),
                ms(s[2].median()),
                ms(s[3].mean())
            );
        }
    }
    println!("ratio = reference/weft (higher is better for weft)");
}
