//! [`KubeStore`]: weft's [`Datastore`] on the Kubernetes API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;
use weft_cluster::NodeRecord;
use weft_store::{
    Condition, Datastore, Entry, LeaseId, Listing, PutOptions, PutOutcome, StoreError, StoreFuture,
    WatchStream,
};

use crate::cache::{BackoffConfig, KindCache};
use crate::kinds::{Kind, revision_of};
use crate::node::{annotations_for, apply_body, has_weft_annotations, pod_cidrs};

/// Field manager of weft's server-side applies on Nodes.
pub const FIELD_MANAGER: &str = "weftd";

/// What a lease TTL is reported as: Kubernetes, not weft, decides when a Node is gone.
const NODE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Settings of a [`KubeStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeOptions {
    /// Field manager for the Node annotation applies.
    pub field_manager: String,
    /// Delays between watch retries.
    pub backoff: BackoffConfig,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            field_manager: FIELD_MANAGER.to_string(),
            backoff: BackoffConfig::default(),
        }
    }
}

/// The `kubernetes` datastore.
///
/// Kinds: `nodes` (weft [`NodeRecord`]s synthesized from Nodes; `put` applies weft's
/// annotations only), `pods`, `namespaces`, `networkpolicies` (the objects as JSON,
/// read-only). Pod subnets come from [`Datastore::assigned_subnets`] (the Node's
/// `spec.podCIDRs`); leases are accepted and never expire.
pub struct KubeStore {
    client: kube::Client,
    options: KubeOptions,
    caches: Mutex<HashMap<Kind, Arc<KindCache>>>,
}

impl std::fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStore")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn api_error(e: kube::Error) -> StoreError {
    StoreError::Kubernetes(e.to_string())
}

fn to_json(object: &DynamicObject) -> Result<Value, StoreError> {
    Ok(serde_json::to_value(object)?)
}

impl KubeStore {
    /// A store on `client`. Informers start on first use of a kind.
    pub fn new(client: kube::Client, options: KubeOptions) -> Self {
        KubeStore {
            client,
            options,
            caches: Mutex::new(HashMap::new()),
        }
    }

    fn api(&self, kind: Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        let resource = kind.api_resource();
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// The kind's informer, started if it is not running yet.
    fn cache(&self, kind: Kind) -> Arc<KindCache> {
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        let cache = caches.entry(kind).or_insert_with(|| {
            Arc::new(KindCache::start(
                kind,
                self.api(kind, None),
                self.options.backoff,
            ))
        });
        Arc::clone(cache)
    }

    async fn get_direct(&self, kind: Kind, key: &str) -> Result<Option<Entry>, StoreError> {
        let (namespace, name) = kind.split_key(key)?;
        let Some(object) = self
            .api(kind, namespace)
            .get_opt(name)
            .await
            .map_err(api_error)?
        else {
            return Ok(None);
        };
        let json = to_json(&object)?;
        Ok(kind.entry_of(&json).map(|(key, value)| Entry {
            key,
            value,
            mod_revision: revision_of(&json),
            create_revision: 0,
            lease: None,
        }))
    }

    async fn list_direct(&self, kind: Kind) -> Result<Listing, StoreError> {
        let list = self
            .api(kind, None)
            .list(&ListParams::default())
            .await
            .map_err(api_error)?;
        let mut entries = Vec::with_capacity(list.items.len());
        for object in &list.items {
            let json = to_json(object)?;
            if let Some((key, value)) = kind.entry_of(&json) {
                entries.push(Entry {
                    key,
                    value,
                    mod_revision: revision_of(&json),
                    create_revision: 0,
                    lease: None,
                });
            }
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        // The newest object, not the list's resourceVersion: the informer's snapshots are
        // numbered that way too (kube's watcher keeps the list's version to itself), and a
        // consumer comparing the two must not take this listing as newer than a relist.
        let revision = entries.iter().map(|e| e.mod_revision).max().unwrap_or(0);
        Ok(Listing { entries, revision })
    }

    /// Applies weft's annotations for `record` on its Node (nothing else is touched).
    async fn apply_node_annotations(
        &self,
        name: &str,
        annotations: serde_json::Map<String, Value>,
    ) -> Result<Value, StoreError> {
        let params = PatchParams::apply(&self.options.field_manager).force();
        let body = apply_body(name, annotations);
        let patched = self
            .api(Kind::Nodes, None)
            .patch(name, &params, &Patch::Apply(&body))
            .await
            .map_err(api_error)?;
        to_json(&patched)
    }

    async fn put_node(
        &self,
        key: &str,
        value: &Value,
        condition: Condition,
    ) -> Result<PutOutcome, StoreError> {
        if condition != Condition::Always {
            return Err(unsupported(format!(
                "conditional put of nodes/{key} (Nodes are Kubernetes' to create)"
            )));
        }
        let record: NodeRecord =
            serde_json::from_value(value.clone()).map_err(|e| StoreError::Corrupt {
                what: format!("nodes/{key}"),
                reason: e.to_string(),
            })?;
        if record.name != key {
            return Err(StoreError::Corrupt {
                what: format!("nodes/{key}"),
                reason: format!("record names node {:?}", record.name),
            });
        }
        let patched = self
            .apply_node_annotations(key, annotations_for(&record))
            .await?;
        Ok(PutOutcome::Written {
            revision: revision_of(&patched),
        })
    }

    /// Removes weft's annotations from a Node; true if it had any.
    async fn delete_node(&self, key: &str) -> Result<bool, StoreError> {
        let Some(node) = self
            .api(Kind::Nodes, None)
            .get_opt(key)
            .await
            .map_err(api_error)?
        else {
            return Ok(false);
        };
        if !has_weft_annotations(&to_json(&node)?) {
            return Ok(false);
        }
        self.apply_node_annotations(key, serde_json::Map::new())
            .await?;
        Ok(true)
    }

    async fn node_pod_cidrs(&self, node: &str) -> Result<Vec<IpNet>, StoreError> {
        let object = self
            .api(Kind::Nodes, None)
            .get_opt(node)
            .await
            .map_err(api_error)?
            .ok_or_else(|| StoreError::Kubernetes(format!("node {node:?} does not exist")))?;
        let cidrs = pod_cidrs(&to_json(&object)?);
        if cidrs.is_empty() {
            return Err(StoreError::Kubernetes(format!(
                "node {node:?} has no podCIDRs yet (kube-controller-manager \
                 --allocate-node-cidrs assigns them)"
            )));
        }
        Ok(cidrs)
    }
}

fn unsupported(what: String) -> StoreError {
    StoreError::Unsupported {
        store: "kubernetes",
        what,
    }
}

impl Datastore for KubeStore {
    fn grant_lease(&self, _ttl: Duration) -> StoreFuture<'_, LeaseId> {
        Box::pin(async { Ok(LeaseId(1)) })
    }

    fn keep_alive(&self, _lease: LeaseId) -> StoreFuture<'_, Duration> {
        Box::pin(async { Ok(NODE_LIFETIME) })
    }

    fn revoke_lease(&self, _lease: LeaseId) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn get<'a>(&'a self, kind: &'a str, key: &'a str) -> StoreFuture<'a, Option<Entry>> {
        // Always from the API server: callers ask when their watch does not have the
        // object yet (a pod claimed by the CNI plugin before its watch event arrived).
        Box::pin(async move { self.get_direct(Kind::from_name(kind)?, key).await })
    }

    fn list<'a>(&'a self, kind: &'a str) -> StoreFuture<'a, Listing> {
        Box::pin(async move {
            let kind = Kind::from_name(kind)?;
            match self.cache(kind).listing() {
                Some(listing) => Ok(listing),
                None => self.list_direct(kind).await,
            }
        })
    }

    fn put<'a>(
        &'a self,
        kind: &'a str,
        key: &'a str,
        value: &'a Value,
        opts: PutOptions,
    ) -> StoreFuture<'a, PutOutcome> {
        Box::pin(async move {
            match Kind::from_name(kind)? {
                Kind::Nodes => self.put_node(key, value, opts.condition).await,
                _ => Err(unsupported(format!(
                    "writing {kind}/{key} (the API server owns these objects)"
                ))),
            }
        })
    }

    fn delete<'a>(
        &'a self,
        kind: &'a str,
        key: &'a str,
        condition: Condition,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            match (Kind::from_name(kind)?, condition) {
                (Kind::Nodes, Condition::Always) => self.delete_node(key).await,
                _ => Err(unsupported(format!(
                    "deleting {kind}/{key} (the API server owns these objects)"
                ))),
            }
        })
    }

    fn watch<'a>(&'a self, kind: &'a str) -> StoreFuture<'a, WatchStream> {
        Box::pin(async move { Ok(self.cache(Kind::from_name(kind)?).subscribe()) })
    }

    fn assigned_subnets<'a>(&'a self, node: &'a str) -> StoreFuture<'a, Option<Vec<IpNet>>> {
        Box::pin(async move { self.node_pod_cidrs(node).await.map(Some) })
    }
}

impl KubeStore {
    /// The cached entry of a kind whose informer has synced, without asking the API
    /// server (`None`: not synced yet, or not cached).
    pub fn cached(&self, kind: &str, key: &str) -> Option<Entry> {
        let kind = Kind::from_name(kind).ok()?;
        self.cache(kind).get(key).flatten()
    }
}
