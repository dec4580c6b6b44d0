//! Test kit: throwaway, named network namespaces.
//!
//! A [`TestNs`] is a fresh network namespace bind-mounted at `/run/netns/<name>` (so `ip netns`
//! sees it while a test runs) and removed again on drop, also when the test panics. The test
//! thread never changes namespace: creation, [`TestNs::run`] and [`TestNs::exec`] all happen on
//! short-lived threads that `setns` and exit, because `setns` only affects the calling thread.

mod lo;
mod sweep;

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

/// Directory where iproute2 keeps named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Prefix of every namespace this kit creates; followed by `<pid>-<tag>-<counter>`.
pub const NAME_PREFIX: &str = "weft-t-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A throwaway named network namespace, removed on drop.
#[derive(Debug)]
pub struct TestNs {
    name: String,
    path: PathBuf,
    file: File,
}

impl TestNs {
    /// Creates `weft-t-<pid>-<tag>-<counter>` with `lo` up.
    ///
    /// Fails with a message naming the cause when the process is not root or the kernel
    /// refuses network namespaces; privileged tests must fail loudly, never skip.
    pub fn new(tag: &str) -> io::Result<TestNs> {
        require_root()?;
        let pid = std::process::id();
        sweep::remove_stale(Path::new(NETNS_DIR));
        ensure_netns_dir()?;
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NAME_PREFIX}{pid}-{tag}-{counter}");
        let path = Path::new(NETNS_DIR).join(&name);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| context(e, &format!("create {}", path.display())))?;
        let mounted = on_thread(|| {
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| context(e.into(), "unshare(CLONE_NEWNET)"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| context(e.into(), "bind-mount the new netns"))
        });
        if let Err(e) = mounted {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        // From here on, Drop cleans up whatever fails next.
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                unmount_and_remove(&path);
                return Err(e);
            }
        };
        let ns = TestNs { name, path, file };
        ns.run(lo::set_lo_up)
            .map_err(|e| context(e, "bring lo up"))?;
        Ok(ns)
    }

    /// The namespace name as `ip netns` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An open descriptor of the namespace (valid as long as `self` lives).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Runs `f` on a fresh thread inside the namespace and returns its result.
    ///
    /// Panics (re-raised from the worker) if `setns` fails or `f` panics.
    pub fn run<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                if let Err(e) = setns(&self.file, CloneFlags::CLONE_NEWNET) {
                    panic!("setns into {}: {e}", self.name);
                }
                f()
            });
            match worker.join() {
                Ok(value) => value,
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    }

    /// Runs `cmd` to completion inside the namespace, capturing its output.
    ///
    /// The child is spawned from a thread that has joined the namespace, so it inherits it;
    /// unlike `ip netns exec`, no mount namespace or `/etc/netns` handling is involved.
    pub fn exec(&self, cmd: &mut Command) -> io::Result<Output> {
        self.run(|| cmd.output())
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        unmount_and_remove(&self.path);
    }
}

/// Lazily detaches the bind mount and removes the mount point file; errors are ignored
/// because this runs in `Drop` and during sweeps.
pub(crate) fn unmount_and_remove(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

fn require_root() -> io::Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "weft-testns: privileged namespace tests must run as root (they create network \
             namespaces); run `cargo test` as root",
        ))
    }
}

/// Creates `/run/netns` and, like `ip netns add`, makes it a shared mount point so namespace
/// mounts propagate to other mount namespaces; skipped when it already is a mount point.
fn ensure_netns_dir() -> io::Result<()> {
    std::fs::create_dir_all(NETNS_DIR).map_err(|e| context(e, "create /run/netns"))?;
    if is_mount_point(NETNS_DIR)? {
        return Ok(());
    }
    let none = None::<&str>;
    mount(
        Some(NETNS_DIR),
        NETNS_DIR,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(|e| context(e.into(), "bind-mount /run/netns onto itself"))?;
    mount(
        none,
        NETNS_DIR,
        none,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        none,
    )
    .map_err(|e| context(e.into(), "make /run/netns shared"))
}

fn is_mount_point(dir: &str) -> io::Result<bool> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    // Field 5 of each line is the mount point.
    Ok(mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(dir)))
}

/// Runs `f` on a short-lived thread so namespace changes never leak into the caller's thread.
fn on_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(payload) => std::panic::resume_unwind(payload),
    })
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("weft-testns: {what}: {e}"))
}
