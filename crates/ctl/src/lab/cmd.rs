//! `lab up`, `lab down` and `lab demo`: building and tearing down the whole lab.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use weft_datapath::{delete_named_netns, list_named_netns, named_netns_path};

use super::agents::{
    NodeDirs, POLICY_SYNC_TIMEOUT, cluster_config, start_etcd, start_weftd, wait_healthy,
    wait_policy_revision,
};
use super::fabric::{create_fabric, create_node, node_underlay_ip, node_underlay_ip6};
use super::pods::{create_pod, pod_object};
use super::procs::{netns_identity, pids_in_netns, process_netns, spawn_in_netns, stop_all};
use super::state::{
    BackendKind, LabPaths, LabState, NodeState, PodState, PortSpec, Proto, StoreKind, write_atomic,
};
use super::store::{self, StoreOp};

/// Options of `lab up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Number of nodes (1..=200).
    pub nodes: u8,
    /// Backend.
    pub backend: BackendKind,
    /// Store.
    pub store: StoreKind,
    /// Pods created per node.
    pub pods_per_node: usize,
    /// Dual stack.
    pub ipv6: bool,
    /// Directory with `weft` and `weft-ipam` (default: weftctl's directory).
    pub cni_bin_dir: Option<PathBuf>,
    /// The weftd binary (default: next to weftctl).
    pub weftd: Option<PathBuf>,
    /// The etcd binary.
    pub etcd: PathBuf,
}

/// The ports every pod made by `up` (and every node) answers on.
pub fn default_ports() -> Vec<PortSpec> {
    vec![
        PortSpec {
            port: 80,
            protocol: Proto::Tcp,
            name: Some("http".into()),
        },
        PortSpec {
            port: 80,
            protocol: Proto::Udp,
            name: Some("echo".into()),
        },
    ]
}

/// The running weftctl binary (spawned again as the responder).
pub fn weftctl_exe() -> Result<PathBuf> {
    std::env::current_exe().context("locate the weftctl binary")
}

/// Prints `[i/n] what ... ` and `ok` or `FAILED` around `f`.
pub fn step<T>(i: usize, n: usize, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    print!("[{i}/{n}] {what} ... ");
    let _ = std::io::stdout().flush();
    let result = f();
    println!("{}", if result.is_ok() { "ok" } else { "FAILED" });
    result
}

fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("weftctl lab needs root (it creates network namespaces)");
    }
    Ok(())
}

fn require_file(path: &Path, hint: &str) -> Result<()> {
    if !path.is_file() {
        bail!("{} not found; {hint}", path.display());
    }
    Ok(())
}

/// `lab up`.
pub fn up(paths: &LabPaths, opts: &UpOptions) -> Result<()> {
    require_root()?;
    if opts.nodes == 0 || opts.nodes > 200 {
        bail!("--nodes must be in 1..=200");
    }
    let fabric = paths.fabric_netns();
    if paths.state_file().exists() || named_netns_path(&fabric).exists() {
        bail!(
            "a lab is already up ({} or namespace {fabric} exists); run `weftctl lab down` first",
            paths.state_file().display()
        );
    }
    let weftctl = weftctl_exe()?;
    let bin_dir = match &opts.cni_bin_dir {
        Some(dir) => dir.clone(),
        None => weftctl.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let weftd = opts.weftd.clone().unwrap_or_else(|| bin_dir.join("weftd"));
    let build = "build it with `cargo build -p weft-agent -p weft-plugin --bins` (same target dir) or pass --cni-bin-dir/--weftd";
    require_file(&bin_dir.join("weft"), build)?;
    require_file(&bin_dir.join("weft-ipam"), build)?;
    require_file(&weftd, build)?;
    if opts.store == StoreKind::Etcd {
        require_file(&opts.etcd, "install Debian's etcd-server or pass --etcd")?;
    }
    std::fs::create_dir_all(paths.pods_dir())
        .with_context(|| format!("create {}", paths.dir.display()))?;
    let mut state = LabState {
        prefix: paths.prefix.clone(),
        backend: opts.backend,
        store: opts.store,
        ipv6: opts.ipv6,
        cni_bin_dir: bin_dir,
        etcd_pid: None,
        nodes: Vec::new(),
        namespaces: Vec::new(),
        pods: Vec::new(),
        policies: Vec::new(),
    };
    state.save(paths)?;
    let result = build_lab(paths, opts, &mut state, &weftd, &weftctl);
    // Whatever happened, the state on disk lists what exists so that `down` finds it.
    state.save(paths)?;
    if result.is_err() {
        eprintln!("(the partial lab is left for inspection; `weftctl lab down` removes it)");
    }
    result
}

fn build_lab(
    paths: &LabPaths,
    opts: &UpOptions,
    state: &mut LabState,
    weftd: &Path,
    weftctl: &Path,
) -> Result<()> {
    let fabric = paths.fabric_netns();
    step(
        1,
        5,
        &format!("fabric namespace {fabric} (br0 198.18.0.1/24)"),
        || create_fabric(&fabric, opts.ipv6),
    )?;
    step(2, 5, &format!("{} node namespaces", opts.nodes), || {
        for i in 1..=opts.nodes {
            let name = format!("node{i}");
            let netns = paths.node_netns(&name);
            NodeDirs::of(paths, &name).create()?;
            let ip = node_underlay_ip(i);
            let ip6 = opts.ipv6.then(|| node_underlay_ip6(i));
            create_node(&fabric, &netns, &name, ip, ip6)?;
            let mut node = NodeState {
                name: name.clone(),
                netns,
                underlay_ip: ip,
                weftd_pid: None,
                responder_pid: None,
            };
            let log = NodeDirs::of(paths, &name).run.join("responder.log");
            let args = responder_args(&default_ports());
            node.responder_pid = Some(spawn_in_netns(
                &named_netns_path(&node.netns),
                weftctl,
                &args,
                &log,
            )?);
            state.nodes.push(node);
            state.save(paths)?;
        }
        Ok(())
    })?;
    let store_label = match opts.store {
        StoreKind::Embedded => format!("embedded store {}", paths.store_dir().display()),
        StoreKind::Etcd => "etcd on 198.18.0.1:2379 (fabric namespace)".to_string(),
    };
    step(3, 5, &store_label, || {
        let config = cluster_config(opts.backend, opts.ipv6)?;
        write_atomic(
            &paths.cluster_config(),
            &serde_json::to_vec_pretty(&config)?,
        )?;
        match opts.store {
            StoreKind::Embedded => std::fs::create_dir_all(paths.store_dir())?,
            StoreKind::Etcd => {
                state.etcd_pid = Some(start_etcd(paths, &opts.etcd)?);
            }
        }
        Ok(())
    })?;
    step(4, 5, "weftd on every node, waiting until healthy", || {
        for i in 0..state.nodes.len() {
            let Some(node) = state.nodes.get(i).cloned() else {
                break;
            };
            let pid = start_weftd(paths, weftd, opts.store, &node)?;
            if let Some(n) = state.nodes.get_mut(i) {
                n.weftd_pid = Some(pid);
            }
            state.save(paths)?;
        }
        wait_healthy(paths, &state.nodes)
    })?;
    step(
        5,
        5,
        &format!(
            "{} pods per node through the weft plugin",
            opts.pods_per_node
        ),
        || {
            let nodes: Vec<NodeState> = state.nodes.clone();
            let mut revision = None;
            for node in &nodes {
                for i in 0..opts.pods_per_node {
                    let name = format!("pod-{}-{i}", node.name);
                    let pod = new_pod(paths, "default", &name, &node.name, default_ports());
                    // The object exists before CNI ADD, as the API server has it before the
                    // kubelet creates the sandbox (policy contract), then gets its IPs.
                    let put = |pod: &PodState| {
                        let object = pod_object(pod, None, Some(node.underlay_ip.into()));
                        store::apply(
                            paths,
                            state.store,
                            vec![StoreOp::Put {
                                kind: "pods",
                                key: pod.key(),
                                value: object,
                            }],
                        )
                    };
                    put(&pod)?;
                    let pod = create_pod(paths, state, pod, weftctl)?;
                    state.pods.push(pod.clone());
                    state.save(paths)?;
                    revision = put(&pod)?.max(revision);
                }
            }
            if let Some(revision) = revision {
                wait_policy_revision(paths, &state.nodes, revision, POLICY_SYNC_TIMEOUT)?;
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Arguments that start a responder.
pub fn responder_args(ports: &[PortSpec]) -> Vec<String> {
    vec![
        "lab".into(),
        "responder".into(),
        "--ports".into(),
        super::responder::format_ports(ports),
    ]
}

/// A pod record before it is wired.
pub fn new_pod(
    paths: &LabPaths,
    namespace: &str,
    name: &str,
    node: &str,
    ports: Vec<PortSpec>,
) -> PodState {
    PodState {
        namespace: namespace.to_string(),
        name: name.to_string(),
        node: node.to_string(),
        netns: paths.pod_netns(namespace, name),
        container_id: format!("{}-{namespace}-{name}", paths.prefix),
        ips: Vec::new(),
        labels: Default::default(),
        ports,
        responder_pid: None,
    }
}

/// `lab down`: stops every lab process, deletes every `<prefix>-*` namespace and the lab
/// directory. Works from the namespaces alone when the state file is missing or corrupt.
pub fn down(paths: &LabPaths) -> Result<()> {
    require_root()?;
    let state = match LabState::load(paths) {
        Ok(s) => Some(s),
        Err(e) => {
            if paths.state_file().exists() {
                eprintln!("warning: {e:#}; cleaning up by namespace name");
            }
            None
        }
    };
    let namespaces: Vec<String> = list_named_netns()?
        .into_iter()
        .filter(|n| paths.owns_netns(n))
        .collect();
    let identities: Vec<(u64, u64)> = namespaces
        .iter()
        .filter_map(|n| netns_identity(&named_netns_path(n)))
        .collect();
    // Recorded pids only count while they still live in a lab namespace (pid reuse).
    let recorded = state.iter().flat_map(recorded_pids);
    let me = std::process::id();
    let mut pids: Vec<u32> = recorded
        .filter(|pid| process_netns(*pid).is_some_and(|id| identities.contains(&id)))
        .chain(pids_in_netns(&identities))
        .filter(|pid| *pid != me)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    stop_all(&pids, Duration::from_secs(3));
    let mut failed = Vec::new();
    for name in &namespaces {
        if let Err(e) = delete_named_netns(name) {
            failed.push(format!("{name}: {e}"));
        }
    }
    if paths.dir.exists() {
        std::fs::remove_dir_all(&paths.dir)
            .with_context(|| format!("remove {}", paths.dir.display()))?;
    }
    println!(
        "lab down: stopped {} processes, deleted {} namespaces, removed {}",
        pids.len(),
        namespaces.len() - failed.len(),
        paths.dir.display()
    );
    if !failed.is_empty() {
        bail!("could not delete: {}", failed.join("; "));
    }
    Ok(())
}

fn recorded_pids(state: &LabState) -> Vec<u32> {
    let nodes = state
        .nodes
        .iter()
        .flat_map(|n| [n.weftd_pid, n.responder_pid]);
    let pods = state.pods.iter().map(|p| p.responder_pid);
    nodes
        .chain(pods)
        .chain([state.etcd_pid])
        .flatten()
        .collect()
}

/// `lab demo`: up with 3 nodes and 2 pods each, the matrix, down (always).
pub fn demo(paths: &LabPaths, opts: &UpOptions) -> Result<()> {
    let outcome = up(paths, opts).and_then(|()| {
        println!();
        let mut all_good = true;
        let families: &[bool] = if opts.ipv6 { &[false, true] } else { &[false] };
        for &v6 in families {
            let matrix = super::inspect::matrix(paths, None, None, v6)?;
            println!("{}:", if v6 { "IPv6" } else { "IPv4" });
            print!("{}", super::matrix::render(&matrix));
            all_good &= matrix.all_allowed_without_nat();
        }
        if all_good {
            println!("every pod and node reaches every pod, and every receiver saw the sender's own address (no NAT)");
            Ok(())
        } else {
            bail!("not every probe was allowed without NAT")
        }
    });
    if let Err(e) = &outcome {
        eprintln!("demo failed: {e:#}");
    }
    println!();
    let cleaned = down(paths);
    outcome.and(cleaned)
}
