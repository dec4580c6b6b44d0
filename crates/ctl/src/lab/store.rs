//! Writing Kubernetes objects into the lab's datastore (kinds `namespaces`, `pods`,
//! `networkpolicies`, per the cluster contract) for weftd to read.

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use weft_datapath::{NetnsFd, named_netns_path};
use weft_store::{Condition, Datastore, PutOptions, PutOutcome, StoreConfig};

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

/// Runs `work` against the lab's datastore on its own thread and runtime. With etcd the
/// thread runs inside the fabric namespace (etcd listens on the fabric bridge, unreachable
/// from the root namespace).
pub fn with_store<T, F, Fut>(paths: &LabPaths, store: StoreKind, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Arc<dyn Datastore>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
{
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
    let run = move || -> Result<T> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let store = config.open().await.context("open datastore")?;
            work(store).await
        })
    };
    match netns {
        Some(ns) => weft_datapath::run_in_netns(&ns, run)?,
        None => std::thread::spawn(run)
            .join()
            .map_err(|_| anyhow!("store thread panicked"))?,
    }
}

/// Applies `ops` in order; returns the store revision at which the last one took effect
/// (`None` when nothing changed). A put reports its own revision; a delete does not, so the
/// revision of a listing of its kind right after it stands in (never lower than the delete's).
pub fn apply(paths: &LabPaths, store: StoreKind, ops: Vec<StoreOp>) -> Result<Option<i64>> {
    if ops.is_empty() {
        return Ok(None);
    }
    with_store(paths, store, move |store| async move {
        let mut revision = None;
        for op in &ops {
            let written = match op {
                StoreOp::Put { kind, key, value } => {
                    let outcome = store
                        .put(kind, key, value, PutOptions::default())
                        .await
                        .with_context(|| format!("store put {kind}/{key}"))?;
                    match outcome {
                        PutOutcome::Written { revision } => revision,
                        PutOutcome::Conflict { .. } => bail!("store put {kind}/{key}: conflict"),
                    }
                }
                StoreOp::Delete { kind, key } => {
                    store
                        .delete(kind, key, Condition::Always)
                        .await
                        .with_context(|| format!("store delete {kind}/{key}"))?;
                    store.list(kind).await?.revision
                }
            };
            revision = Some(revision.map_or(written, |r: i64| r.max(written)));
        }
        Ok(revision)
    })
}

/// The current values of `(kind, key)` pairs (`None`: absent), to restore after a failure.
pub fn snapshot(
    paths: &LabPaths,
    store: StoreKind,
    keys: Vec<(&'static str, String)>,
) -> Result<Vec<StoreOp>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    with_store(paths, store, move |store| async move {
        let mut restore = Vec::new();
        for (kind, key) in keys {
            let current = store.get(kind, &key).await?;
            restore.push(match current {
                Some(entry) => StoreOp::Put {
                    kind,
                    key,
                    value: entry.value,
                },
                None => StoreOp::Delete { kind, key },
            });
        }
        Ok(restore)
    })
}
