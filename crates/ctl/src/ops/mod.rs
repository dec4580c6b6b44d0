//! Operator commands for a node running weftd: `status`, `nodes`, `ipam` and
//! `policy trace`. Every command prints a table for people and `-o json` for scripts.
//!
//! Gathering (files, datastore, kernel) is kept apart from deciding and rendering, which
//! are pure and unit-tested.

pub mod attach;
pub mod ipam;
pub mod ipam_cmd;
pub mod nodes;
pub mod status;
pub mod table;
pub mod trace;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::{Subcommand, ValueEnum};
use weft_store::{Datastore, StoreConfig};

/// `weftctl` operator commands (flattened into weftctl's top-level commands).
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// This node: subnets, backend, peers, pods, agent health, policy.
    Status(status::StatusArgs),
    /// Node records in the datastore.
    Nodes(nodes::NodesArgs),
    /// IPAM usage per range; `--check` finds leaked reservations, `--release` frees them.
    Ipam(ipam_cmd::IpamArgs),
    /// NetworkPolicy tools.
    Policy {
        /// What to do.
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

/// `weftctl policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Would a new connection FROM -> TO be allowed by the NetworkPolicies in the datastore?
    Trace(trace::TraceArgs),
}

/// Output format of every operator command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

/// `-o table|json`.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: OutputFormat,
}

/// Datastore kinds the operator commands can read (as weftd's `--store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// File-backed store directory.
    Embedded,
    /// etcd v3.
    Etcd,
    /// The Kubernetes API (in a pod: its service account; else --kubeconfig or $KUBECONFIG).
    Kubernetes,
}

/// Datastore flags, spelled as weftd's.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreArgs {
    /// Datastore kind.
    #[arg(long, value_enum, env = "WEFT_STORE")]
    pub store: Option<StoreKind>,
    /// Directory of the embedded store.
    #[arg(long, env = "WEFT_STORE_PATH")]
    pub store_path: Option<PathBuf>,
    /// etcd client URLs, comma separated.
    #[arg(long, value_delimiter = ',', env = "WEFT_ETCD_ENDPOINTS")]
    pub etcd_endpoints: Vec<String>,
    /// etcd key prefix (default: the store's, `/weft/v1`).
    #[arg(long)]
    pub etcd_prefix: Option<String>,
    /// With `--store kubernetes`: a kubeconfig file.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

impl StoreArgs {
    /// Opens the store (must run inside a tokio runtime).
    pub async fn open(&self) -> Result<Arc<dyn Datastore>> {
        if self.store == Some(StoreKind::Kubernetes) {
            return Ok(weft_kube::open(self.kubeconfig.as_deref()).await?);
        }
        Ok(self.config()?.open().await?)
    }

    /// The embedded or etcd store to open; an error naming the missing flag when
    /// incomplete (Kubernetes has no [`StoreConfig`]: use [`StoreArgs::open`]).
    pub fn config(&self) -> Result<StoreConfig> {
        match self.store {
            None => Err(anyhow!(
                "--store embedded|etcd|kubernetes is required (as passed to weftd)"
            )),
            Some(StoreKind::Kubernetes) => Err(anyhow!("kubernetes has no StoreConfig")),
            Some(StoreKind::Embedded) => Ok(StoreConfig::Embedded {
                dir: self
                    .store_path
                    .clone()
                    .ok_or_else(|| anyhow!("--store embedded needs --store-path"))?,
            }),
            Some(StoreKind::Etcd) if self.etcd_endpoints.is_empty() => {
                Err(anyhow!("--store etcd needs --etcd-endpoints"))
            }
            Some(StoreKind::Etcd) => Ok(StoreConfig::Etcd {
                endpoints: self.etcd_endpoints.clone(),
                prefix: self.etcd_prefix.clone(),
            }),
        }
    }
}

/// A single-threaded runtime for the datastore calls.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start async runtime")
}

/// Runs an operator command; the exit code says the outcome for scripts: 0 fine, 1 for
/// "unhealthy" (status), "leaked reservations left" (ipam --check) or "denied" (trace).
pub fn run_code(cmd: OpsCommand) -> Result<ExitCode> {
    let ok = match cmd {
        OpsCommand::Status(args) => status::run(&args)?,
        OpsCommand::Nodes(args) => nodes::run(&args)?,
        OpsCommand::Ipam(args) => ipam_cmd::run(&args)?,
        OpsCommand::Policy {
            command: PolicyCommand::Trace(args),
        } => trace::run(&args)?,
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs an operator command, ignoring the outcome code (see [`run_code`]).
pub fn run(cmd: OpsCommand) -> Result<()> {
    run_code(cmd).map(|_| ())
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// weftctl's top level as the lead wires it: `#[command(flatten)]` next to `lab`.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, Subcommand)]
    #[allow(clippy::large_enum_variant)]
    enum Top {
        Lab,
        #[command(flatten)]
        Ops(OpsCommand),
    }

    fn parse(args: &[&str]) -> OpsCommand {
        let argv = std::iter::once("weftctl").chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Top::Ops(cmd) => cmd,
            Top::Lab => panic!("lab"),
        }
    }

    #[test]
    fn flattened_commands_parse() {
        Cli::command_for_tests().debug_assert();
        assert!(matches!(
            parse(&["status", "-o", "json"]),
            OpsCommand::Status(s) if s.out.output == OutputFormat::Json
        ));
        let OpsCommand::Ipam(ipam) = parse(&[
            "ipam",
            "--check",
            "--store",
            "embedded",
            "--store-path",
            "/x",
        ]) else {
            panic!("ipam");
        };
        assert!(ipam.check && !ipam.release);
        assert!(ipam.store.config().is_ok());
        let kube = parse(&["nodes", "--store", "kubernetes", "--kubeconfig", "/k"]);
        assert!(
            matches!(kube, OpsCommand::Nodes(n) if n.store.store == Some(StoreKind::Kubernetes))
        );
        let OpsCommand::Policy {
            command: PolicyCommand::Trace(t),
        } = parse(&[
            "policy",
            "trace",
            "x/a",
            "x/b",
            "--port",
            "80",
            "--protocol",
            "udp",
            "--store",
            "etcd",
            "--etcd-endpoints",
            "http://a:2379,http://b:2379",
        ])
        else {
            panic!("trace");
        };
        assert_eq!(t.port, 80);
        assert_eq!(t.protocol, weft_policy::Protocol::Udp);
        assert_eq!(t.store.etcd_endpoints.len(), 2);
        assert!(matches!(parse(&["nodes"]), OpsCommand::Nodes(_)));
    }

    impl Cli {
        fn command_for_tests() -> clap::Command {
            <Self as clap::CommandFactory>::command()
        }
    }
}
