//! (b) through a real weftd: a one-node `weftctl lab` (weftd with NetworkPolicy
//! enforcement, embedded datastore), the generated objects written to its datastore, then
//! each change timed from just before the store write until weftd's status.json reports a
//! `policy.revision` at least the write's revision (the policy contract's sync signal:
//! the change is in the kernel).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use weft_ctl::lab::LabPaths;
use weft_ctl::lab::agents::{NodeDirs, read_status};
use weft_ctl::lab::cmd::{UpOptions, down, up};
use weft_ctl::lab::state::{BackendKind, StoreKind};
use weft_store::{Datastore, PutOptions, PutOutcome, StoreConfig};

use super::apply::{ChangeFigures, change};
use super::generate::{Object, Shape};

/// How long one change may take before the run fails.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Poll period of status.json (the resolution of the measurement).
const POLL: Duration = Duration::from_millis(1);

/// A one-node lab; `down` runs on drop, also after a failed `up` or a panic.
struct Lab {
    paths: LabPaths,
    _dir: tempfile::TempDir,
}

impl Lab {
    fn up(bin_dir: &Path, prefix: &str) -> Result<Lab> {
        for bin in ["weftd", "weft", "weft-ipam"] {
            if !bin_dir.join(bin).is_file() {
                bail!(
                    "{} not found; build with `cargo build --release --bins`",
                    bin_dir.join(bin).display()
                );
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("weft-bench-pol")
            .tempdir()?;
        let lab = Lab {
            paths: LabPaths::new(dir.path().join("lab"), prefix),
            _dir: dir,
        };
        let opts = UpOptions {
            nodes: 1,
            backend: BackendKind::Vxlan,
            store: StoreKind::Embedded,
            pods_per_node: 0,
            ipv6: false,
            cni_bin_dir: Some(bin_dir.to_path_buf()),
            weftd: Some(bin_dir.join("weftd")),
            etcd: "/usr/bin/etcd".into(),
        };
        up(&lab.paths, &opts).context("weft lab up")?;
        Ok(lab)
    }

    /// Waits until node1's weftd enforces `revision`; returns when it saw it and the
    /// status's `appliedAtMs` (unix ms of weftd's last nft apply) at that moment.
    fn wait_revision(&self, revision: i64) -> Result<(Instant, Option<u64>)> {
        let deadline = Instant::now() + TIMEOUT;
        let status_file = NodeDirs::of(&self.paths, "node1").status();
        loop {
            let status = read_status(&self.paths, "node1");
            if let Some(p) = status.as_ref().and_then(|s| s.policy.as_ref()) {
                if !p.enabled {
                    bail!("weftd reports policy enforcement disabled");
                }
                if p.revision >= revision {
                    let seen = Instant::now();
                    return Ok((seen, applied_at_ms(&status_file)));
                }
                if let Some(e) = &p.error {
                    eprintln!("weftd policy error (still waiting): {e}");
                }
            }
            if Instant::now() >= deadline {
                bail!("weftd did not reach policy revision {revision} within {TIMEOUT:?}");
            }
            std::thread::sleep(POLL);
        }
    }
}

/// `policy.appliedAtMs` of a status.json.
fn applied_at_ms(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.pointer("/policy/appliedAtMs")?.as_u64()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = down(&self.paths) {
            eprintln!("warning: weft lab down: {e:#}");
        }
    }
}

/// The lab's datastore, opened once, driven by a runtime of its own.
struct Store {
    runtime: tokio::runtime::Runtime,
    store: Arc<dyn Datastore>,
}

impl Store {
    fn open(paths: &LabPaths) -> Result<Store> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let config = StoreConfig::Embedded {
            dir: paths.store_dir(),
        };
        let store = runtime
            .block_on(config.open())
            .context("open the lab datastore")?;
        Ok(Store { runtime, store })
    }

    fn put(&self, o: &Object) -> Result<i64> {
        let outcome = self
            .runtime
            .block_on(
                self.store
                    .put(o.kind, &o.key, &o.value, PutOptions::default()),
            )
            .with_context(|| format!("put {}/{}", o.kind, o.key))?;
        match outcome {
            PutOutcome::Written { revision } => Ok(revision),
            PutOutcome::Conflict { .. } => bail!("put {}/{}: conflict", o.kind, o.key),
        }
    }
}

/// What the weftd run measured.
pub struct AgentFigures {
    /// From the first write of the initial objects to weftd enforcing all of them.
    pub initial: Duration,
    /// Objects written initially.
    pub objects: usize,
    /// Per change: store write -> status revision.
    pub changes: ChangeFigures,
    /// Per change: the store write alone.
    pub put: crate::stats::Samples,
    /// Per change that weftd applied: store write -> `appliedAtMs` of that apply (ms
    /// resolution): when the kernel had it, before the revision was confirmed.
    pub applied: crate::stats::Samples,
}

/// Runs (b) through weftd.
pub fn through_weftd(
    bin_dir: &Path,
    objects: &[Object],
    shape: Shape,
    changes: usize,
) -> Result<AgentFigures> {
    let lab = Lab::up(bin_dir, &format!("wbp{}", std::process::id()))?;
    let store = Store::open(&lab.paths)?;
    let t0 = Instant::now();
    let mut last = 0;
    for o in objects {
        last = store.put(o)?;
    }
    let initial = lab.wait_revision(last)?.0.duration_since(t0);
    // Let the initial burst settle (weftd may still write status or GC).
    std::thread::sleep(Duration::from_millis(500));
    let namespaces = shape.namespaces.max(1);
    let mut figs = ChangeFigures::default();
    let mut put = crate::stats::Samples::default();
    let mut applied = crate::stats::Samples::default();
    for k in 0..changes {
        let (object, is_label) = change(k, shape, namespaces);
        let before_ms = unix_ms();
        let t0 = Instant::now();
        let revision = store.put(&object)?;
        put.push(t0.elapsed());
        let (seen, applied_at) = lab.wait_revision(revision)?;
        let took = seen.duration_since(t0);
        if let Some(at) = applied_at.filter(|at| *at >= before_ms) {
            applied.push(Duration::from_millis(at - before_ms));
        }
        figs.latency.push(took);
        if is_label {
            figs.label.push(took);
        } else {
            figs.policy.push(took);
        }
        // Spread changes out like real edits, so each is measured on its own.
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(store);
    drop(lab);
    Ok(AgentFigures {
        initial,
        objects: objects.len(),
        changes: figs,
        put,
        applied,
    })
}
