//! The weft side: a real lab cluster (weftd per node, pods through the `weft` plugin) made
//! with the `weftctl lab` library, torn down on drop, plus weftd's idle footprint.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use weft_ctl::lab::cmd::{UpOptions, down, up};
use weft_ctl::lab::state::{BackendKind, StoreKind};
use weft_ctl::lab::{LabPaths, LabState};
use weft_datapath::named_netns_path;

use crate::handpath::Backend;

/// A running lab; `down` runs on drop, also after a failed `up`.
pub struct Lab {
    paths: LabPaths,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// Brings up `nodes` nodes with `pods_per_node` pods each.
    pub fn up(
        prefix: &str,
        backend: Backend,
        nodes: u8,
        pods_per_node: usize,
        bin_dir: &Path,
    ) -> Result<Lab> {
        let dir = tempfile::Builder::new()
            .prefix("weft-bench-lab")
            .tempdir()?;
        let lab = Lab {
            paths: LabPaths::new(dir.path().join("lab"), prefix),
            _dir: dir,
        };
        let opts = UpOptions {
            nodes,
            backend: match backend {
                Backend::Vxlan => BackendKind::Vxlan,
                Backend::HostGw => BackendKind::HostGw,
            },
            store: StoreKind::Embedded,
            pods_per_node,
            ipv6: false,
            cni_bin_dir: Some(bin_dir.to_path_buf()),
            weftd: Some(bin_dir.join("weftd")),
            etcd: PathBuf::from("/usr/bin/etcd"),
        };
        up(&lab.paths, &opts).context("weft lab up")?;
        Ok(lab)
    }

    fn state(&self) -> Result<LabState> {
        LabState::load(&self.paths)
    }

    /// The first pod of `node`: its namespace path and IPv4 address.
    pub fn pod_on(&self, node: &str) -> Result<(PathBuf, Ipv4Addr)> {
        let state = self.state()?;
        let pod = state
            .pods
            .iter()
            .find(|p| p.node == node)
            .ok_or_else(|| anyhow!("no pod on {node}"))?;
        let ip = pod
            .ips
            .iter()
            .find_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .ok_or_else(|| anyhow!("pod {} has no IPv4 address", pod.key()))?;
        Ok((named_netns_path(&pod.netns), ip))
    }

    /// weftd's pid on `node`.
    pub fn weftd_pid(&self, node: &str) -> Result<u32> {
        self.state()?
            .node(node)
            .and_then(|n| n.weftd_pid)
            .ok_or_else(|| anyhow!("no weftd pid recorded for {node}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = down(&self.paths) {
            eprintln!("warning: weft lab down: {e:#}");
        }
    }
}

/// VmRSS in KiB from `/proc/<pid>/status`.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// utime + stime in clock ticks from `/proc/<pid>/stat` (fields 14 and 15; the command
/// name may contain spaces, so count from the closing parenthesis).
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at offsets 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// USER_HZ: the unit of /proc tick counts, fixed at 100 by the Linux user ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// weftd's idle footprint.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    /// Highest VmRSS seen, MiB.
    pub rss_mib: f64,
    /// CPU time over the window as a percentage of one core.
    pub cpu_percent: f64,
    /// Window length.
    pub window: Duration,
}

fn read_proc(pid: u32, file: &str) -> Result<String> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::read_to_string(&path).with_context(|| format!("read {path}"))
}

/// Measures RSS and CPU of `pid` over `window`.
pub fn measure_idle(pid: u32, window: Duration) -> Result<Idle> {
    let rss = || -> Result<u64> {
        parse_vm_rss_kib(&read_proc(pid, "status")?).ok_or_else(|| anyhow!("no VmRSS"))
    };
    let ticks = || -> Result<u64> {
        parse_cpu_ticks(&read_proc(pid, "stat")?).ok_or_else(|| anyhow!("bad stat"))
    };
    let rss_before = rss()?;
    let t0 = ticks()?;
    std::thread::sleep(window);
    let t1 = ticks()?;
    let rss_after = rss()?;
    let cpu_s = t1.saturating_sub(t0) as f64 / TICKS_PER_SECOND;
    Ok(Idle {
        rss_mib: rss_before.max(rss_after) as f64 / 1024.0,
        cpu_percent: 100.0 * cpu_s / window.as_secs_f64(),
        window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            parse_vm_rss_kib("Name:\tweftd\nVmRSS:\t   12345 kB\nThreads: 3\n"),
            Some(12345)
        );
        let stat = "42 (wef d) S 1 42 42 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(22));
    }
}
