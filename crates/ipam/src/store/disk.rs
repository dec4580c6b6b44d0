//! host-local compatible on-disk store.
//!
//! Layout in `<dataDir>/<network>/` (existing host-local data stays valid):
//! - `<ip text>`: one file per reserved address, content `<containerID>\r\n<ifname>`;
//! - `last_reserved_ip.<setIndex>`: the last address handed out from that set;
//! - `lock`: flock'ed exclusively for every read-modify-write.
//!
//! Crash safety: host-local creates the address file empty and writes the owner later, so
//! a SIGKILL in between leaves a reservation no DEL can find. Here the owner is written
//! to a temp file first and then `hard_link`ed to the address name. The link is atomic and
//! fails with EEXIST when the address is taken, so an address file always has its full
//! content and an address is never given twice. A crash can only leave temp files
//! (`.weft-tmp.*`, never an address), which DEL and GC remove under the lock.
//!
//! ADD's "does this attachment already hold an address?" is answered from a holder index
//! (see `disk_index.rs`) instead of reading every address file.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{IpamError, StoreError};
use crate::names::validate_network_name;
use crate::store::disk_index::{
    INDEX_DIR, INDEX_MARKER, INDEX_PREFIX, index_name, parse_entries, parse_index_name,
    render_entries,
};
use crate::store::{Holder, Reservation, Store};

/// Prefix of temp files. Starts with a dot so it can never parse as an address.
pub const TEMP_PREFIX: &str = ".weft-tmp.";
/// Prefix of host-local's per-set "last reserved" files.
pub const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// Name of host-local's lock file.
pub const LOCK_FILE: &str = "lock";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A [`Store`] over `<data_dir>/<network>/`.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    index_dir: PathBuf,
    lock_file: File,
}

/// UTF-8 names of the entries of `dir` (others cannot be ours or host-local's).
fn list_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let context = || format!("read directory {}", dir.display());
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(err(context()))? {
        let entry = entry.map_err(err(context()))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push(name);
        }
    }
    Ok(out)
}

fn err(context: String) -> impl FnOnce(io::Error) -> StoreError {
    move |e| StoreError::new(context, e)
}

impl DiskStore {
    /// Opens (creating if needed, mode 0755) the store directory of `network` and its
    /// lock file. The network name is validated so it cannot escape `data_dir`.
    pub fn open(data_dir: &Path, network: &str) -> Result<DiskStore, IpamError> {
        validate_network_name(network)?;
        let dir = data_dir.join(network);
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(err(format!("create {}", dir.display())))?;
        let index_dir = dir.join(INDEX_DIR);
        DirBuilder::new()
            .mode(0o755)
            .create(&index_dir)
            .or_else(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .map_err(err(format!("create {}", index_dir.display())))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&lock_path)
            .map_err(err(format!("open {}", lock_path.display())))?;
        Ok(DiskStore {
            dir,
            index_dir,
            lock_file,
        })
    }

    /// The network's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// When the reservation of `ip` was written (`None`: not reserved). Operators' tools use
    /// it to leave alone reservations of an ADD still in progress.
    pub fn reserved_at(&self, ip: IpAddr) -> Result<Option<SystemTime>, StoreError> {
        let path = self.ip_path(ip);
        match fs::symlink_metadata(&path) {
            Ok(meta) => meta
                .modified()
                .map(Some)
                .map_err(err(format!("stat {}", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::new(format!("stat {}", path.display()), e)),
        }
    }

    /// Paths are only ever built from parsed addresses, so they stay inside `dir`.
    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    fn last_reserved_path(&self, set_index: usize) -> PathBuf {
        self.dir.join(format!("{LAST_RESERVED_PREFIX}{set_index}"))
    }

    /// Writes `content` to a fresh temp file (mode 0600) in the store directory, flushed
    /// to disk when `durable`.
    fn write_temp(&self, content: &[u8], durable: bool) -> io::Result<PathBuf> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!(
            "{TEMP_PREFIX}{}.{counter}.{nanos}",
            std::process::id()
        ));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let written = file.write_all(content).and_then(|()| {
            // Not needed against SIGKILL (the page cache survives the process), but after
            // a power loss it keeps address files from coming back empty.
            if durable { file.sync_data() } else { Ok(()) }
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }

    fn write_last_reserved(&self, set_index: usize, ip: IpAddr) -> io::Result<()> {
        let tmp = self.write_temp(ip.to_string().as_bytes(), false)?;
        // rename is atomic: readers see the old or the new address, never a torn file.
        fs::rename(&tmp, self.last_reserved_path(set_index)).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    /// Names of the directory entries, with the address for canonical address names.
    fn scan(&self) -> Result<Vec<(String, Option<IpAddr>)>, StoreError> {
        let mut out = Vec::new();
        for name in list_names(&self.dir)? {
            // Only the canonical text form counts as an address file: it is the name
            // `ip_path` builds, so reserve/release/scan always agree on the file.
            let ip = name
                .parse::<IpAddr>()
                .ok()
                .filter(|ip| ip.to_string() == name);
            out.push((name, ip));
        }
        Ok(out)
    }

    fn link_reservation(&self, tmp: &Path, ip: IpAddr, set_index: usize) -> io::Result<bool> {
        let path = self.ip_path(ip);
        match fs::hard_link(tmp, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Err(e) = self.write_last_reserved(set_index, ip) {
            // Keep the contract "error means nothing changed".
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(true)
    }
}

impl DiskStore {
    /// The holder recorded in the address file of `ip`; `None` when there is none.
    fn holder_of(&self, ip: IpAddr) -> io::Result<Option<Holder>> {
        match fs::read(self.ip_path(ip)) {
            Ok(bytes) => Ok(Some(Holder::parse(&String::from_utf8_lossy(&bytes)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_index(&self, path: &Path) -> io::Result<BTreeSet<IpAddr>> {
        match fs::read_to_string(path) {
            Ok(text) => Ok(parse_entries(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(e) => Err(e),
        }
    }

    /// Read-modify-write of one index file (removed when it becomes empty).
    fn update_index(
        &self,
        path: &Path,
        change: impl FnOnce(&mut BTreeSet<IpAddr>),
    ) -> io::Result<()> {
        let mut entries = self.read_index(path)?;
        let before = entries.clone();
        change(&mut entries);
        if entries == before {
            return Ok(());
        }
        self.write_index(path, &entries)
    }

    fn write_index(&self, path: &Path, entries: &BTreeSet<IpAddr>) -> io::Result<()> {
        if entries.is_empty() {
            return match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let tmp = self.write_temp(render_entries(entries).as_bytes(), false)?;
        fs::rename(&tmp, path).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    /// Indexes reservations made before the index existed (host-local data), once.
    fn ensure_index(&mut self) -> Result<(), StoreError> {
        let marker = self.index_dir.join(INDEX_MARKER);
        if marker.exists() {
            return Ok(());
        }
        let mut by_holder: BTreeMap<(String, String), BTreeSet<IpAddr>> = BTreeMap::new();
        for r in self.reservations()? {
            if let Holder::Attachment { id, ifname } = r.holder {
                by_holder.entry((id, ifname)).or_default().insert(r.ip);
            }
        }
        let context = || format!("build holder index in {}", self.dir.display());
        for ((id, ifname), ips) in by_holder {
            if let Some(name) = index_name(&id, &ifname) {
                self.update_index(&self.index_dir.join(name), |entries| entries.extend(ips))
                    .map_err(err(context()))?;
            }
        }
        let tmp = self.write_temp(b"", false).map_err(err(context()))?;
        fs::rename(&tmp, &marker).map_err(err(context()))
    }

    fn find_by_scan(&mut self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
        Ok(self
            .reservations()?
            .into_iter()
            .filter(|r| r.holder.is_attachment(id, ifname))
            .map(|r| r.ip)
            .collect())
    }

    /// Drops index entries whose address is no longer held by the file's attachment.
    /// Returns true when the whole index file was removed.
    fn prune_index_file(&self, name: &str) -> Result<bool, StoreError> {
        let path = self.index_dir.join(name);
        let context = || format!("prune {}", path.display());
        let Some((id, ifname)) = parse_index_name(name) else {
            fs::remove_file(&path).map_err(err(context()))?;
            return Ok(true);
        };
        let wanted = Holder::Attachment { id, ifname };
        let mut kept = BTreeSet::new();
        for ip in self.read_index(&path).map_err(err(context()))? {
            if self.holder_of(ip).map_err(err(context()))?.as_ref() == Some(&wanted) {
                kept.insert(ip);
            }
        }
        self.write_index(&path, &kept).map_err(err(context()))?;
        Ok(kept.is_empty())
    }
}

impl Store for DiskStore {
    fn lock(&mut self) -> Result<(), StoreError> {
        self.lock_file
            .lock()
            .map_err(err(format!("lock {}", self.dir.display())))
    }

    fn unlock(&mut self) -> Result<(), StoreError> {
        self.lock_file
            .unlock()
            .map_err(err(format!("unlock {}", self.dir.display())))
    }

    fn reserve(
        &mut self,
        ip: IpAddr,
        id: &str,
        ifname: &str,
        set_index: usize,
    ) -> Result<bool, StoreError> {
        let context = || format!("reserve {ip} in {}", self.dir.display());
        let index = index_name(id, ifname).map(|name| self.index_dir.join(name));
        // Index first: it must stay a superset of what the attachment holds.
        if let Some(path) = &index {
            self.update_index(path, |entries| {
                entries.insert(ip);
            })
            .map_err(err(context()))?;
        }
        // Not fsynced: the guarantee is against a killed process, where the page cache
        // survives. After a power loss every pod of the node is gone too, and a file the
        // crash left empty is an unknown holder that GC removes.
        let linked = self
            .write_temp(format!("{id}\r\n{ifname}").as_bytes(), false)
            .and_then(|tmp| {
                let linked = self.link_reservation(&tmp, ip, set_index);
                // The temp name is only a second link to the same inode. If removing it
                // fails (or we are killed before), it is debris that DEL/GC remove; it
                // never holds an address.
                let _ = fs::remove_file(&tmp);
                linked
            });
        if let (Some(path), false) = (&index, matches!(linked, Ok(true))) {
            // Tidy only; a stale entry is harmless because entries are verified.
            let holder = Holder::Attachment {
                id: id.to_owned(),
                ifname: ifname.to_owned(),
            };
            if self.holder_of(ip).ok().flatten().as_ref() != Some(&holder) {
                let _ = self.update_index(path, |entries| {
                    entries.remove(&ip);
                });
            }
        }
        linked.map_err(err(context()))
    }

    fn last_reserved(&mut self, set_index: usize) -> Result<Option<IpAddr>, StoreError> {
        let path = self.last_reserved_path(set_index);
        match fs::read_to_string(&path) {
            // Unparseable content (e.g. host-local was killed mid-write) is only a lost
            // hint: allocation then starts at the beginning of the set.
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::new(format!("read {}", path.display()), e)),
        }
    }

    fn reservations(&mut self) -> Result<Vec<Reservation>, StoreError> {
        let mut out = Vec::new();
        for ip in self.scan()?.into_iter().filter_map(|(_, ip)| ip) {
            let path = self.ip_path(ip);
            match fs::read(&path) {
                Ok(bytes) => out.push(Reservation {
                    ip,
                    holder: Holder::parse(&String::from_utf8_lossy(&bytes)),
                }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::new(format!("read {}", path.display()), e)),
            }
        }
        Ok(out)
    }

    fn taken(&mut self) -> Result<HashSet<IpAddr>, StoreError> {
        Ok(self.scan()?.into_iter().filter_map(|(_, ip)| ip).collect())
    }

    fn release(&mut self, ip: IpAddr) -> Result<bool, StoreError> {
        let path = self.ip_path(ip);
        let context = || format!("remove {}", path.display());
        let holder = self.holder_of(ip).map_err(err(context()))?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::new(context(), e)),
        }
        if let Some(Holder::Attachment { id, ifname }) = holder
            && let Some(name) = index_name(&id, &ifname)
        {
            // Best effort: a stale entry is verified away on use and pruned by GC.
            let _ = self.update_index(&self.index_dir.join(name), |entries| {
                entries.remove(&ip);
            });
        }
        Ok(true)
    }

    fn find(&mut self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
        let Some(name) = index_name(id, ifname) else {
            return self.find_by_scan(id, ifname);
        };
        self.ensure_index()?;
        let path = self.index_dir.join(name);
        let entries = self
            .read_index(&path)
            .map_err(err(format!("read {}", path.display())))?;
        let wanted = Holder::Attachment {
            id: id.to_owned(),
            ifname: ifname.to_owned(),
        };
        let mut held = Vec::new();
        for ip in entries {
            let holder = self
                .holder_of(ip)
                .map_err(err(format!("read {}", self.ip_path(ip).display())))?;
            if holder.as_ref() == Some(&wanted) {
                held.push(ip);
            }
        }
        Ok(held)
    }

    fn compact(&mut self) -> Result<Vec<String>, StoreError> {
        let mut removed = Vec::new();
        for name in list_names(&self.index_dir)? {
            if name.starts_with(INDEX_PREFIX) && self.prune_index_file(&name)? {
                removed.push(name);
            }
        }
        Ok(removed)
    }

    fn remove_debris(&mut self) -> Result<Vec<String>, StoreError> {
        let mut removed = Vec::new();
        for (name, _) in self.scan()? {
            if !name.starts_with(TEMP_PREFIX) {
                continue;
            }
            // Under the lock no writer is active, so every temp file is a leftover.
            let path = self.dir.join(&name);
            match fs::remove_file(&path) {
                Ok(()) => removed.push(name),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::new(format!("remove {}", path.display()), e)),
            }
        }
        Ok(removed)
    }

    fn check_writable(&mut self) -> Result<(), StoreError> {
        let tmp = self
            .write_temp(b"status", false)
            .map_err(err(format!("write to {}", self.dir.display())))?;
        fs::remove_file(&tmp).map_err(err(format!("remove {}", tmp.display())))
    }
}
