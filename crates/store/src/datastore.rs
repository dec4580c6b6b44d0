//! The datastore trait, shaped by what the node agent needs.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

use crate::error::StoreError;
use crate::types::{Condition, Entry, LeaseId, Listing, PutOptions, PutOutcome, WatchStream};

/// A boxed future, so the trait stays usable as `dyn Datastore`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Typed key/value collections ("kinds") with leases, compare-and-swap and watches.
///
/// Objects are JSON values addressed by `(kind, key)`; see [`crate::validate_kind`] and
/// [`crate::validate_key`]. Objects attached to a lease vanish when it expires.
/// All methods need a tokio runtime.
pub trait Datastore: Send + Sync {
    /// Creates a lease that expires `ttl` after the last keep-alive (etcd rounds up to
    /// whole seconds).
    fn grant_lease(&self, ttl: Duration) -> StoreFuture<'_, LeaseId>;

    /// Renews a lease; returns its TTL. [`StoreError::LeaseNotFound`] if it already expired.
    fn keep_alive(&self, lease: LeaseId) -> StoreFuture<'_, Duration>;

    /// Revokes a lease, deleting its objects. Revoking an unknown lease is not an error.
    fn revoke_lease(&self, lease: LeaseId) -> StoreFuture<'_, ()>;

    /// One object, if it exists.
    fn get<'a>(&'a self, kind: &'a str, key: &'a str) -> StoreFuture<'a, Option<Entry>>;

    /// All objects of a kind.
    fn list<'a>(&'a self, kind: &'a str) -> StoreFuture<'a, Listing>;

    /// Writes an object if `opts.condition` holds (atomically with the check).
    fn put<'a>(
        &'a self,
        kind: &'a str,
        key: &'a str,
        value: &'a Value,
        opts: PutOptions,
    ) -> StoreFuture<'a, PutOutcome>;

    /// Deletes an object if `condition` holds; true if something was deleted.
    fn delete<'a>(
        &'a self,
        kind: &'a str,
        key: &'a str,
        condition: Condition,
    ) -> StoreFuture<'a, bool>;

    /// Watches a kind: a [`crate::WatchEvent::Snapshot`] first, then changes. The watcher
    /// survives store outages and sends a fresh snapshot when it reconnects.
    fn watch<'a>(&'a self, kind: &'a str) -> StoreFuture<'a, WatchStream>;

    /// Pod subnets assigned to `node` by the cluster itself rather than claimed through
    /// [`crate::subnets`]: the Kubernetes datastore returns the Node's `spec.podCIDRs`
    /// (set by kube-controller-manager `--allocate-node-cidrs`), and an error while the
    /// Node has none yet (retry later). `None` (the default, embedded and etcd): claim
    /// subnets with [`crate::subnets::claim_node_subnets_with_hints`].
    fn assigned_subnets<'a>(&'a self, node: &'a str) -> StoreFuture<'a, Option<Vec<IpNet>>> {
        let _ = node;
        Box::pin(async { Ok(None) })
    }
}
