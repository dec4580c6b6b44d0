//! `weft-bench`: weft against a baseline measured in the same run, on the same machine.
//!
//! - `weft-bench [plugin]` (default): the `weft` plugin against the reference `bridge` +
//!   `host-local`, ADD/DEL latency, CPU and concurrent ADD rate.
//! - `weft-bench chain`: weft's chain (`weft` + in-process `weft-ipam` + `weft-portmap`)
//!   against the reference chain (`bridge` + `host-local` + `portmap`), one hostPort per
//!   pod; then TCP through the hostPort DNAT against TCP to the pod address directly.
//! - `weft-bench policy`: 1,000 pods and 1,000 NetworkPolicies: compile and apply time,
//!   change-to-enforcement latency, and pod-to-pod TCP/RTT with and without the ruleset.
//!
//! Everything happens in throwaway network namespaces this process creates and removes
//! (also on error or panic: every namespace is owned by a value that deletes it on drop).
//! Rounds alternate which side goes first, because a shared 2-core VM drifts; the figures
//! to read are the ratios within one run.

mod chain;
#[path = "cluster/measure.rs"]
#[allow(dead_code)] // shared with weft-bench-cluster, which uses other parts of it
mod measure;
mod plugin;
mod policy;
mod stats;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    about = "Benchmark weft against the reference CNI plugins or a hand-built baseline in one run",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    plugin: plugin::Args,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// `weft` vs reference `bridge` + `host-local` (the default).
    Plugin(plugin::Args),
    /// weft's chain with `weft-portmap` vs the reference chain with `portmap`.
    Chain(chain::Args),
    /// NetworkPolicy at scale: compile/apply time, change latency, datapath cost.
    Policy(policy::Args),
}

fn main() {
    let cli = Cli::parse();
    let outcome = match &cli.mode {
        None => plugin::run(&cli.plugin),
        Some(Mode::Plugin(args)) => plugin::run(args),
        Some(Mode::Chain(args)) => chain::run(args).map_err(|e| format!("{e:#}")),
        Some(Mode::Policy(args)) => policy::run(args).map_err(|e| format!("{e:#}")),
    };
    if let Err(e) = outcome {
        eprintln!("weft-bench: {e}");
        std::process::exit(1);
    }
}

/// The directory holding weft's binaries: `given`, else the directory of this binary.
pub fn weft_dir(given: Option<&Path>) -> Result<PathBuf, String> {
    match given {
        Some(d) => Ok(d.to_path_buf()),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .map(PathBuf::from)
            .ok_or_else(|| "cannot locate the weft binaries".to_string()),
    }
}
