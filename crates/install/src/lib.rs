//! Installs weft's CNI plugin binaries into a node's CNI bin directory, and removes them.
//!
//! Runs as the weft DaemonSet's init container, while pods on the node keep being created
//! and deleted by the container runtime with the *previous* binaries. So:
//! - a binary is written under a temporary name in the destination directory (same file
//!   system, so the final step is a `rename`), fsync'ed, then renamed over the old one; a
//!   runtime executes either the complete old or the complete new binary, never a torn one;
//! - an installed file is never opened for writing: a running plugin keeps executing its
//!   own inode (writing into it would fail with `ETXTBSY` or corrupt it), and `rename`
//!   only replaces the directory entry;
//! - identical files are skipped, so a restarted init container changes nothing.
//!
//! The CNI conflist is not installed here: `weftd` writes `10-weft.conflist` once the node
//! has its subnets, so a node never advertises a network it cannot serve yet.

mod plan;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub use plan::{Action, PLUGIN_BINARIES, WEFT_CONFLIST, is_our_temp_file, temp_name};

/// Mode of installed binaries: executable by the runtime, writable only by root.
const BINARY_MODE: u32 = 0o755;

/// What [`install`] did with each binary, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// (binary name, action).
    pub actions: Vec<(String, Action)>,
}

/// Copies each of `names` from `source_dir` into `dest_dir` (created if missing), skipping
/// binaries whose content and mode already match. Stale temporary files of an interrupted
/// earlier run are removed first. Fails if a source binary is missing: a node must not
/// end up with half of a release.
pub fn install(source_dir: &Path, dest_dir: &Path, names: &[&str]) -> Result<Report> {
    for name in names {
        let source = source_dir.join(name);
        if !source.is_file() {
            bail!("source binary {} is missing", source.display());
        }
    }
    fs::create_dir_all(dest_dir).with_context(|| format!("create {}", dest_dir.display()))?;
    remove_stale_temp_files(dest_dir)?;
    let mut actions = Vec::new();
    for name in names {
        let action = install_one(&source_dir.join(name), dest_dir, name)?;
        actions.push(((*name).to_string(), action));
    }
    sync_dir(dest_dir)?;
    Ok(Report { actions })
}

/// Removes the binaries `names` from `dest_dir` and weftd's conflist from `conf_dir`, plus
/// temporary files an interrupted install left. Nothing else is touched. Returns the paths
/// removed; absent files are not an error (uninstall is idempotent).
pub fn uninstall(dest_dir: &Path, conf_dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let targets = names
        .iter()
        .map(|n| dest_dir.join(n))
        .chain(std::iter::once(conf_dir.join(WEFT_CONFLIST)));
    for path in targets {
        if remove_regular_file(&path)? {
            removed.push(path);
        }
    }
    if dest_dir.is_dir() {
        removed.extend(remove_stale_temp_files(dest_dir)?);
        sync_dir(dest_dir)?;
    }
    if conf_dir.is_dir() {
        sync_dir(conf_dir)?;
    }
    Ok(removed)
}

fn install_one(source: &Path, dest_dir: &Path, name: &str) -> Result<Action> {
    let dest = dest_dir.join(name);
    let existing = match fs::symlink_metadata(&dest) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("stat {}", dest.display())),
    };
    if let Some(meta) = &existing {
        if meta.is_dir() {
            bail!("{} is a directory, not a plugin binary", dest.display());
        }
        let mode_ok = meta.is_file() && meta.permissions().mode() & 0o7777 == BINARY_MODE;
        if mode_ok && same_content(source, &dest)? {
            return Ok(Action::Unchanged);
        }
    }
    let tmp = dest_dir.join(temp_name(name, std::process::id()));
    let written = copy_synced(source, &tmp).and_then(|()| {
        fs::rename(&tmp, &dest).with_context(|| format!("rename into {}", dest.display()))
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(if existing.is_some() {
        Action::Replaced
    } else {
        Action::Installed
    })
}

/// Copies `source` to the new file `tmp` (mode 0755) and fsyncs it.
fn copy_synced(source: &Path, tmp: &Path) -> Result<()> {
    let mut input = File::open(source).with_context(|| format!("open {}", source.display()))?;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(BINARY_MODE)
        .open(tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    io::copy(&mut input, &mut output).with_context(|| format!("write {}", tmp.display()))?;
    // The umask may have narrowed the mode given to open.
    output
        .set_permissions(fs::Permissions::from_mode(BINARY_MODE))
        .with_context(|| format!("chmod {}", tmp.display()))?;
    output
        .sync_all()
        .with_context(|| format!("fsync {}", tmp.display()))
}

/// Byte-for-byte comparison (sizes first); plugin binaries are a few MB.
fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let (ma, mb) = (fs::metadata(a)?, fs::metadata(b)?);
    if ma.len() != mb.len() {
        return Ok(false);
    }
    let mut fa = File::open(a).with_context(|| format!("open {}", a.display()))?;
    let mut fb = File::open(b).with_context(|| format!("open {}", b.display()))?;
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba.get(..n) != bb.get(..m) {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        match file.read(rest)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Removes `path` if it is a regular file or symlink; true if it was removed.
fn remove_regular_file(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => bail!("{} is a directory; not removing it", path.display()),
        Ok(_) => {
            fs::remove_file(path).with_context(|| format!("remove {}", path.display()))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("stat {}", path.display())),
    }
}

fn remove_stale_temp_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().is_some_and(is_our_temp_file) && remove_regular_file(&entry.path())? {
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// Makes the renames durable: a crash after install must not bring back the old entries.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))
}
