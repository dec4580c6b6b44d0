//! Work that must happen but must not be waited for, in a detached child process.
//!
//! Deleting a network device returns only after the kernel's `rcu_barrier()` in
//! `netdev_run_todo` (10-50 ms on a 2-vCPU VM): a plugin DEL that deletes its veth itself
//! pays that on every pod. A child process of its own session pays it instead, after the
//! parent has answered.

use std::fs::File;

use nix::unistd::{ForkResult, dup2_stderr, dup2_stdin, dup2_stdout, fork, setsid};

use crate::error::{DatapathError, Result};

/// Runs `work` in a forked child that leaves the caller's session and standard streams
/// (a runtime reading the caller's stdout to EOF must not wait for it), then exits.
/// Returns in the parent as soon as the child exists; the child is never waited for.
///
/// Only for single-threaded callers (a plugin process): after `fork` the child has one
/// thread, and any lock another thread held stays locked forever.
#[allow(unsafe_code)]
pub fn run_detached(work: impl FnOnce()) -> Result<()> {
    // Opened before forking so the child needs no allocation to silence its streams.
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| DatapathError::io("open /dev/null", e))?;
    // SAFETY: the caller is single-threaded (documented above), so the child starts with
    // every lock free; it exits with `_exit` and never returns into the caller's code.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => Ok(()),
        Ok(ForkResult::Child) => {
            let _ = setsid();
            let _ = dup2_stdin(&null);
            let _ = dup2_stdout(&null);
            let _ = dup2_stderr(&null);
            drop(null);
            work();
            // SAFETY: `_exit` ends the child at once, without running the parent's atexit
            // handlers or flushing buffers the parent owns.
            unsafe { nix::libc::_exit(0) }
        }
        Err(e) => Err(DatapathError::io("fork", e.into())),
    }
}
