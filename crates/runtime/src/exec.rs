//! Running a program inside a network namespace without moving any long-lived thread.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

/// What a plugin printed and how it exited.
#[derive(Debug, Clone)]
pub struct PluginOutput {
    /// Exit status (-1 when killed by a signal).
    pub status: i32,
    /// Its stdout (the protocol JSON).
    pub stdout: Vec<u8>,
    /// Its stderr (logs).
    pub stderr: Vec<u8>,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// CPU time (user + system) the child used.
    pub cpu: Duration,
}

/// Runs `bin` with exactly `env` and `stdin`, inside `netns` if given.
///
/// `setns` changes only the calling thread, and a child process inherits the namespace of
/// the thread that forks it: so the fork happens on a fresh thread that entered `netns`.
pub fn exec_in_netns(
    netns: Option<&Path>,
    bin: &Path,
    env: &[(String, String)],
    stdin: &[u8],
) -> std::io::Result<PluginOutput> {
    let ns = netns.map(File::open).transpose()?;
    let bin = bin.to_path_buf();
    let env = env.to_vec();
    let stdin = stdin.to_vec();
    let worker = std::thread::spawn(move || -> std::io::Result<PluginOutput> {
        if let Some(ns) = &ns {
            setns(ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        }
        let before = children_cpu();
        let start = std::time::Instant::now();
        let mut child = Command::new(&bin)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            // The plugin may exit before reading (e.g. VERSION): EPIPE is not our failure.
            let _ = input.write_all(&stdin);
        }
        let out = child.wait_with_output()?;
        let elapsed = start.elapsed();
        Ok(PluginOutput {
            status: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
            elapsed,
            cpu: children_cpu().saturating_sub(before),
        })
    });
    worker
        .join()
        .map_err(|_| std::io::Error::other("plugin runner thread panicked"))?
}

/// CPU time of waited-for children of this process (RUSAGE_CHILDREN is process-wide: with
/// concurrent runners it is only an approximation per call; benchmarks run sequentially).
fn children_cpu() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_CHILDREN) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
                    + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}
