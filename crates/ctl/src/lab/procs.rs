//! Processes of the lab: started detached inside a lab namespace, found again by pid or by
//! the namespace they live in, and stopped.

use std::fs::File;
use std::os::linux::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

/// `setsid(1)`: gives the child its own session without an `unsafe` pre-exec hook. It only
/// forks when the caller leads a process group, which a freshly spawned child never does,
/// so the recorded pid is the program's.
const SETSID: &str = "/usr/bin/setsid";

/// Starts `program args` inside the network namespace at `netns`, detached (own session,
/// stdin from /dev/null, stdout and stderr appended to `log`); returns its pid.
///
/// The fork happens on a short-lived thread that joined the namespace, so the caller's
/// threads never move.
pub fn spawn_in_netns(netns: &Path, program: &Path, args: &[String], log: &Path) -> Result<u32> {
    let ns = File::open(netns).with_context(|| format!("open netns {}", netns.display()))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open log {}", log.display()))?;
    let err = out.try_clone()?;
    let program = program.to_path_buf();
    let args = args.to_vec();
    let worker = std::thread::spawn(move || -> Result<u32> {
        setns(&ns, CloneFlags::CLONE_NEWNET).context("setns")?;
        let mut command = if Path::new(SETSID).is_file() {
            let mut c = Command::new(SETSID);
            c.arg(&program);
            c
        } else {
            let mut c = Command::new(&program);
            c.process_group(0);
            c
        };
        let child = command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        Ok(child.id())
    });
    worker
        .join()
        .map_err(|_| anyhow!("spawner thread panicked"))?
}

/// The (device, inode) identity of a network namespace file.
pub fn netns_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.st_dev(), m.st_ino()))
}

/// The network namespace identity of a running process.
pub fn process_netns(pid: u32) -> Option<(u64, u64)> {
    netns_identity(Path::new(&format!("/proc/{pid}/ns/net")))
}

/// Whether `pid` runs (a zombie does not count).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// All pids whose network namespace is one of `namespaces`.
pub fn pids_in_netns(namespaces: &[(u64, u64)]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| process_netns(*pid).is_some_and(|id| namespaces.contains(&id)))
        .collect()
}

/// SIGTERM, then SIGKILL after `grace`; waits until each is gone (reaping our own children).
pub fn stop_all(pids: &[u32], grace: Duration) {
    let live: Vec<u32> = pids.iter().copied().filter(|p| is_alive(*p)).collect();
    for pid in &live {
        let _ = kill(to_pid(*pid), Signal::SIGTERM);
    }
    if wait_gone(&live, grace) {
        return;
    }
    for pid in &live {
        let _ = kill(to_pid(*pid), Signal::SIGKILL);
    }
    wait_gone(&live, Duration::from_secs(3));
}

fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        for pid in pids {
            // Not our child: ECHILD, harmless.
            let _ = waitpid(to_pid(*pid), Some(WaitPidFlag::WNOHANG));
        }
        if pids.iter().all(|p| !is_alive(*p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn to_pid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    if all.is_empty() {
        return format!("(nothing logged in {})", log.display());
    }
    let start = all.len().saturating_sub(lines);
    all.get(start..).unwrap_or_default().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_found_by_netns() {
        let me = std::process::id();
        assert!(is_alive(me));
        let ns = process_netns(me).unwrap();
        assert!(pids_in_netns(&[ns]).contains(&me));
        assert!(!is_alive(u32::MAX - 1));
    }

    #[test]
    fn log_tail_takes_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("l");
        std::fs::write(&log, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&log, 2), "b\nc");
        assert!(log_tail(&dir.path().join("missing"), 2).starts_with("(nothing logged"));
    }
}
