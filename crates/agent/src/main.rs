//! `weftd`: the weft node agent.
//!
//! Claims this node's pod subnets from the datastore, publishes how to reach them, and
//! programs routes (vxlan or host-gw) to every other node's pods in the network namespace
//! it runs in, and enforces NetworkPolicy there (`policy`). See `/work/cluster-contract.md`
//! and `/work/policy-contract.md` for its command line and files.

mod actual;
mod agent;
mod cli;
mod desired;
mod files;
mod kernel;
mod membership;
mod peers;
mod policy;
mod status;
mod usage;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(args.log_level)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = agent::run(args) => result,
            signal = shutdown_signal() => {
                // Leave every device, route and rule in place: pods keep working, and the
                // next weftd adopts what is there.
                tracing::info!(signal, "shutting down, leaving the node programmed");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "weftd failed");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT with the signal's name.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop weftd with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
