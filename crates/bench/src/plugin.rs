//! `weft-bench [plugin]`: weft against the reference `bridge` + `host-local` plugins, in one
//! run, on the same machine, through the same runtime code path (env + stdin, like libcni).
//!
//! Everything happens in throwaway network namespaces: one "node" namespace per
//! implementation (the plugins run there) and one namespace per pod. Rounds alternate which
//! implementation goes first, because a shared 2-core VM drifts; figures are ratios within
//! the run. Namespace creation and deletion are never inside a timed section.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_runtime::{Attachment, Runtime, request_conf};
use weft_testns::TestNs;

use crate::stats::{self, Samples};

/// Options of the plugin benchmark.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Pods for the sequential ADD/DEL measurement.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Workers for the concurrent ADD measurement.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Pods ADDed by the concurrent workers.
    #[arg(long, default_value_t = 200)]
    concurrent_pods: usize,
    /// Rounds; the order of the implementations alternates between rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Directory holding the `weft` and `weft-ipam` binaries (default: next to this binary).
    #[arg(long)]
    weft_dir: Option<PathBuf>,
    /// Directory holding the reference plugins.
    #[arg(long, default_value = "/usr/lib/cni")]
    reference_dir: PathBuf,
    /// Print the figures as JSON too.
    #[arg(long)]
    json: bool,
}

/// One implementation under test.
struct Impl {
    label: &'static str,
    runtime: Runtime,
    list: Value,
    _node: TestNs,
    _data: tempfile::TempDir,
}

#[derive(Default)]
struct Figures {
    add: Samples,
    del: Samples,
    cpu_add: Samples,
    concurrent_pods_per_s: Vec<f64>,
}

/// Runs the plugin benchmark and prints its table.
pub fn run(args: &Args) -> Result<(), String> {
    let weft_dir = crate::weft_dir(args.weft_dir.as_deref())?;
    for (dir, bin) in [
        (&weft_dir, "weft"),
        (&args.reference_dir, "bridge"),
        (&args.reference_dir, "host-local"),
    ] {
        if !dir.join(bin).is_file() {
            return Err(format!(
                "{} not found (build with `cargo build --release`; reference plugins: apt-get install containernetworking-plugins)",
                dir.join(bin).display()
            ));
        }
    }
    let reference = make_impl(
        "reference bridge+host-local",
        &args.reference_dir,
        "bridge",
        "host-local",
        "10.91",
        "rbr0",
    )?;
    let weft = make_impl("weft", &weft_dir, "weft", "weft-ipam", "10.92", "wbr0")?;
    let npods = args.pods.max(args.concurrent_pods);
    eprintln!("creating {npods} pod namespaces (not timed)...");
    let pods: Vec<TestNs> = (0..npods)
        .map(|i| TestNs::new(&format!("bp{i}")).map_err(|e| format!("netns: {e}")))
        .collect::<Result<_, _>>()?;

    let impls = [&reference, &weft];
    let mut figs = [Figures::default(), Figures::default()];
    for round in 0..args.rounds {
        for k in 0..2 {
            let which = if round % 2 == 0 { k } else { 1 - k };
            let (imp, fig) = (impls[which], &mut figs[which]);
            eprintln!("round {}: {}", round + 1, imp.label);
            sequential(imp, &pods[..args.pods], round, fig)?;
            concurrent(imp, &pods[..args.concurrent_pods], args.workers, round, fig)?;
        }
    }
    report(args, &figs);
    Ok(())
}

fn make_impl(
    label: &'static str,
    dir: &std::path::Path,
    main: &str,
    ipam: &str,
    net: &str,
    bridge: &str,
) -> Result<Impl, String> {
    let node = TestNs::new("bnode").map_err(|e| format!("netns: {e}"))?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let list = json!({
        "cniVersion": "1.0.0",
        "name": format!("bench-{main}"),
        "plugins": [{
            "type": main,
            "bridge": bridge,
            "isGateway": true,
            "ipam": {
                "type": ipam,
                "ranges": [[{"subnet": format!("{net}.0.0/16")}]],
                "dataDir": data.path().join("ipam"),
            }
        }]
    });
    let runtime = Runtime {
        cni_path: vec![dir.to_path_buf()],
        node_netns: Some(node.path().to_path_buf()),
        cache_dir: data.path().join("cache"),
    };
    Ok(Impl {
        label,
        runtime,
        list,
        _node: node,
        _data: data,
    })
}

fn attachment(pod: &TestNs, round: usize, i: usize) -> Attachment {
    Attachment::kubernetes(
        &format!("bench-r{round}-p{i}"),
        &pod.path().to_string_lossy(),
        "eth0",
        &format!("pod{i}"),
    )
}

/// One plugin call; the reference chain has a single plugin, so the config is built directly.
fn call(
    imp: &Impl,
    verb: &str,
    att: &Attachment,
    prev: Option<&Value>,
) -> Result<weft_runtime::PluginOutput, String> {
    let plugin = &imp.list["plugins"][0];
    let (ty, conf) = request_conf(&imp.list, plugin, att, prev).map_err(|e| e.to_string())?;
    let out = imp
        .runtime
        .exec_raw(&ty, verb, Some(att), conf.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    if out.status != 0 {
        return Err(format!(
            "{} {verb} failed: {}{}",
            imp.label,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

fn sequential(imp: &Impl, pods: &[TestNs], round: usize, fig: &mut Figures) -> Result<(), String> {
    let mut results = Vec::with_capacity(pods.len());
    for (i, pod) in pods.iter().enumerate() {
        let att = attachment(pod, round, i);
        let out = call(imp, "ADD", &att, None)?;
        fig.add.push(out.elapsed);
        fig.cpu_add.push(out.cpu);
        results.push(serde_json::from_slice::<Value>(&out.stdout).map_err(|e| e.to_string())?);
    }
    for (i, pod) in pods.iter().enumerate() {
        let att = attachment(pod, round, i);
        let out = call(imp, "DEL", &att, results.get(i))?;
        fig.del.push(out.elapsed);
    }
    Ok(())
}

fn concurrent(
    imp: &Impl,
    pods: &[TestNs],
    workers: usize,
    round: usize,
    fig: &mut Figures,
) -> Result<(), String> {
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    let results = Mutex::new(vec![Value::Null; pods.len()]);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(pod) = pods.get(i) else { break };
                    match call(imp, "ADD", &attachment(pod, round + 1000, i), None) {
                        Ok(out) => {
                            let parsed = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                            if let Some(slot) =
                                results.lock().ok().as_mut().and_then(|r| r.get_mut(i))
                            {
                                *slot = parsed;
                            }
                        }
                        Err(e) => errors.lock().map(|mut l| l.push(e)).unwrap_or(()),
                    }
                }
            });
        }
    });
    let elapsed = start.elapsed();
    let results = results.into_inner().map_err(|_| "lock poisoned")?;
    for (i, pod) in pods.iter().enumerate() {
        call(
            imp,
            "DEL",
            &attachment(pod, round + 1000, i),
            results.get(i),
        )?;
    }
    let errors = errors.into_inner().map_err(|_| "lock poisoned")?;
    if let Some(e) = errors.first() {
        return Err(format!(
            "{} concurrent ADD: {} failures, first: {e}",
            imp.label,
            errors.len()
        ));
    }
    fig.concurrent_pods_per_s
        .push(pods.len() as f64 / elapsed.as_secs_f64().max(1e-9));
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(args: &Args, figs: &[Figures; 2]) {
    let [r, w] = figs;
    let conc = |f: &Figures| stats::median_f64(&f.concurrent_pods_per_s);
    let rows: Vec<(&str, f64, f64, f64)> = vec![
        (
            "ADD median (ms)",
            ms(r.add.median()),
            ms(w.add.median()),
            r.add.median().as_secs_f64() / w.add.median().as_secs_f64().max(1e-9),
        ),
        (
            "ADD p95 (ms)",
            ms(r.add.p95()),
            ms(w.add.p95()),
            r.add.p95().as_secs_f64() / w.add.p95().as_secs_f64().max(1e-9),
        ),
        (
            "DEL median (ms)",
            ms(r.del.median()),
            ms(w.del.median()),
            r.del.median().as_secs_f64() / w.del.median().as_secs_f64().max(1e-9),
        ),
        (
            "DEL p95 (ms)",
            ms(r.del.p95()),
            ms(w.del.p95()),
            r.del.p95().as_secs_f64() / w.del.p95().as_secs_f64().max(1e-9),
        ),
        (
            "CPU per ADD (ms)",
            ms(r.cpu_add.mean()),
            ms(w.cpu_add.mean()),
            r.cpu_add.mean().as_secs_f64() / w.cpu_add.mean().as_secs_f64().max(1e-9),
        ),
        (
            "concurrent ADD (pods/s)",
            conc(r),
            conc(w),
            conc(w) / conc(r).max(1e-9),
        ),
    ];
    println!(
        "weft-bench: {} pods sequential, {} pods with {} workers, {} rounds (alternating order)",
        args.pods, args.concurrent_pods, args.workers, args.rounds
    );
    println!(
        "{:<26} {:>12} {:>10} {:>8}",
        "metric", "reference", "weft", "ratio"
    );
    for (name, a, b, ratio) in &rows {
        println!("{name:<26} {a:>12.2} {b:>10.2} {ratio:>7.1}x");
    }
    println!(
        "ratio = reference/weft for times, weft/reference for throughput (higher is better for weft)"
    );
    if args.json {
        let obj: serde_json::Map<String, Value> = rows
            .iter()
            .map(|(n, a, b, ratio)| {
                (
                    n.to_string(),
                    json!({"reference": a, "weft": b, "ratio": ratio}),
                )
            })
            .collect();
        println!("{}", Value::Object(obj));
    }
}
