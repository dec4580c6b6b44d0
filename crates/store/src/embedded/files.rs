//! The embedded store's on-disk format and its synchronous operations.
//!
//! Layout under the root directory:
//! - `lock`: `flock`ed exclusively by writers, shared by readers, so several processes on
//!   one host can share the directory;
//! - `revision`: the store revision, bumped on every write (watchers poll it);
//! - `leases/<id>.json`: TTL and expiry time (Unix milliseconds) of each lease;
//! - `objects/<kind>/<escaped key>.json`: value plus revisions and lease.
//!
//! Every file is replaced atomically (temp file + rename), so a reader never sees half a
//! file even without the lock, and a crash leaves either the old or the new version.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::types::{Condition, Entry, LeaseId, Listing, PutOptions, PutOutcome};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredObject {
    value: Value,
    mod_revision: i64,
    create_revision: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease: Option<LeaseId>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredLease {
    ttl_ms: u64,
    expires_at_ms: u64,
}

/// Lease expiry times read during one operation (`None`: lease gone).
type LeaseCache = HashMap<LeaseId, Option<u64>>;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Synchronous core of the embedded store.
#[derive(Debug)]
pub(crate) struct Files {
    root: PathBuf,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// File name for a key: safe characters stay, everything else becomes `%XX` per byte, so
/// keys like `10.244.1.0/24` or `default/web-0` map to one flat, reversible name.
pub(crate) fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 5);
    for (i, b) in key.bytes().enumerate() {
        let safe = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'@' | b'.');
        if safe && !(i == 0 && b == b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".json");
    out
}

/// Inverse of [`encode_key`]; `None` for names that are not object files (temp files).
pub(crate) fn decode_key(name: &str) -> Option<String> {
    let stem = name.strip_suffix(".json")?;
    if stem.starts_with('.') {
        return None;
    }
    let mut bytes = Vec::with_capacity(stem.len());
    let mut rest = stem.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

impl Files {
    pub(crate) fn open(root: &Path) -> Result<Self, StoreError> {
        for dir in [root.join("objects"), root.join("leases")] {
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        }
        let files = Files {
            root: root.to_path_buf(),
        };
        files.lock_file()?;
        Ok(files)
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn lock_file(&self) -> Result<File, StoreError> {
        let path = self.root.join("lock");
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open lock file", &path))
    }

    /// Holds the exclusive lock while `f` runs. Each call opens its own file description,
    /// so threads of one process exclude each other just like separate processes do.
    fn write_locked<T>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let lock = self.lock_file()?;
        lock.lock()
            .map_err(io_err("lock", &self.root.join("lock")))?;
        f(self)
    }

    fn read_locked<T>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let lock = self.lock_file()?;
        lock.lock_shared()
            .map_err(io_err("lock", &self.root.join("lock")))?;
        f(self)
    }

    /// Current store revision (read without the lock: the file is replaced atomically).
    pub(crate) fn revision(&self) -> Result<i64, StoreError> {
        let path = self.root.join("revision");
        match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|_| StoreError::Corrupt {
                what: path.display().to_string(),
                reason: format!("not a number: {text:?}"),
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    fn bump_revision(&self) -> Result<i64, StoreError> {
        let next = self.revision()? + 1;
        write_atomic(&self.root.join("revision"), next.to_string().as_bytes())?;
        Ok(next)
    }

    fn lease_path(&self, id: LeaseId) -> PathBuf {
        self.root.join("leases").join(format!("{}.json", id.0))
    }

    fn kind_dir(&self, kind: &str) -> PathBuf {
        self.root.join("objects").join(kind)
    }

    fn object_path(&self, kind: &str, key: &str) -> PathBuf {
        self.kind_dir(kind).join(encode_key(key))
    }

    fn read_lease(&self, id: LeaseId) -> Result<Option<StoredLease>, StoreError> {
        read_json(&self.lease_path(id))
    }

    fn lease_expiry(&self, id: LeaseId, cache: &mut LeaseCache) -> Result<Option<u64>, StoreError> {
        if let Some(known) = cache.get(&id) {
            return Ok(*known);
        }
        let expiry = self.read_lease(id)?.map(|l| l.expires_at_ms);
        cache.insert(id, expiry);
        Ok(expiry)
    }

    /// Whether an object is visible now; objects whose lease expired or vanished are not.
    fn is_live(
        &self,
        obj: &StoredObject,
        now: u64,
        cache: &mut LeaseCache,
    ) -> Result<bool, StoreError> {
        match obj.lease {
            None => Ok(true),
            Some(id) => Ok(self.lease_expiry(id, cache)?.is_some_and(|e| e > now)),
        }
    }

    fn read_live(
        &self,
        kind: &str,
        key: &str,
        cache: &mut LeaseCache,
    ) -> Result<Option<Entry>, StoreError> {
        let Some(obj) = read_json::<StoredObject>(&self.object_path(kind, key))? else {
            return Ok(None);
        };
        if !self.is_live(&obj, now_ms(), cache)? {
            return Ok(None);
        }
        Ok(Some(to_entry(key.to_string(), obj)))
    }

    pub(crate) fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.write_locked(|s| {
            s.collect_garbage()?;
            let id = LeaseId(s.bump_revision()?);
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            let lease = StoredLease {
                ttl_ms,
                expires_at_ms: now_ms().saturating_add(ttl_ms),
            };
            write_atomic(&s.lease_path(id), &serde_json::to_vec(&lease)?)?;
            Ok(id)
        })
    }

    pub(crate) fn keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError> {
        self.write_locked(|s| {
            let now = now_ms();
            let lease = match s.read_lease(id)? {
                Some(l) if l.expires_at_ms > now => l,
                _ => return Err(StoreError::LeaseNotFound(id)),
            };
            let renewed = StoredLease {
                ttl_ms: lease.ttl_ms,
                expires_at_ms: now.saturating_add(lease.ttl_ms),
            };
            write_atomic(&s.lease_path(id), &serde_json::to_vec(&renewed)?)?;
            Ok(Duration::from_millis(lease.ttl_ms))
        })
    }

    pub(crate) fn revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.write_locked(|s| {
            remove_if_exists(&s.lease_path(id))?;
            s.collect_garbage()
        })
    }

    /// Removes expired lease files and the objects of dead leases; bumps the revision if
    /// anything visible went away. Caller holds the write lock.
    fn collect_garbage(&self) -> Result<(), StoreError> {
        let now = now_ms();
        for (id, path) in self.lease_files()? {
            if self.read_lease(id)?.is_none_or(|l| l.expires_at_ms <= now) {
                remove_if_exists(&path)?;
            }
        }
        let mut cache = LeaseCache::new();
        let mut removed = false;
        for kind in self.kinds()? {
            for (_, path) in self.object_files(&kind)? {
                let Some(obj) = read_json::<StoredObject>(&path)? else {
                    continue;
                };
                if !self.is_live(&obj, now, &mut cache)? {
                    remove_if_exists(&path)?;
                    removed = true;
                }
            }
        }
        if removed {
            self.bump_revision()?;
        }
        Ok(())
    }

    pub(crate) fn get(&self, kind: &str, key: &str) -> Result<Option<Entry>, StoreError> {
        self.read_locked(|s| s.read_live(kind, key, &mut LeaseCache::new()))
    }

    /// All live objects of a kind, plus the earliest lease expiry among them (when the
    /// listing changes next without any write).
    pub(crate) fn list(&self, kind: &str) -> Result<(Listing, Option<u64>), StoreError> {
        self.read_locked(|s| {
            let revision = s.revision()?;
            let now = now_ms();
            let mut cache = LeaseCache::new();
            let mut entries = Vec::new();
            let mut next_expiry: Option<u64> = None;
            for (key, path) in s.object_files(kind)? {
                let Some(obj) = read_json::<StoredObject>(&path)? else {
                    continue;
                };
                if !s.is_live(&obj, now, &mut cache)? {
                    continue;
                }
                if let Some(id) = obj.lease
                    && let Some(e) = s.lease_expiry(id, &mut cache)?
                {
                    next_expiry = Some(next_expiry.map_or(e, |n| n.min(e)));
                }
                entries.push(to_entry(key, obj));
            }
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            Ok((Listing { entries, revision }, next_expiry))
        })
    }

    pub(crate) fn put(
        &self,
        kind: &str,
        key: &str,
        value: &Value,
        opts: PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        self.write_locked(|s| {
            let mut cache = LeaseCache::new();
            if let Some(id) = opts.lease
                && s.lease_expiry(id, &mut cache)?
                    .is_none_or(|e| e <= now_ms())
            {
                return Err(StoreError::LeaseNotFound(id));
            }
            let current = s.read_live(kind, key, &mut cache)?;
            if !condition_holds(opts.condition, current.as_ref()) {
                return Ok(PutOutcome::Conflict { current });
            }
            let revision = s.revision()? + 1;
            let obj = StoredObject {
                value: value.clone(),
                mod_revision: revision,
                create_revision: current.map_or(revision, |c| c.create_revision),
                lease: opts.lease,
            };
            let dir = s.kind_dir(kind);
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
            write_atomic(&s.object_path(kind, key), &serde_json::to_vec(&obj)?)?;
            s.bump_revision()?;
            Ok(PutOutcome::Written { revision })
        })
    }

    pub(crate) fn delete(
        &self,
        kind: &str,
        key: &str,
        condition: Condition,
    ) -> Result<bool, StoreError> {
        self.write_locked(|s| {
            let current = s.read_live(kind, key, &mut LeaseCache::new())?;
            if current.is_none() || !condition_holds(condition, current.as_ref()) {
                return Ok(false);
            }
            remove_if_exists(&s.object_path(kind, key))?;
            s.bump_revision()?;
            Ok(true)
        })
    }

    fn kinds(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("objects");
        let mut kinds = Vec::new();
        for item in fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
            let item = item.map_err(io_err("read directory", &dir))?;
            if let Some(name) = item.file_name().to_str() {
                kinds.push(name.to_string());
            }
        }
        Ok(kinds)
    }

    fn object_files(&self, kind: &str) -> Result<Vec<(String, PathBuf)>, StoreError> {
        let dir = self.kind_dir(kind);
        let items = match fs::read_dir(&dir) {
            Ok(items) => items,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read directory", &dir)(e)),
        };
        let mut out = Vec::new();
        for item in items {
            let item = item.map_err(io_err("read directory", &dir))?;
            if let Some(key) = item.file_name().to_str().and_then(decode_key) {
                out.push((key, item.path()));
            }
        }
        Ok(out)
    }

    fn lease_files(&self) -> Result<Vec<(LeaseId, PathBuf)>, StoreError> {
        let dir = self.root.join("leases");
        let mut out = Vec::new();
        for item in fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
            let item = item.map_err(io_err("read directory", &dir))?;
            let name = item.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse().ok());
            if let Some(id) = id {
                out.push((LeaseId(id), item.path()));
            }
        }
        Ok(out)
    }
}

fn condition_holds(condition: Condition, current: Option<&Entry>) -> bool {
    match condition {
        Condition::Always => true,
        Condition::Absent => current.is_none(),
        Condition::ModRevision(rev) => current.is_some_and(|c| c.mod_revision == rev),
    }
}

fn to_entry(key: String, obj: StoredObject) -> Entry {
    Entry {
        key,
        value: obj.value,
        mod_revision: obj.mod_revision,
        create_revision: obj.create_revision,
        lease: obj.lease,
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            what: path.display().to_string(),
            reason: e.to_string(),
        })
}

fn remove_if_exists(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Temp file in the same directory, fsync, rename over the target.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(bytes).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("rename", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_encoding_round_trips() {
        for key in [
            "10.244.1.0/24",
            "fd00:10:244:1::/64",
            ".hidden",
            "a b%c",
            "ünï",
            "n1",
        ] {
            let name = encode_key(key);
            assert!(!name.contains('/') && !name.starts_with('.'), "{name}");
            assert_eq!(decode_key(&name).as_deref(), Some(key));
        }
        assert_eq!(encode_key("10.244.1.0/24"), "10.244.1.0%2F24.json");
        assert_eq!(decode_key(".tmp-1-2"), None);
        assert_eq!(decode_key("x%2.json"), None);
    }
}
