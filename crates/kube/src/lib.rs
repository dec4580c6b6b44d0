//! The `kubernetes` datastore: [`weft_store::Datastore`] on the Kubernetes API, so weftd's
//! reconcile logic is the same code whichever store it runs on.
//!
//! | kind | from | key | writes |
//! |---|---|---|---|
//! | `nodes` | `v1/Node` → weft `NodeRecord` ([`node`]) | name | `put`: server-side apply of weft's annotations only |
//! | `pods` | `v1/Pod`, cut to what NetworkPolicy reads | `namespace/name` | none |
//! | `namespaces` | `v1/Namespace` (name, labels) | name | none |
//! | `networkpolicies` | `networking.k8s.io/v1/NetworkPolicy` | `namespace/name` | none |
//!
//! Each kind is one shared informer (kube-rs watcher: list, watch, resume after a
//! disconnect, relist with a fresh snapshot after 410 Gone, backed-off retries) started on
//! first use. Pod subnets are the Node's `spec.podCIDRs` ([`weft_store::Datastore::assigned_subnets`]);
//! leases are accepted and never expire (a Node lives as long as Kubernetes says).
//!
//! RBAC the agent's service account needs (ClusterRole): `nodes`: get, list, watch, patch;
//! `pods`, `namespaces`: get, list, watch; `networking.k8s.io` `networkpolicies`: get,
//! list, watch.
//!
//! Revisions are resourceVersions read as numbers (every API server derives them from etcd
//! revisions); a relist's snapshot is numbered above everything seen before it.
//!
//! This library enables no k8s-openapi version feature: the binary linking it must
//! (`k8s-openapi = { version = "0.29.0", features = ["latest"] }`).

mod backoff;
mod cache;
pub mod kinds;
pub mod node;
mod store;

use std::path::Path;
use std::sync::Arc;

use kube::config::{KubeConfigOptions, Kubeconfig};
use weft_store::{Datastore, StoreError};

pub use backoff::WatchBackoff;
pub use cache::BackoffConfig;
pub use store::{FIELD_MANAGER, KubeOptions, KubeStore};

fn kube_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Kubernetes(format!("{what}: {e}"))
}

/// Client configuration: `kubeconfig` if given; else the in-cluster service account when
/// running in a pod (`KUBERNETES_SERVICE_HOST` set); else kube's inference (`$KUBECONFIG`,
/// `~/.kube/config`).
pub async fn client_config(kubeconfig: Option<&Path>) -> Result<kube::Config, StoreError> {
    match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| kube_error(&format!("read {}", path.display()), e))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| kube_error(&format!("kubeconfig {}", path.display()), e))
        }
        None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
            kube::Config::incluster().map_err(|e| kube_error("in-cluster config", e))
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| kube_error("kubeconfig", e)),
    }
}

/// Opens the `kubernetes` datastore (see [`client_config`] for where the API server and
/// credentials come from). Nothing is requested until the store is used.
pub async fn open(kubeconfig: Option<&Path>) -> Result<Arc<dyn Datastore>, StoreError> {
    let config = client_config(kubeconfig).await?;
    let client = kube::Client::try_from(config).map_err(|e| kube_error("client", e))?;
    Ok(Arc::new(KubeStore::new(client, KubeOptions::default())))
}
