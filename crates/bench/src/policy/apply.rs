//! (a) compile + apply of the full ruleset, and the in-process variant of (b): change ->
//! recompile -> element delta (or full table) applied.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use weft_datapath::NetnsFd;
use weft_datapath::nft::apply_nft;
use weft_policy::nft::{Ruleset, compile, element_delta};
use weft_testns::TestNs;

use super::generate::{Object, Shape, pod_app, pod_labels, pod_object, policy_with};
use super::inventory::Inventory;
use crate::stats::{Samples, children_cpu};

/// The node whose ruleset is compiled.
pub const NODE: &str = "node1";

/// Size of a compiled ruleset.
#[derive(Debug, Default, Clone)]
pub struct Size {
    /// Address sets (node + peer sets).
    pub sets: usize,
    /// Ranges in all sets.
    pub set_elements: usize,
    /// Entries in the four verdict maps.
    pub map_elements: usize,
    /// Group chains.
    pub chains: usize,
    /// Rules in all group chains.
    pub rules: usize,
    /// Bytes of the `nft -f -` script.
    pub script_bytes: usize,
}

impl Size {
    fn of(r: &Ruleset, script: &str) -> Size {
        Size {
            sets: r.sets.len(),
            set_elements: r.sets.iter().map(|s| s.elements.len()).sum(),
            map_elements: r.maps.iter().map(|m| m.elements.len()).sum(),
            chains: r.chains.len(),
            rules: r.chains.iter().map(|c| c.rules.len()).sum(),
            script_bytes: script.len(),
        }
    }
}

/// Figures of (a).
#[derive(Debug, Default)]
pub struct CompileApply {
    /// Parsing every object once (first snapshot).
    pub parse: Duration,
    /// `weft_policy::nft::compile`.
    pub compile: Samples,
    /// `Ruleset::render`.
    pub render: Samples,
    /// `nft -f -` of the full table into a fresh namespace.
    pub apply_fresh: Samples,
    /// CPU of that `nft` process.
    pub apply_fresh_cpu: Samples,
    /// The same script again (replacing the table in one transaction).
    pub apply_reload: Samples,
    /// Ruleset size.
    pub size: Size,
}

/// Applies `script` in `ns`; returns wall and CPU of the `nft` child.
pub fn timed_apply(script: &str, ns: &NetnsFd) -> Result<(Duration, Duration)> {
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    apply_nft(script, Some(ns)).context("nft -f -")?;
    Ok((t0.elapsed(), children_cpu().saturating_sub(cpu0)))
}

/// Measures (a) `rounds` times, each into a fresh namespace.
pub fn compile_and_apply(objects: &[Object], shape: Shape, rounds: usize) -> Result<CompileApply> {
    let mut out = CompileApply::default();
    let t0 = Instant::now();
    let inv = Inventory::new(objects, shape.nodes)?;
    out.parse = t0.elapsed();
    let cluster = inv.cluster();
    for _ in 0..rounds {
        let t0 = Instant::now();
        let ruleset = compile(&cluster, NODE);
        out.compile.push(t0.elapsed());
        let t0 = Instant::now();
        let script = ruleset.render();
        out.render.push(t0.elapsed());
        out.size = Size::of(&ruleset, &script);
        let ns = TestNs::new("pol")?;
        let fd = NetnsFd::open(ns.path())?;
        let (wall, cpu) = timed_apply(&script, &fd)?;
        out.apply_fresh.push(wall);
        out.apply_fresh_cpu.push(cpu);
        out.apply_reload.push(timed_apply(&script, &fd)?.0);
    }
    Ok(out)
}

/// Which transaction a change needed.
#[derive(Debug, Default)]
pub struct ChangeFigures {
    /// Change -> applied, every change.
    pub latency: Samples,
    /// Label changes only.
    pub label: Samples,
    /// Policy changes only.
    pub policy: Samples,
    /// In-process only: re-parse + recompile part of each change.
    pub compile: Samples,
    /// Changes applied as element-only deltas.
    pub deltas: usize,
    /// Changes that needed the full table.
    pub full: usize,
    /// Changes whose ruleset did not change at all.
    pub unchanged: usize,
}

/// The `k`-th change of the change-latency tests: even `k` flips a pod's `app` label, odd
/// `k` shifts a policy's port. Returns the changed object and whether it is a label change.
pub fn change(k: usize, shape: Shape, namespaces: usize) -> (Object, bool) {
    let generated_pods = shape.pods.saturating_sub(3).max(1);
    let generated_policies = shape.policies.saturating_sub(3).max(1);
    let round = k / 2;
    if k.is_multiple_of(2) {
        let i = (round * 37) % generated_pods;
        // Every visit moves the pod to another app than it had.
        let labels = pod_labels(i, pod_app(i) + 1 + round / generated_pods);
        (pod_object(i, namespaces, shape.nodes.max(1), labels), true)
    } else {
        let j = (round * 13) % generated_policies;
        let variant = u16::try_from(1 + round % 7).unwrap_or(1);
        let ns = format!("ns{}", j % namespaces);
        (
            policy_with(&ns, j / namespaces, j, namespaces, variant),
            false,
        )
    }
}

/// (b) in-process: for each change, re-parse the object, recompile, and apply the element
/// delta (or the full table when the structure changed), in a namespace holding the full
/// ruleset.
pub fn in_process_changes(
    objects: &[Object],
    shape: Shape,
    changes: usize,
) -> Result<ChangeFigures> {
    let namespaces = shape.namespaces.max(1);
    let mut inv = Inventory::new(objects, shape.nodes)?;
    let ns = TestNs::new("polchg")?;
    let fd = NetnsFd::open(ns.path())?;
    let mut current = compile(&inv.cluster(), NODE);
    apply_nft(&current.render(), Some(&fd))?;
    let mut out = ChangeFigures::default();
    for k in 0..changes {
        let (object, is_label) = change(k, shape, namespaces);
        let t0 = Instant::now();
        inv.upsert(&object)?;
        let next = compile(&inv.cluster(), NODE);
        out.compile.push(t0.elapsed());
        match element_delta(&current, &next) {
            Some(delta) if delta.is_empty() => out.unchanged += 1,
            Some(delta) => {
                apply_nft(&delta.render(), Some(&fd)).context("element delta")?;
                out.deltas += 1;
            }
            None => {
                apply_nft(&next.render(), Some(&fd)).context("full table")?;
                out.full += 1;
            }
        }
        let took = t0.elapsed();
        out.latency.push(took);
        if is_label {
            out.label.push(took);
        } else {
            out.policy.push(took);
        }
        current = next;
    }
    Ok(out)
}
