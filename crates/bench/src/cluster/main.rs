//! `weft-bench-cluster`: cross-node pod-to-pod throughput and RTT of a real weft cluster
//! (the `weftctl lab`: weftd per node, pods through the `weft` plugin) against the same path
//! built by hand with netlink, in one run, for the `vxlan` and `host-gw` backends; then
//! weftd's idle memory and CPU with 100 pods on its node. A third side, the hand-built path
//! plus weft's masquerade rule, shows what conntrack (enabled by any nat hook) costs.
//!
//! Everything lives in namespaces this binary creates and deletes (also on error). Rounds
//! alternate which side goes first, because a shared 2-core VM drifts; the figures that
//! matter are the ratios within the run.

mod handpath;
mod measure;
mod weftlab;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use handpath::{Backend, HandCluster};
use measure::{IperfServer, iperf_gbps, median, ping_median_us};
use weftlab::{Lab, measure_idle};

#[derive(Parser, Debug)]
#[command(about = "Benchmark a weft lab cluster against a hand-built kernel path in one run")]
struct Args {
    /// Directory holding weftd, weft and weft-ipam (default: next to this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Throughput rounds per backend; each round measures both sides, order alternating.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Seconds per iperf3 sample (plus one omitted warm-up second).
    #[arg(long, default_value_t = 3)]
    seconds: u32,
    /// Pings per RTT sample (10 ms apart).
    #[arg(long, default_value_t = 50)]
    pings: u32,
    /// Pods on the node for the idle footprint.
    #[arg(long, default_value_t = 100)]
    idle_pods: usize,
    /// Seconds over which idle CPU is measured.
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Backends to measure (default both).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["vxlan".to_string(), "host-gw".to_string()])]
    backends: Vec<String>,
}

/// The sides compared, in column order.
const SIDES: [&str; 3] = ["weft", "hand-built", "hand+masq"];

/// Samples of every side for one backend, indexed like [`SIDES`].
struct PathFigures {
    backend: Backend,
    gbps: [Vec<f64>; 3],
    rtt_us: [Vec<f64>; 3],
}

/// One side of the comparison: client pod namespace, server pod address.
struct Side {
    client: PathBuf,
    server_ip: Ipv4Addr,
    _server: IperfServer,
}

impl Side {
    fn new(client: (PathBuf, Ipv4Addr), server: (PathBuf, Ipv4Addr)) -> Result<Side> {
        Ok(Side {
            client: client.0,
            server_ip: server.1,
            _server: IperfServer::start(&server.0, server.1)?,
        })
    }

    fn sample(&self, args: &Args, gbps: &mut Vec<f64>, rtt: &mut Vec<f64>) -> Result<()> {
        rtt.push(ping_median_us(&self.client, self.server_ip, args.pings)?);
        gbps.push(iperf_gbps(&self.client, self.server_ip, args.seconds)?);
        Ok(())
    }
}

fn main() {
    // The lab spawns its pod responders as `<current exe> lab responder --ports ...`.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("lab")
        && argv.get(2).map(String::as_str) == Some("responder")
    {
        std::process::exit(match run_responder(&argv) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("responder: {e:#}");
                1
            }
        });
    }
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("weft-bench-cluster: {e:#}");
        std::process::exit(1);
    }
}

fn run_responder(argv: &[String]) -> Result<()> {
    let ports = argv
        .iter()
        .position(|a| a == "--ports")
        .and_then(|i| argv.get(i + 1))
        .context("responder needs --ports")?;
    weft_ctl::lab::responder::run(&weft_ctl::lab::responder::parse_ports(ports)?)
}

fn bin_dir(args: &Args) -> Result<PathBuf> {
    let dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    for bin in ["weftd", "weft", "weft-ipam"] {
        if !dir.join(bin).is_file() {
            bail!(
                "{} not found; build with `cargo build --release --bins` or pass --bin-dir",
                dir.join(bin).display()
            );
        }
    }
    Ok(dir)
}

fn parse_backend(name: &str) -> Result<Backend> {
    match name {
        "vxlan" => Ok(Backend::Vxlan),
        "host-gw" => Ok(Backend::HostGw),
        other => bail!("unknown backend {other} (vxlan, host-gw)"),
    }
}

fn run(args: &Args) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("needs root (it creates network namespaces)");
    }
    let bins = bin_dir(args)?;
    let tag = std::process::id();
    let mut paths = Vec::new();
    for name in &args.backends {
        let backend = parse_backend(name)?;
        println!(
            "== {}: weft lab (2 nodes) and hand-built path",
            backend.label()
        );
        paths.push(measure_backend(args, backend, &bins, tag)?);
    }
    println!("== weftd idle with {} pods on its node", args.idle_pods);
    let idle = {
        let lab = Lab::up(
            &format!("wb{tag}i"),
            Backend::Vxlan,
            1,
            args.idle_pods,
            &bins,
        )?;
        // Let the pod burst settle before the idle window.
        std::thread::sleep(Duration::from_secs(3));
        measure_idle(
            lab.weftd_pid("node1")?,
            Duration::from_secs(args.idle_seconds),
        )?
    };
    println!();
    print!("{}", render(args, &paths, &idle));
    Ok(())
}

fn measure_backend(args: &Args, backend: Backend, bins: &Path, tag: u32) -> Result<PathFigures> {
    let lab = Lab::up(&format!("wb{tag}w"), backend, 2, 1, bins)?;
    let hand = HandCluster::build(&format!("wb{tag}h"), backend, false)?;
    let masq = HandCluster::build(&format!("wb{tag}m"), backend, true)?;
    let sides = [
        Side::new(lab.pod_on("node1")?, lab.pod_on("node2")?)?,
        hand_side(&hand)?,
        hand_side(&masq)?,
    ];
    let mut figures = PathFigures {
        backend,
        gbps: Default::default(),
        rtt_us: Default::default(),
    };
    for round in 0..args.rounds {
        // Rotate which side goes first so drift spreads evenly.
        let mut line = format!("  round {}:", round + 1);
        for k in 0..SIDES.len() {
            let i = (round + k) % SIDES.len();
            if let (Some(side), Some(g), Some(r)) = (
                sides.get(i),
                figures.gbps.get_mut(i),
                figures.rtt_us.get_mut(i),
            ) {
                side.sample(args, g, r)?;
            }
        }
        for (i, name) in SIDES.iter().enumerate() {
            let last = |v: &[Vec<f64>; 3]| v.get(i).and_then(|s| s.last().copied());
            line.push_str(&format!(
                " {name} {:.2} Gbit/s {:.0} us;",
                last(&figures.gbps).unwrap_or_default(),
                last(&figures.rtt_us).unwrap_or_default()
            ));
        }
        println!("{line}");
    }
    // iperf3 servers stop before their namespaces go.
    drop(sides);
    drop(masq);
    drop(hand);
    drop(lab);
    Ok(figures)
}

fn hand_side(cluster: &HandCluster) -> Result<Side> {
    match cluster.pods.as_slice() {
        [a, b] => Side::new(a.clone(), b.clone()),
        _ => bail!("hand-built cluster has no two pods"),
    }
}

/// The result table: medians and ratios oriented so that 1.0 is parity and higher is
/// better (throughput weft/other, RTT other/weft).
fn render(args: &Args, paths: &[PathFigures], idle: &weftlab::Idle) -> String {
    let mut out = format!(
        "{:<8} {:<22} {:>8} {:>11} {:>10} {:>11} {:>10}\n",
        "backend", "metric", "weft", "hand-built", "ratio", "hand+masq", "ratio"
    );
    for p in paths {
        let row = |name: String, v: &[Vec<f64>; 3], higher_better: bool| {
            let m: Vec<f64> = v.iter().map(|s| median(s)).collect();
            let (w, h, n) = (
                m.first().copied().unwrap_or(f64::NAN),
                m.get(1).copied().unwrap_or(f64::NAN),
                m.get(2).copied().unwrap_or(f64::NAN),
            );
            let ratio = |other: f64| if higher_better { w / other } else { other / w };
            format!(
                "{:<8} {:<22} {:>8.2} {:>11.2} {:>10.3} {:>11.2} {:>10.3}\n",
                p.backend.label(),
                name,
                w,
                h,
                ratio(h),
                n,
                ratio(n)
            )
        };
        let rounds = p.gbps.first().map_or(0, Vec::len);
        out.push_str(&row(format!("TCP Gbit/s (med of {rounds})"), &p.gbps, true));
        out.push_str(&row(
            format!("RTT us (med {rounds}x{})", args.pings),
            &p.rtt_us,
            false,
        ));
    }
    out.push_str("ratios: throughput weft/other, RTT other/weft; target >= 0.95 vs hand-built\n");
    out.push_str(&format!(
        "weftd idle, {} pods on its node: VmRSS {:.1} MiB (target <= 30), CPU {:.2} % of a core over {} s\n",
        args.idle_pods,
        idle.rss_mib,
        idle.cpu_percent,
        idle.window.as_secs()
    ));
    out
}
