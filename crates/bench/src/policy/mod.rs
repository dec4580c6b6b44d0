//! `weft-bench policy`: NetworkPolicy at scale (1,000 pods, 1,000 policies by default).
//!
//! (a) compile (`weft_policy::nft::compile`) and apply (`nft -f -` through
//! `weft_datapath`) of the full ruleset into a fresh namespace, reported separately;
//! (b) change -> enforcement latency over label and policy changes, in-process (re-parse
//! the object, recompile, apply the element delta or the full table);
//! (c) pod-to-pod TCP throughput and RTT with the full ruleset loaded against none.

mod agent;
mod apply;
mod generate;
mod inventory;
mod traffic;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use weft_policy::nft::compile;

use apply::{CompileApply, NODE};
use generate::Shape;

/// Options of the policy benchmark.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Pods in the cluster (three of them are the traffic test's pods).
    #[arg(long, default_value_t = 1000)]
    pods: usize,
    /// NetworkPolicies (three of them belong to the traffic test).
    #[arg(long, default_value_t = 1000)]
    policies: usize,
    /// Namespaces the generated pods and policies spread over.
    #[arg(long, default_value_t = 20)]
    namespaces: usize,
    /// Nodes the generated pods spread over; the ruleset is compiled for `node1`
    /// (1 = every pod is local: the largest verdict maps).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Compile + apply repetitions (each into a fresh namespace).
    #[arg(long, default_value_t = 5)]
    apply_rounds: usize,
    /// Changes for the change-latency test (half label changes, half policy changes).
    #[arg(long, default_value_t = 60)]
    changes: usize,
    /// Traffic rounds (each measures both states, order alternating); 0 skips (c).
    #[arg(long, default_value_t = 6)]
    traffic_rounds: usize,
    /// Seconds per iperf3 sample (plus one omitted warm-up second).
    #[arg(long, default_value_t = 3)]
    seconds: u32,
    /// Pings per RTT sample (10 ms apart).
    #[arg(long, default_value_t = 50)]
    pings: u32,
    /// Skip the weftd part of (b) (the in-process variant still runs).
    #[arg(long)]
    no_weftd: bool,
    /// Write the full nft script of the ruleset to this file and exit.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Directory holding `weft`, `weft-ipam` and `weftd` (default: next to this binary).
    #[arg(long)]
    weft_dir: Option<PathBuf>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the policy benchmark and prints its tables.
pub fn run(args: &Args) -> Result<()> {
    let shape = Shape {
        pods: args.pods,
        policies: args.policies,
        namespaces: args.namespaces,
        nodes: args.nodes,
    };
    let objects = generate::cluster(shape);
    if let Some(path) = &args.dump {
        let inv = inventory::Inventory::new(&objects, shape.nodes)?;
        std::fs::write(path, compile(&inv.cluster(), NODE).render())?;
        return Ok(());
    }
    println!(
        "weft-bench policy: {} pods, {} policies, {} namespaces, {} node(s); ruleset of {NODE}",
        args.pods, args.policies, args.namespaces, args.nodes
    );
    let a = apply::compile_and_apply(&objects, shape, args.apply_rounds)?;
    print_compile_apply(&a);
    let weft_dir = crate::weft_dir(args.weft_dir.as_deref()).map_err(anyhow::Error::msg)?;
    if !args.no_weftd {
        let w = agent::through_weftd(&weft_dir, &objects, shape, args.changes)?;
        println!(
            "(b) weftd: initial {} objects written -> enforced in {:.0} ms; store write alone p50 {:.1} ms",
            w.objects,
            ms(w.initial),
            ms(w.put.median())
        );
        print_changes(
            "through weftd (store write -> status.json policy.revision)",
            &w.changes,
        );
        println!(
            "    store write -> weftd's nft apply done (appliedAtMs), {} of {} changes applied: p50 {:.0} ms   p99 {:.0} ms",
            w.applied.len(),
            w.changes.latency.len(),
            ms(w.applied.median()),
            ms(w.applied.p99())
        );
    }
    let b = apply::in_process_changes(&objects, shape, args.changes)?;
    print_changes("in-process (re-parse, recompile, nft delta)", &b);
    if args.traffic_rounds > 0 {
        let inv = inventory::Inventory::new(&objects, shape.nodes)?;
        let script = compile(&inv.cluster(), NODE).render();
        let figs = traffic::run(
            &weft_dir,
            &script,
            args.traffic_rounds,
            args.seconds,
            args.pings,
        )?;
        print_traffic(args.traffic_rounds, &figs);
    }
    Ok(())
}

fn print_traffic(rounds: usize, figs: &[traffic::PathFigures]) {
    let m: Vec<(f64, f64)> = figs.iter().map(traffic::medians).collect();
    let (none_g, none_r) = m.first().copied().unwrap_or((f64::NAN, f64::NAN));
    println!("(c) pod -> pod on one node (weft plugin, bridge), median of {rounds} rounds:");
    println!(
        "{:<16} {:>10} {:>8} {:>10} {:>10}",
        "state", "Gbit/s", "ratio", "RTT us", "ratio"
    );
    for (name, (g, r)) in traffic::STATES.iter().zip(&m) {
        println!(
            "{name:<16} {g:>10.2} {:>8.3} {r:>10.0} {:>10.3}",
            g / none_g,
            none_r / r
        );
    }
    println!("ratios vs none: throughput x/none, RTT none/x (higher is better); target >= 0.95");
}

fn print_compile_apply(a: &CompileApply) {
    let s = &a.size;
    println!(
        "ruleset: {} sets ({} ranges), {} map entries, {} chains, {} rules, {} KiB of nft text",
        s.sets,
        s.set_elements,
        s.map_elements,
        s.chains,
        s.rules,
        s.script_bytes / 1024
    );
    println!(
        "(a) median of {} (max):      parse all objects {:.1} ms (once)",
        a.compile.len(),
        ms(a.parse)
    );
    let row = |name: &str, v: &crate::stats::Samples| {
        println!(
            "    {name:<34} {:>8.1} ms ({:.1})",
            ms(v.median()),
            ms(v.quantile(1.0))
        );
    };
    row("compile", &a.compile);
    row("render", &a.render);
    row("apply, fresh namespace (wall)", &a.apply_fresh);
    row("apply, fresh namespace (nft CPU)", &a.apply_fresh_cpu);
    row("apply again (replace the table)", &a.apply_reload);
    let total = a.compile.median() + a.render.median() + a.apply_fresh.median();
    println!(
        "    compile + render + apply            {:>8.1} ms   target < 1000 ms",
        ms(total)
    );
}

fn print_changes(how: &str, b: &apply::ChangeFigures) {
    let kinds = if b.deltas + b.full + b.unchanged > 0 {
        format!(
            " ({} element deltas, {} full tables, {} no-ops)",
            b.deltas, b.full, b.unchanged
        )
    } else {
        String::new()
    };
    println!(
        "(b) change -> enforced, {how}: {} changes{kinds}",
        b.latency.len()
    );
    for (name, s) in [
        ("all", &b.latency),
        ("label changes", &b.label),
        ("policy changes", &b.policy),
    ] {
        println!(
            "    {name:<16} p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms{}",
            ms(s.median()),
            ms(s.p99()),
            ms(s.quantile(1.0)),
            if name == "all" {
                "   target p99 < 100 ms"
            } else {
                ""
            }
        );
    }
    if b.compile.len() > 0 {
        println!(
            "    of which re-parse + recompile: p50 {:.1} ms   p99 {:.1} ms",
            ms(b.compile.median()),
            ms(b.compile.p99())
        );
    }
}
