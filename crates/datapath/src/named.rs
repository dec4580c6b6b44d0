//! Named network namespaces as `ip netns add/del` makes them: a new namespace bind-mounted
//! at `/run/netns/NAME`, so it outlives the thread that created it and other tools see it.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use crate::error::{DatapathError, Result};

/// Where named network namespaces live (iproute2's convention).
pub const NAMED_NETNS_DIR: &str = "/run/netns";

/// The path of the named namespace `name`.
pub fn named_netns_path(name: &str) -> PathBuf {
    Path::new(NAMED_NETNS_DIR).join(name)
}

/// Names of all namespaces under `/run/netns` (empty when the directory does not exist).
pub fn list_named_netns() -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NAMED_NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DatapathError::io("read /run/netns", e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Creates a fresh network namespace and bind-mounts it at `/run/netns/NAME`; returns the path.
///
/// Fails with EEXIST (see [`DatapathError::is_exists`]) when the name is taken. The namespace
/// is created on a dedicated thread (`unshare` changes only that thread), so the caller's
/// namespace never changes.
pub fn create_named_netns(name: &str) -> Result<PathBuf> {
    validate_netns_name(name)?;
    ensure_netns_dir()?;
    let path = named_netns_path(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| DatapathError::io(format!("create {}", path.display()), e))?;
    let target = path.clone();
    let mounted = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| DatapathError::io("unshare(CLONE_NEWNET)", e.into()))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| DatapathError::io(format!("bind-mount {}", target.display()), e.into()))
    })
    .join()
    .unwrap_or_else(|_| {
        Err(DatapathError::Invalid(
            "netns creator thread panicked".into(),
        ))
    });
    if let Err(e) = mounted {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// Unmounts and removes `/run/netns/NAME`; returns false when it did not exist.
///
/// The kernel frees the namespace once no process, descriptor or mount holds it (it may
/// finish tearing down after this returns).
pub fn delete_named_netns(name: &str) -> Result<bool> {
    validate_netns_name(name)?;
    let path = named_netns_path(name);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(false);
    }
    // EINVAL: not a mount point (a half-created entry); the file is removed all the same.
    let _ = umount2(&path, MntFlags::MNT_DETACH);
    std::fs::remove_file(&path)
        .map_err(|e| DatapathError::io(format!("remove {}", path.display()), e))?;
    Ok(true)
}

fn validate_netns_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0');
    if bad {
        return Err(DatapathError::Invalid(format!(
            "bad network namespace name {name:?}"
        )));
    }
    Ok(())
}

/// Like `ip netns add`: `/run/netns` becomes a shared mount point so namespace mounts
/// propagate to other mount namespaces; skipped when it already is a mount point.
fn ensure_netns_dir() -> Result<()> {
    std::fs::create_dir_all(NAMED_NETNS_DIR)
        .map_err(|e| DatapathError::io("create /run/netns", e))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| DatapathError::io("read /proc/self/mountinfo", e))?;
    // Field 5 of each mountinfo line is the mount point.
    let is_mount_point = mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(NAMED_NETNS_DIR));
    if is_mount_point {
        return Ok(());
    }
    let none = None::<&str>;
    mount(
        Some(NAMED_NETNS_DIR),
        NAMED_NETNS_DIR,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(|e| DatapathError::io("bind-mount /run/netns onto itself", e.into()))?;
    mount(
        none,
        NAMED_NETNS_DIR,
        none,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        none,
    )
    .map_err(|e| DatapathError::io("make /run/netns shared", e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::NetnsFd;

    #[test]
    fn rejects_bad_names() {
        assert!(create_named_netns("").is_err());
        assert!(create_named_netns("a/b").is_err());
        assert!(delete_named_netns("..").is_err());
    }

    #[test]
    fn create_list_delete_round_trip() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let name = format!("wdp-named-{}", std::process::id());
        let path = create_named_netns(&name).unwrap();
        let guard = scopeguard(&name);
        assert!(list_named_netns().unwrap().contains(&name));
        let ns = NetnsFd::open(&path).unwrap();
        assert!(!ns.same_as(&NetnsFd::current().unwrap()).unwrap());
        assert!(create_named_netns(&name).unwrap_err().is_exists());
        drop(ns);
        assert!(delete_named_netns(&name).unwrap());
        assert!(!delete_named_netns(&name).unwrap());
        assert!(!list_named_netns().unwrap().contains(&name));
        drop(guard);
    }

    /// Deletes the namespace also when an assertion fails.
    fn scopeguard(name: &str) -> impl Drop + '_ {
        struct Guard<'a>(&'a str);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                let _ = delete_named_netns(self.0);
            }
        }
        Guard(name)
    }
}
