//! Writing Kubernetes objects into the lab's datastore (kinds `namespaces`, `pods`,
//! `networkpolicies`, per the cluster contract) for weftd to read.

use anyhow::{Context, Result, anyhow};
use serde_json::Value;
use weft_datapath::{NetnsFd, named_netns_path};
use weft_store::{Condition, PutOptions, StoreConfig};

use super::agents::etcd_endpoint;
use super::state::{LabPaths, StoreKind};

/// One change to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    /// Write `value` at `(kind, key)`.
    Put {
        /// Kind, e.g. `pods`.
        kind: &'static str,
        /// Key, e.g. `default/web`.
        key: String,
        /// The object.
        value: Value,
    },
    /// Delete `(kind, key)`.
    Delete {
        /// Kind.
        kind: &'static str,
        /// Key.
        key: String,
    },
}

/// Applies `ops` in order. With etcd, the client runs on a thread inside the fabric
/// namespace (etcd listens on the fabric bridge, unreachable from the root namespace).
pub fn apply(paths: &LabPaths, store: StoreKind, ops: Vec<StoreOp>) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let (config, netns) = match store {
        StoreKind::Embedded => (
            StoreConfig::Embedded {
                dir: paths.store_dir(),
            },
            None,
        ),
        StoreKind::Etcd => (
            StoreConfig::Etcd {
                endpoints: vec![etcd_endpoint()],
                prefix: None,
            },
            Some(NetnsFd::open(named_netns_path(&paths.fabric_netns()))?),
        ),
    };
    let work = move || -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let store = config.open().await.context("open datastore")?;
            for op in &ops {
                match op {
                    StoreOp::Put { kind, key, value } => {
                        store
                            .put(kind, key, value, PutOptions::default())
                            .await
                            .with_context(|| format!("store put {kind}/{key}"))?;
                    }
                    StoreOp::Delete { kind, key } => {
                        store
                            .delete(kind, key, Condition::Always)
                            .await
                            .with_context(|| format!("store delete {kind}/{key}"))?;
                    }
                }
            }
            Ok(())
        })
    };
    match netns {
        Some(ns) => weft_datapath::run_in_netns(&ns, work)?,
        None => std::thread::spawn(work)
            .join()
            .map_err(|_| anyhow!("store thread panicked"))?,
    }
}
