//! `weftctl`: the weft command line. `weftctl lab ...` runs a multi-node weft cluster in
//! network namespaces on this machine.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use weft_ctl::lab::cmd::{self, UpOptions};
use weft_ctl::lab::state::{BackendKind, DEFAULT_LAB_DIR, DEFAULT_PREFIX, Proto, StoreKind};
use weft_ctl::lab::{LabPaths, inspect, matrix, objects, responder, trace};
use weft_ctl::policy;

/// The weft command line.
#[derive(Debug, Parser)]
#[command(name = "weftctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// A multi-node weft cluster in network namespaces (the root namespace is never touched).
    Lab(LabArgs),
}

#[derive(Debug, clap::Args)]
struct LabArgs {
    /// Lab directory (state, store, logs).
    #[arg(long, global = true, env = "WEFT_LAB_DIR", default_value = DEFAULT_LAB_DIR)]
    lab_dir: PathBuf,
    /// Prefix of the lab's network namespace names.
    #[arg(long, global = true, env = "WEFT_LAB_PREFIX", default_value = DEFAULT_PREFIX)]
    prefix: String,
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u8,
    /// Cross-node backend.
    #[arg(long, value_enum, default_value = "vxlan")]
    backend: BackendKind,
    /// Datastore.
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// Pods created on each node.
    #[arg(long, default_value_t = 2)]
    pods_per_node: usize,
    /// Dual stack (adds fd00:10:244::/56).
    #[arg(long)]
    ipv6: bool,
    /// Directory holding the `weft` and `weft-ipam` plugins (default: weftctl's directory).
    #[arg(long)]
    cni_bin_dir: Option<PathBuf>,
    /// The weftd binary (default: weftd in the CNI bin dir).
    #[arg(long)]
    weftd: Option<PathBuf>,
    /// The etcd binary (for --store etcd).
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd: PathBuf,
}

impl UpArgs {
    fn options(&self) -> UpOptions {
        UpOptions {
            nodes: self.nodes,
            backend: self.backend,
            store: self.store,
            pods_per_node: self.pods_per_node,
            ipv6: self.ipv6,
            cni_bin_dir: self.cni_bin_dir.clone(),
            weftd: self.weftd.clone(),
            etcd: self.etcd.clone(),
        }
    }
}

/// Output format of `trace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    /// Lines for humans.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Create the fabric, nodes, agents and pods.
    Up(UpArgs),
    /// Remove everything the lab made (also after a crash).
    Down,
    /// Show nodes, agents, pods and IPs.
    Status,
    /// Create Namespace, Pod and NetworkPolicy objects from a YAML file.
    Apply {
        /// Multi-document Kubernetes YAML.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// Delete the objects a YAML file names.
    Delete {
        /// Multi-document Kubernetes YAML.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// Probe FROM -> TO (`namespace/pod` or `node/NAME`); exit 0 allowed, 1 denied.
    Probe {
        /// Source.
        from: String,
        /// Target.
        to: String,
        /// Port (default: the target's first declared port).
        #[arg(long)]
        port: Option<u16>,
        /// Protocol.
        #[arg(long, value_enum)]
        protocol: Option<Proto>,
        /// Probe the target's IPv6 address (dual-stack labs).
        #[arg(long)]
        ipv6: bool,
    },
    /// Every pod and node to every pod; exit 0 when all allowed without NAT.
    Matrix {
        /// Port (default: each target's first declared port).
        #[arg(long)]
        port: Option<u16>,
        /// Protocol.
        #[arg(long, value_enum)]
        protocol: Option<Proto>,
        /// JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Probe IPv6 addresses (dual-stack labs).
        #[arg(long)]
        ipv6: bool,
    },
    /// Up with 3 nodes and 2 pods each, the matrix, then down (always).
    Demo(UpArgs),
    /// What the NetworkPolicies in the lab's store decide for FROM -> TO, and why;
    /// exit 0 allowed, 1 denied.
    Trace {
        /// Source: `namespace/pod` or an IP address.
        from: String,
        /// Destination: `namespace/pod` or an IP address.
        to: String,
        /// Destination port.
        #[arg(long)]
        port: u16,
        /// Protocol: tcp, udp or sctp.
        #[arg(long, default_value = "tcp", value_parser = weft_ctl::policy::parse_protocol)]
        protocol: weft_policy::Protocol,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// (internal) Serve probe responses on the given ports.
    #[command(hide = true)]
    Responder {
        /// `80/TCP,80/UDP`.
        #[arg(long)]
        ports: String,
    },
}

fn main() -> ExitCode {
    let Cli {
        command: Top::Lab(lab),
    } = Cli::parse();
    match run(lab) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn verdict(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(lab: LabArgs) -> Result<ExitCode> {
    let paths = LabPaths::new(&lab.lab_dir, &lab.prefix);
    match lab.command {
        LabCommand::Up(args) => {
            cmd::up(&paths, &args.options())?;
            print!("{}", inspect::status(&paths)?);
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Down => cmd::down(&paths).map(|()| ExitCode::SUCCESS),
        LabCommand::Status => {
            print!("{}", inspect::status(&paths)?);
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Apply { file } => {
            objects::apply(&paths, &file, &cmd::weftctl_exe()?).map(|()| ExitCode::SUCCESS)
        }
        LabCommand::Delete { file } => objects::delete(&paths, &file).map(|()| ExitCode::SUCCESS),
        LabCommand::Probe {
            from,
            to,
            port,
            protocol,
            ipv6,
        } => Ok(verdict(
            inspect::probe(&paths, &from, &to, port, protocol, ipv6)?.allowed,
        )),
        LabCommand::Matrix {
            port,
            protocol,
            json,
            ipv6,
        } => {
            let m = inspect::matrix(&paths, port, protocol, ipv6)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&matrix::to_json(&m))?);
            } else {
                print!("{}", matrix::render(&m));
            }
            Ok(verdict(m.all_allowed_without_nat()))
        }
        LabCommand::Demo(args) => cmd::demo(&paths, &args.options()).map(|()| ExitCode::SUCCESS),
        LabCommand::Trace {
            from,
            to,
            port,
            protocol,
            output,
        } => {
            let (cluster, t) = trace::trace(&paths, &from, &to, &protocol, port)?;
            match output {
                OutputFormat::Text => print!("{}", policy::render_trace(&cluster, &t)),
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&policy::trace_json(&cluster, &t))?
                ),
            }
            Ok(verdict(t.verdict.allowed))
        }
        LabCommand::Responder { ports } => {
            responder::run(&responder::parse_ports(&ports)?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
