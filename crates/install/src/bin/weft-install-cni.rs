//! `weft-install-cni`: the weft DaemonSet's init container. Copies the CNI plugin binaries
//! from the image into the node's CNI bin dir atomically, or removes them (`--uninstall`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use weft_install::{PLUGIN_BINARIES, install, uninstall};

/// Install (or remove) weft's CNI plugin binaries on this node.
#[derive(Debug, Parser)]
#[command(name = "weft-install-cni", version, about)]
struct Args {
    /// Directory holding the binaries to install (in the image).
    #[arg(long, default_value = "/opt/weft/bin")]
    source_dir: PathBuf,
    /// The node's CNI bin directory.
    #[arg(long, default_value = "/opt/cni/bin")]
    cni_bin_dir: PathBuf,
    /// The node's CNI config directory (uninstall removes weftd's 10-weft.conflist there).
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// Remove the binaries and the conflist instead of installing.
    #[arg(long)]
    uninstall: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = if args.uninstall {
        uninstall(&args.cni_bin_dir, &args.cni_conf_dir, PLUGIN_BINARIES).map(|removed| {
            for path in removed {
                println!("removed {}", path.display());
            }
        })
    } else {
        install(&args.source_dir, &args.cni_bin_dir, PLUGIN_BINARIES).map(|report| {
            for (name, action) in report.actions {
                println!("{action} {}", args.cni_bin_dir.join(name).display());
            }
        })
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-install-cni: {e:#}");
            ExitCode::FAILURE
        }
    }
}
