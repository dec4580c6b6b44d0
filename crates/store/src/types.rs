//! Data types shared by all datastores.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::StoreError;

/// A lease: objects attached to it disappear when it expires or is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaseId(pub i64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// One stored object.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Key within its kind.
    pub key: String,
    /// The JSON value.
    pub value: Value,
    /// Store revision of the last write (use it for [`Condition::ModRevision`]).
    pub mod_revision: i64,
    /// Store revision of the creation.
    pub create_revision: i64,
    /// The lease the object is attached to, if any.
    pub lease: Option<LeaseId>,
}

impl Entry {
    /// Decodes the value into `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_value(self.value.clone()).map_err(|e| StoreError::Corrupt {
            what: self.key.clone(),
            reason: e.to_string(),
        })
    }
}

/// All objects of a kind at one store revision.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listing {
    /// Objects sorted by key.
    pub entries: Vec<Entry>,
    /// Store revision the listing reflects.
    pub revision: i64,
}

/// When a write may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Condition {
    /// Unconditionally.
    #[default]
    Always,
    /// Only if the key does not exist (a live object; expired ones do not count).
    Absent,
    /// Only if the key exists with exactly this modification revision.
    ModRevision(i64),
}

/// Options of [`crate::Datastore::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PutOptions {
    /// Attach the object to this lease.
    pub lease: Option<LeaseId>,
    /// Compare-and-swap condition.
    pub condition: Condition,
}

/// Result of a put.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// Written at this revision.
    Written {
        /// Store revision of the write.
        revision: i64,
    },
    /// The condition did not hold; nothing was written.
    Conflict {
        /// What is stored now (`None`: absent).
        current: Option<Entry>,
    },
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// Full state of the kind: first event of every watch, and again after the watch had
    /// to be re-established (store restart, compaction). Replace local state with it.
    Snapshot(Listing),
    /// An object was created or changed.
    Put(Entry),
    /// An object was deleted or its lease expired.
    Delete {
        /// Its key.
        key: String,
        /// Store revision of the deletion (best effort for lease expiry).
        revision: i64,
    },
}

/// Stream of [`WatchEvent`]s for one kind. Dropping it stops the background watcher.
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::Receiver<WatchEvent>,
}

impl WatchStream {
    pub(crate) fn new(rx: mpsc::Receiver<WatchEvent>) -> Self {
        WatchStream { rx }
    }

    /// A stream fed by a datastore implemented outside this crate: send
    /// [`WatchEvent::Snapshot`] first, and stop sending once [`mpsc::Sender::closed`]
    /// resolves (the consumer dropped the stream).
    pub fn from_receiver(rx: mpsc::Receiver<WatchEvent>) -> Self {
        WatchStream { rx }
    }

    /// The next event; `None` only if the store shut down.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        self.rx.recv().await
    }

    /// Like [`Self::next`] but for non-async callers; must not be called on a runtime thread.
    pub fn blocking_next(&mut self) -> Option<WatchEvent> {
        self.rx.blocking_recv()
    }
}

/// Events buffered per watch before the watcher waits for the consumer.
pub(crate) const WATCH_BUFFER: usize = 256;

/// Kinds name collections: lowercase letters, digits and `-` (they become directory names
/// and etcd key segments).
pub fn validate_kind(kind: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::InvalidName {
            what: "kind",
            name: kind.to_string(),
            reason,
        })
    };
    if kind.is_empty() || kind.len() > 63 {
        return bad("must be 1 to 63 characters");
    }
    if !kind
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("only a-z, 0-9 and '-' are allowed");
    }
    Ok(())
}

/// Keys are any non-empty UTF-8 text up to 512 bytes without control characters; the
/// embedded store escapes what a file name cannot hold.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::InvalidName {
            what: "key",
            name: key.to_string(),
            reason,
        })
    };
    if key.is_empty() || key.len() > 512 {
        return bad("must be 1 to 512 bytes");
    }
    if key.chars().any(char::is_control) {
        return bad("control characters are not allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_kind("subnets").is_ok());
        assert!(validate_kind("node-records2").is_ok());
        for k in ["", "Nodes", "a/b", "a.b", "a b"] {
            assert!(validate_kind(k).is_err(), "{k}");
        }
        assert!(validate_key("10.244.1.0/24").is_ok());
        assert!(validate_key("default/pod-1").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("a\nb").is_err());
    }
}
