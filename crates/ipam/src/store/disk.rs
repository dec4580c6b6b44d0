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

use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{IpamError, StoreError};
use crate::names::validate_network_name;
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
    lock_file: File,
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
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&lock_path)
            .map_err(err(format!("open {}", lock_path.display())))?;
        Ok(DiskStore { dir, lock_file })
    }

    /// The network's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Paths are only ever built from parsed addresses, so they stay inside `dir`.
    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    fn last_reserved_path(&self, set_index: usize) -> PathBuf {
        self.dir.join(format!("{LAST_RESERVED_PREFIX}{set_index}"))
    }

    /// Writes `content` to a fresh temp file (mode 0600) in the store directory.
    fn write_temp(&self, content: &[u8]) -> io::Result<PathBuf> {
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
            file.sync_data()
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }

    fn write_last_reserved(&self, set_index: usize, ip: IpAddr) -> io::Result<()> {
        let tmp = self.write_temp(ip.to_string().as_bytes())?;
        // rename is atomic: readers see the old or the new address, never a torn file.
        fs::rename(&tmp, self.last_reserved_path(set_index)).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    /// Names of the directory entries, with the address for canonical address names.
    fn scan(&self) -> Result<Vec<(String, Option<IpAddr>)>, StoreError> {
        let context = || format!("read directory {}", self.dir.display());
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(err(context()))? {
            let entry = entry.map_err(err(context()))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
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
        let tmp = self
            .write_temp(format!("{id}\r\n{ifname}").as_bytes())
            .map_err(err(context()))?;
        let linked = self.link_reservation(&tmp, ip, set_index);
        // The temp name is only a second link to the same inode. If removing it fails
        // (or we are killed before), it is debris that DEL/GC remove; it never holds an
        // address.
        let _ = fs::remove_file(&tmp);
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
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::new(format!("remove {}", path.display()), e)),
        }
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
            .write_temp(b"status")
            .map_err(err(format!("write to {}", self.dir.display())))?;
        fs::remove_file(&tmp).map_err(err(format!("remove {}", tmp.display())))
    }
}
