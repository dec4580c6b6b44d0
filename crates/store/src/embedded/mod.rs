//! File-backed datastore for one machine and the lab. See [`files`] for the format.

mod files;
mod watch;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::datastore::{Datastore, StoreFuture};
use crate::error::StoreError;
use crate::types::{
    Condition, Entry, LeaseId, Listing, PutOptions, PutOutcome, WatchStream, validate_key,
    validate_kind,
};
use files::Files;

/// Tuning of the embedded store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// How often watchers check the revision file.
    pub poll_interval: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// A directory of JSON files shared (with `flock`) by every agent on one host.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    files: Arc<Files>,
    options: EmbeddedOptions,
}

impl EmbeddedStore {
    /// Opens (creating if needed) a store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// Opens (creating if needed) a store in `dir`.
    pub fn open_with(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self, StoreError> {
        Ok(EmbeddedStore {
            files: Arc::new(Files::open(dir.as_ref())?),
            options,
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        self.files.root()
    }

    /// Runs a synchronous file operation on tokio's blocking pool: lock waits and fsync
    /// must not stall the runtime.
    fn blocking<T, F>(&self, op: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&Files) -> Result<T, StoreError> + Send + 'static,
    {
        let files = Arc::clone(&self.files);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || op(&files))
                .await
                .map_err(|e| StoreError::Internal(format!("embedded store task: {e}")))?
        })
    }
}

fn check(kind: &str, key: Option<&str>) -> Result<(), StoreError> {
    validate_kind(kind)?;
    key.map_or(Ok(()), validate_key)
}

impl Datastore for EmbeddedStore {
    fn grant_lease(&self, ttl: Duration) -> StoreFuture<'_, LeaseId> {
        self.blocking(move |f| f.grant(ttl))
    }

    fn keep_alive(&self, lease: LeaseId) -> StoreFuture<'_, Duration> {
        self.blocking(move |f| f.keep_alive(lease))
    }

    fn revoke_lease(&self, lease: LeaseId) -> StoreFuture<'_, ()> {
        self.blocking(move |f| f.revoke(lease))
    }

    fn get<'a>(&'a self, kind: &'a str, key: &'a str) -> StoreFuture<'a, Option<Entry>> {
        if let Err(e) = check(kind, Some(key)) {
            return Box::pin(async { Err(e) });
        }
        let (kind, key) = (kind.to_string(), key.to_string());
        self.blocking(move |f| f.get(&kind, &key))
    }

    fn list<'a>(&'a self, kind: &'a str) -> StoreFuture<'a, Listing> {
        if let Err(e) = check(kind, None) {
            return Box::pin(async { Err(e) });
        }
        let kind = kind.to_string();
        self.blocking(move |f| f.list(&kind).map(|(listing, _)| listing))
    }

    fn put<'a>(
        &'a self,
        kind: &'a str,
        key: &'a str,
        value: &'a Value,
        opts: PutOptions,
    ) -> StoreFuture<'a, PutOutcome> {
        if let Err(e) = check(kind, Some(key)) {
            return Box::pin(async { Err(e) });
        }
        let (kind, key, value) = (kind.to_string(), key.to_string(), value.clone());
        self.blocking(move |f| f.put(&kind, &key, &value, opts))
    }

    fn delete<'a>(
        &'a self,
        kind: &'a str,
        key: &'a str,
        condition: Condition,
    ) -> StoreFuture<'a, bool> {
        if let Err(e) = check(kind, Some(key)) {
            return Box::pin(async { Err(e) });
        }
        let (kind, key) = (kind.to_string(), key.to_string());
        self.blocking(move |f| f.delete(&kind, &key, condition))
    }

    fn watch<'a>(&'a self, kind: &'a str) -> StoreFuture<'a, WatchStream> {
        let result = check(kind, None).and_then(|()| {
            watch::spawn(
                Arc::clone(&self.files),
                kind.to_string(),
                self.options.poll_interval,
            )
            .map_err(|e| StoreError::Internal(format!("start watch thread: {e}")))
        });
        Box::pin(async { result })
    }
}
