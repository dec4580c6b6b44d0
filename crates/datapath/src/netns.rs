//! Network namespaces held as file descriptors, and running code inside one.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};
use nix::sys::statfs::{NSFS_MAGIC, PROC_SUPER_MAGIC, fstatfs};

use crate::error::{DatapathError, Result};

/// An open network namespace. Holding the descriptor (never re-opening the path) keeps the
/// namespace alive and immune to the path being replaced.
#[derive(Debug)]
pub struct NetnsFd {
    file: File,
    path: PathBuf,
}

impl NetnsFd {
    /// Opens `path` and checks that it is a network namespace.
    ///
    /// Fails with [`DatapathError::NotNetns`] for regular files, directories or other
    /// namespace types, so a bogus `CNI_NETNS` is rejected before any change.
    pub fn open(path: impl AsRef<Path>) -> Result<NetnsFd> {
        let path = path.as_ref();
        let file = File::open(path)
            .map_err(|e| DatapathError::io(format!("open netns {}", path.display()), e))?;
        let netns = NetnsFd {
            file,
            path: path.to_path_buf(),
        };
        netns.verify()?;
        Ok(netns)
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<NetnsFd> {
        NetnsFd::open("/proc/thread-self/ns/net")
    }

    /// A second descriptor for the same namespace.
    pub fn try_clone(&self) -> Result<NetnsFd> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| DatapathError::io("dup netns fd", e))?;
        Ok(NetnsFd {
            file,
            path: self.path.clone(),
        })
    }

    /// The path this was opened from (informational only).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Raw descriptor, e.g. for IFLA_NET_NS_FD; valid while `self` lives.
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Whether two descriptors refer to the same namespace (same nsfs inode).
    pub fn same_as(&self, other: &NetnsFd) -> Result<bool> {
        Ok(self.inode()? == other.inode()?)
    }

    fn inode(&self) -> Result<(u64, u64)> {
        let meta = self
            .file
            .metadata()
            .map_err(|e| DatapathError::io("stat netns", e))?;
        Ok((std::os::linux::fs::MetadataExt::st_dev(&meta), {
            std::os::linux::fs::MetadataExt::st_ino(&meta)
        }))
    }

    /// nsfs holds every namespace type; NS_GET_NSTYPE then tells a network namespace apart
    /// from the others.
    fn verify(&self) -> Result<()> {
        let not_netns = || DatapathError::NotNetns {
            path: self.path.clone(),
        };
        let fs = fstatfs(&self.file).map_err(|e| DatapathError::io("fstatfs netns", e.into()))?;
        let fs_type = fs.filesystem_type();
        // Older kernels expose namespace files on procfs instead of nsfs.
        if fs_type != NSFS_MAGIC && fs_type != PROC_SUPER_MAGIC {
            return Err(not_netns());
        }
        match namespace_type(&self.file) {
            Ok(t) if t == CloneFlags::CLONE_NEWNET.bits() => Ok(()),
            Ok(_) => Err(not_netns()),
            // Kernels before 4.11 have no NS_GET_NSTYPE: ask `setns` on a throwaway thread.
            Err(_) => on_thread(|| setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET))
                .map_err(|_| not_netns()),
        }
    }
}

// NS_GET_NSTYPE, `_IO(0xb7, 0x3)` in <linux/nsfs.h>: the CLONE_NEW* type of a namespace fd.
mod nsfs {
    #![allow(missing_docs)]
    nix::ioctl_none!(ns_get_nstype, 0xb7, 0x3);
}

/// Asks the kernel which kind of namespace `file` is. A plain ioctl, so verifying
/// `CNI_NETNS` costs no thread (the plugin runs once per pod; every microsecond counts).
#[allow(unsafe_code)]
fn namespace_type(file: &File) -> nix::Result<i32> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor, which `file`
    // keeps open for the whole call.
    unsafe { nsfs::ns_get_nstype(file.as_raw_fd()) }
}

impl AsFd for NetnsFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Runs `f` on a fresh thread that has joined `netns`, and returns its result.
///
/// The caller's thread never changes namespace, which keeps this safe to call from any
/// thread (also a tokio worker, where a leaked `setns` would move unrelated tasks).
pub fn run_in_netns<F, R>(netns: &NetnsFd, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    on_thread(|| {
        setns(netns.file.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| DatapathError::io(format!("setns {}", netns.path.display()), e.into()))?;
        Ok(f())
    })
}

fn on_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(payload) => std::panic::resume_unwind(payload),
    })
}
