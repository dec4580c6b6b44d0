//! etcd v3 datastore. Keys are `<prefix>/<kind>/<key>` with JSON values; leases map to etcd
//! leases, conditions to transactions, watches to prefix watches that re-list and resume
//! after outages.

mod watch;

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions as EtcdPut, Txn,
    TxnOp, TxnOpResponse,
};
use serde_json::Value;

use crate::datastore::{Datastore, StoreFuture};
use crate::error::StoreError;
use crate::types::{
    Condition, Entry, LeaseId, Listing, PutOptions, PutOutcome, WatchStream, validate_key,
    validate_kind,
};

/// Smallest HTTP/2 keep-alive interval used (see [`EtcdOptions::keep_alive`]).
pub const MIN_KEEP_ALIVE: Duration = Duration::from_secs(6);

/// Connection settings for [`EtcdStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Key prefix for everything weft stores (no trailing `/`).
    pub prefix: String,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one request.
    pub request_timeout: Duration,
    /// HTTP/2 keep-alive interval; a dead connection is noticed within about twice this.
    /// Raised to at least [`MIN_KEEP_ALIVE`]: etcd closes connections that ping more often
    /// than its `--grpc-keepalive-min-time` (5 s by default).
    pub keep_alive: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            prefix: "/weft/v1".to_string(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(10),
        }
    }
}

/// Datastore on an etcd v3 cluster (tested against etcd 3.4).
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    watch_client: Client,
    prefix: String,
    request_timeout: Duration,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to `endpoints` (e.g. `http://127.0.0.1:2379`). The underlying channel
    /// reconnects by itself after etcd restarts; requests made meanwhile fail with
    /// [`StoreError::Etcd`].
    pub async fn connect(endpoints: &[String], options: EtcdOptions) -> Result<Self, StoreError> {
        let keep_alive = options.keep_alive.max(MIN_KEEP_ALIVE);
        let streaming = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(keep_alive, keep_alive)
            .with_keep_alive_while_idle(true);
        let unary = streaming.clone().with_timeout(options.request_timeout);
        let client = Client::connect(endpoints, Some(unary)).await?;
        // The request timeout would also cut idle watch streams, so watches get their own
        // channel without it; HTTP/2 keep-alive still detects a dead etcd.
        let watch_client = Client::connect(endpoints, Some(streaming)).await?;
        Ok(EtcdStore {
            client,
            watch_client,
            prefix: options.prefix.trim_end_matches('/').to_string(),
            request_timeout: options.request_timeout,
        })
    }

    fn kind_prefix(&self, kind: &str) -> String {
        format!("{}/{kind}/", self.prefix)
    }

    fn full_key(&self, kind: &str, key: &str) -> String {
        format!("{}/{kind}/{key}", self.prefix)
    }
}

/// Builds an [`Entry`] from an etcd key-value under `kind_prefix`; `None` for foreign keys.
pub(crate) fn to_entry(kind_prefix: &str, kv: &KeyValue) -> Result<Option<Entry>, StoreError> {
    let Some(key) = kv.key_str().ok().and_then(|k| k.strip_prefix(kind_prefix)) else {
        return Ok(None);
    };
    let value = serde_json::from_slice(kv.value()).map_err(|e| StoreError::Corrupt {
        what: format!("{kind_prefix}{key}"),
        reason: e.to_string(),
    })?;
    Ok(Some(Entry {
        key: key.to_string(),
        value,
        mod_revision: kv.mod_revision(),
        create_revision: kv.create_revision(),
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    }))
}

/// All entries under `kind_prefix` and the store revision of the read.
pub(crate) async fn list_prefix(client: &Client, kind_prefix: &str) -> Result<Listing, StoreError> {
    let resp = client
        .kv_client()
        .get(kind_prefix, Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut entries = Vec::new();
    for kv in resp.kvs() {
        match to_entry(kind_prefix, kv) {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "skipping undecodable etcd entry"),
        }
    }
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Listing { entries, revision })
}

/// etcd reports a missing lease as a gRPC error; give it its own variant.
fn lease_error(e: etcd_client::Error, lease: LeaseId) -> StoreError {
    if e.to_string().contains("lease not found") {
        StoreError::LeaseNotFound(lease)
    } else {
        e.into()
    }
}

fn check(kind: &str, key: Option<&str>) -> Result<(), StoreError> {
    validate_kind(kind)?;
    key.map_or(Ok(()), validate_key)
}

impl EtcdStore {
    async fn keep_alive_once(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let mut client = self.client.clone();
        let (mut keeper, mut responses) = client
            .lease_keep_alive(lease.0)
            .await
            .map_err(|e| lease_error(e, lease))?;
        keeper
            .keep_alive()
            .await
            .map_err(|e| lease_error(e, lease))?;
        let reply = tokio::time::timeout(self.request_timeout, responses.message())
            .await
            .map_err(|_| StoreError::Etcd("lease keep-alive timed out".to_string()))?
            .map_err(|e| lease_error(e, lease))?;
        match reply {
            Some(r) if r.ttl() > 0 => Ok(Duration::from_secs(r.ttl().unsigned_abs())),
            _ => Err(StoreError::LeaseNotFound(lease)),
        }
    }

    async fn put_impl(
        &self,
        full_key: String,
        kind_prefix: String,
        value: &Value,
        opts: PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        let bytes = serde_json::to_vec(value)?;
        let put_opts = opts.lease.map(|l| EtcdPut::new().with_lease(l.0));
        let lease_err = |e| match opts.lease {
            Some(l) => lease_error(e, l),
            None => StoreError::from(e),
        };
        let mut kv = self.client.kv_client();
        let compare = match opts.condition {
            Condition::Always => {
                let resp = kv.put(full_key, bytes, put_opts).await.map_err(lease_err)?;
                let revision = resp.header().map_or(0, |h| h.revision());
                return Ok(PutOutcome::Written { revision });
            }
            Condition::Absent => Compare::create_revision(full_key.clone(), CompareOp::Equal, 0),
            Condition::ModRevision(r) => {
                Compare::mod_revision(full_key.clone(), CompareOp::Equal, r)
            }
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(full_key.clone(), bytes, put_opts)])
            .or_else([TxnOp::get(full_key, None)]);
        let resp = kv.txn(txn).await.map_err(lease_err)?;
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| h.revision());
            return Ok(PutOutcome::Written { revision });
        }
        let mut current = None;
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op
                && let Some(kv) = get.kvs().first()
            {
                current = to_entry(&kind_prefix, kv)?;
            }
        }
        Ok(PutOutcome::Conflict { current })
    }

    async fn delete_impl(
        &self,
        full_key: String,
        condition: Condition,
    ) -> Result<bool, StoreError> {
        let mut kv = self.client.kv_client();
        let compare = match condition {
            Condition::Always => {
                return Ok(kv.delete(full_key, None).await?.deleted() > 0);
            }
            // Deleting "only if absent" can never delete anything.
            Condition::Absent => return Ok(false),
            Condition::ModRevision(r) => {
                Compare::mod_revision(full_key.clone(), CompareOp::Equal, r)
            }
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::delete(full_key, None)]);
        Ok(kv.txn(txn).await?.succeeded())
    }
}

impl Datastore for EtcdStore {
    fn grant_lease(&self, ttl: Duration) -> StoreFuture<'_, LeaseId> {
        Box::pin(async move {
            let secs = i64::try_from(ttl.as_millis().div_ceil(1000))
                .unwrap_or(i64::MAX)
                .max(1);
            let resp = self.client.clone().lease_grant(secs, None).await?;
            Ok(LeaseId(resp.id()))
        })
    }

    fn keep_alive(&self, lease: LeaseId) -> StoreFuture<'_, Duration> {
        Box::pin(self.keep_alive_once(lease))
    }

    fn revoke_lease(&self, lease: LeaseId) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            match self.client.clone().lease_revoke(lease.0).await {
                Ok(_) => Ok(()),
                Err(e) => match lease_error(e, lease) {
                    StoreError::LeaseNotFound(_) => Ok(()),
                    other => Err(other),
                },
            }
        })
    }

    fn get<'a>(&'a self, kind: &'a str, key: &'a str) -> StoreFuture<'a, Option<Entry>> {
        Box::pin(async move {
            check(kind, Some(key))?;
            let resp = self
                .client
                .kv_client()
                .get(self.full_key(kind, key), None)
                .await?;
            match resp.kvs().first() {
                Some(kv) => to_entry(&self.kind_prefix(kind), kv),
                None => Ok(None),
            }
        })
    }

    fn list<'a>(&'a self, kind: &'a str) -> StoreFuture<'a, Listing> {
        Box::pin(async move {
            check(kind, None)?;
            list_prefix(&self.client, &self.kind_prefix(kind)).await
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
            check(kind, Some(key))?;
            self.put_impl(
                self.full_key(kind, key),
                self.kind_prefix(kind),
                value,
                opts,
            )
            .await
        })
    }

    fn delete<'a>(
        &'a self,
        kind: &'a str,
        key: &'a str,
        condition: Condition,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            check(kind, Some(key))?;
            self.delete_impl(self.full_key(kind, key), condition).await
        })
    }

    fn watch<'a>(&'a self, kind: &'a str) -> StoreFuture<'a, WatchStream> {
        Box::pin(async move {
            check(kind, None)?;
            Ok(watch::spawn(
                self.client.clone(),
                self.watch_client.clone(),
                self.kind_prefix(kind),
            ))
        })
    }
}
