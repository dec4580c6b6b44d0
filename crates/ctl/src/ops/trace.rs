//! `weftctl policy trace FROM TO --port P`: would a new connection be allowed by the
//! NetworkPolicies in the live datastore, and which rule decides? The inventory is read
//! and the packet traced by [`crate::policy`], the same code as `weftctl lab trace`.

use anyhow::Result;
use serde_json::{Value, json};
use weft_policy::Protocol;

use super::{OutputArgs, OutputFormat, StoreArgs, print_json, runtime};
use crate::policy::{self, LoadedCluster};

/// `weftctl policy trace` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct TraceArgs {
    /// Source: `namespace/pod` or an IP address.
    pub from: String,
    /// Destination: `namespace/pod` or an IP address.
    pub to: String,
    /// Destination port.
    #[arg(long)]
    pub port: u16,
    /// Protocol: tcp, udp or sctp.
    #[arg(long, default_value = "tcp", value_parser = policy::parse_protocol)]
    pub protocol: Protocol,
    /// Datastore.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// The traced packet as text (or JSON with `json`), plus the objects that were skipped.
pub fn report(
    loaded: &LoadedCluster,
    args: &TraceArgs,
    json: bool,
) -> Result<(bool, Value, String)> {
    let t = policy::trace(
        &loaded.cluster,
        &policy::parse_endpoint(&args.from)?,
        &policy::parse_endpoint(&args.to)?,
        &args.protocol,
        args.port,
    )?;
    let mut text = policy::render_trace(&loaded.cluster, &t);
    for s in &loaded.skipped {
        text.push_str(&format!("  (skipped unreadable object: {s})\n"));
    }
    let value = if json {
        let mut v = policy::trace_json(&loaded.cluster, &t);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("skipped".into(), json!(loaded.skipped));
            obj.insert("revision".into(), json!(loaded.revision));
        }
        v
    } else {
        Value::Null
    };
    Ok((t.verdict.allowed, value, text))
}

/// Runs the command; false when denied.
pub fn run(args: &TraceArgs) -> Result<bool> {
    let loaded = runtime()?.block_on(async {
        let store = args.store.open().await?;
        policy::load_cluster(store.as_ref()).await
    })?;
    let json = args.out.output == OutputFormat::Json;
    let (allowed, value, text) = report(&loaded, args, json)?;
    if json {
        print_json(&value)?;
    } else {
        print!("{text}");
    }
    Ok(allowed)
}
