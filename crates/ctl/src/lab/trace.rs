//! `lab trace FROM TO`: what the reference evaluator says about one new connection, given
//! the objects in the lab's datastore (the same objects every weftd enforces).

use anyhow::Result;
use weft_policy::{Cluster, Protocol};

use super::state::{LabPaths, LabState};
use super::store::with_store;
use crate::policy::{LoadedCluster, Trace, load_cluster, parse_endpoint, trace as run_trace};

/// Reads the lab's store into a cluster (skipped objects are listed in it).
pub fn lab_cluster(paths: &LabPaths) -> Result<LoadedCluster> {
    let state = LabState::load(paths)?;
    with_store(paths, state.store, |store| async move {
        load_cluster(store.as_ref()).await
    })
}

/// Traces `from` -> `to` (`namespace/pod` or IP) on `protocol`/`port`; warns on stderr about
/// objects the agents would skip too.
pub fn trace(
    paths: &LabPaths,
    from: &str,
    to: &str,
    protocol: &Protocol,
    port: u16,
) -> Result<(Cluster, Trace)> {
    let from = parse_endpoint(from)?;
    let to = parse_endpoint(to)?;
    let loaded = lab_cluster(paths)?;
    for line in &loaded.skipped {
        eprintln!("warning: skipped {line}");
    }
    let t = run_trace(&loaded.cluster, &from, &to, protocol, port)?;
    Ok((loaded.cluster, t))
}
