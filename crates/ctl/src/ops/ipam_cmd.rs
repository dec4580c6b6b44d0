//! `weftctl ipam`: usage per range, `--check` for leaked reservations, `--release` to free
//! them. Reads the reservations in host-local's layout under the conflist's `dataDir`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::Value;
use weft_cluster::NodeLocalConfig;
use weft_ipam::{DiskStore, Reservation, Store, with_lock};
use weft_store::Datastore;

use super::attach::{LinkSnapshot, snapshot_current_netns};
use super::ipam::{Evidence, Finding, NetworkIpam, ReservationFacts, State, judge, network_ipam};
use super::table::{Table, age};
use super::{OutputArgs, OutputFormat, StoreArgs, print_json, runtime};

/// The conflist weftd writes.
pub const WEFT_CONFLIST: &str = "10-weft.conflist";

/// `weftctl ipam` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct IpamArgs {
    /// CNI config dir holding weftd's 10-weft.conflist.
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// Read this conflist instead of <cni-conf-dir>/10-weft.conflist.
    #[arg(long)]
    pub conflist: Option<PathBuf>,
    /// IPAM data dir (default: the conflist's ipam.dataDir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// List reservations whose pod is gone (needs the datastore flags).
    #[arg(long)]
    pub check: bool,
    /// Free the leaked reservations `--check` finds (re-checked under the IPAM lock).
    #[arg(long)]
    pub release: bool,
    /// This node's name (default: from <run-dir>/node.json).
    #[arg(long)]
    pub node_name: Option<String>,
    /// weftd's run dir.
    #[arg(long, default_value = "/run/weft")]
    pub run_dir: PathBuf,
    /// Reservations younger than this are never leaked (an ADD may be in progress).
    #[arg(long, default_value_t = 120)]
    pub grace_seconds: u64,
    /// Datastore.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Usage of one range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeRow {
    /// Range set index (one per family, usually).
    pub set: usize,
    /// The range.
    pub range: String,
    /// Reserved addresses in it.
    pub used: u128,
    /// Addresses it can hand out.
    pub total: u128,
}

/// The answer of `weftctl ipam`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamReport {
    /// IPAM network name.
    pub network: String,
    /// `<dataDir>/<network>`.
    pub store_dir: PathBuf,
    /// Usage per range.
    pub ranges: Vec<RangeRow>,
    /// With `--check`: every reservation and its state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Vec<Finding>>,
    /// With `--release`: the addresses freed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<Vec<IpAddr>>,
}

impl IpamReport {
    /// Leaked reservations still held.
    pub fn leaked_left(&self) -> usize {
        let released = self.released.as_deref().unwrap_or_default();
        self.reservations
            .iter()
            .flatten()
            .filter(|f| f.state == State::Leaked && !released.contains(&f.ip))
            .count()
    }

    /// Tables for people.
    pub fn render(&self) -> String {
        let mut usage = Table::new(&["SET", "RANGE", "USED", "TOTAL", "USE%"]);
        for r in &self.ranges {
            let percent = (r.used * 100).checked_div(r.total).unwrap_or(0);
            usage.row(vec![
                r.set.to_string(),
                r.range.clone(),
                r.used.to_string(),
                r.total.to_string(),
                format!("{percent}%"),
            ]);
        }
        let mut out = format!(
            "network {} ({})\n{}",
            self.network,
            self.store_dir.display(),
            usage.render()
        );
        if let Some(findings) = &self.reservations {
            let mut t = Table::new(&["IP", "CONTAINER", "IFNAME", "POD", "VETH", "AGE", "STATE"]);
            for f in findings {
                let state = match &self.released {
                    Some(r) if r.contains(&f.ip) => "released".to_string(),
                    _ => f.state.to_string(),
                };
                t.row(vec![
                    f.ip.to_string(),
                    short_id(&f.container_id),
                    f.ifname.clone().unwrap_or_else(|| "-".into()),
                    f.pod.clone().unwrap_or_else(|| "-".into()),
                    if f.attached { "yes" } else { "no" }.into(),
                    f.age_seconds.map_or_else(|| "-".into(), age),
                    state,
                ]);
            }
            out.push('\n');
            out.push_str(&t.render());
            out.push_str(&format!(
                "{} leaked reservation(s) left\n",
                self.leaked_left()
            ));
        }
        out
    }
}

fn short_id(id: &str) -> String {
    match id {
        "" => "-".into(),
        id => id.chars().take(13).collect(),
    }
}

/// Runs the command; false when leaked reservations remain (`--check` without `--release`).
pub fn run(args: &IpamArgs) -> Result<bool> {
    let conflist_path = args
        .conflist
        .clone()
        .unwrap_or_else(|| args.cni_conf_dir.join(WEFT_CONFLIST));
    let text = std::fs::read_to_string(&conflist_path).with_context(|| {
        format!(
            "read {} (has weftd written it yet?)",
            conflist_path.display()
        )
    })?;
    let conflist: Value = serde_json::from_str(&text)
        .with_context(|| format!("parse {}", conflist_path.display()))?;
    let mut net = network_ipam(&conflist)?;
    if let Some(dir) = &args.data_dir {
        net.config.data_dir.clone_from(dir);
    }
    let report = if args.check || args.release {
        // One runtime for the store's whole life: clients keep background tasks on it.
        let rt = runtime()?;
        let store = rt.block_on(args.store.open())?;
        let node = match &args.node_name {
            Some(n) => n.clone(),
            None => node_name_from(&args.run_dir)?,
        };
        let probe = Probe {
            runtime: &rt,
            datastore: store.as_ref(),
            node: &node,
            links: &snapshot_current_netns,
            grace: Duration::from_secs(args.grace_seconds),
        };
        inspect(&net, Some(&probe), args.release)?
    } else {
        inspect(&net, None, false)?
    };
    match args.out.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Table => print!("{}", report.render()),
    }
    Ok(report.leaked_left() == 0)
}

fn node_name_from(run_dir: &Path) -> Result<String> {
    let path = run_dir.join("node.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read {} (or pass --node-name)", path.display()))?;
    Ok(NodeLocalConfig::from_json(&text)
        .with_context(|| format!("parse {}", path.display()))?
        .node)
}

/// Where `--check` gets its evidence.
pub struct Probe<'a> {
    /// The runtime the datastore was opened on.
    pub runtime: &'a tokio::runtime::Runtime,
    /// The datastore with the pod objects.
    pub datastore: &'a dyn Datastore,
    /// This node's name (pods' `spec.nodeName`).
    pub node: &'a str,
    /// The node's links (the current namespace's in production; injected in tests).
    pub links: &'a dyn Fn() -> Result<LinkSnapshot>,
    /// Grace period for fresh reservations.
    pub grace: Duration,
}

impl Probe<'_> {
    /// Addresses of this node's pod objects. Refuses when any pod object is unreadable:
    /// its addresses are unknown, so no reservation could be judged safely.
    fn pods_by_ip(&self) -> Result<HashMap<IpAddr, String>> {
        let listing = self.runtime.block_on(self.datastore.list("pods"))?;
        let mut out = HashMap::new();
        for entry in &listing.entries {
            let pod = weft_policy::k8s::pod_from_object(&entry.key, &entry.value)
                .map_err(|e| anyhow!("unreadable pod object, not judging reservations: {e}"))?;
            if pod.node == self.node {
                for ip in &pod.ips {
                    out.insert(*ip, format!("{}/{}", pod.namespace, pod.name));
                }
            }
        }
        Ok(out)
    }

    /// Fresh evidence and the verdict for every reservation.
    fn judge_all(
        &self,
        net: &NetworkIpam,
        store: &DiskStore,
        reservations: Vec<Reservation>,
    ) -> Result<Vec<Finding>> {
        let pods = self.pods_by_ip()?;
        let links = (self.links)()?;
        if let Some(bridge) = &net.bridge
            && !links.names.contains(bridge)
        {
            bail!(
                "bridge {bridge} not found: run on the node (host network namespace), \
                 or weftd has not set the node up yet"
            );
        }
        let evidence = Evidence {
            network: &net.config.network,
            pods_by_ip: &pods,
            links: &links,
            now: SystemTime::now(),
            grace: self.grace,
        };
        let mut reservations = reservations;
        reservations.sort_by_key(|r| r.ip);
        reservations
            .into_iter()
            .map(|r| {
                let facts = ReservationFacts {
                    reserved_at: store.reserved_at(r.ip)?,
                    ip: r.ip,
                    holder: r.holder,
                };
                Ok(judge(&facts, &evidence))
            })
            .collect()
    }
}

/// Usage, and with a probe the check (and the release). Never creates the store
/// directory of a network that has no reservations yet.
pub fn inspect(net: &NetworkIpam, probe: Option<&Probe<'_>>, release: bool) -> Result<IpamReport> {
    let store_dir = net.config.data_dir.join(&net.config.network);
    let mut report = IpamReport {
        network: net.config.network.clone(),
        store_dir: store_dir.clone(),
        ranges: Vec::new(),
        reservations: None,
        released: None,
    };
    if !store_dir.is_dir() {
        report.ranges = usage_rows(net, &[]);
        report.reservations = probe.map(|_| Vec::new());
        report.released = (probe.is_some() && release).then(Vec::new);
        return Ok(report);
    }
    let mut store = weft_ipam::open_store(&net.config)?;
    let reservations = with_lock(&mut store, |s| Ok(s.reservations()?))?;
    let taken: Vec<IpAddr> = reservations.iter().map(|r| r.ip).collect();
    report.ranges = usage_rows(net, &taken);
    let Some(probe) = probe else {
        return Ok(report);
    };
    let findings = probe.judge_all(net, &store, reservations)?;
    if release {
        let leaked: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.state == State::Leaked)
            .collect();
        report.released = Some(release_leaked(net, probe, &mut store, &leaked)?);
    }
    report.reservations = Some(findings);
    Ok(report)
}

fn usage_rows(net: &NetworkIpam, taken: &[IpAddr]) -> Vec<RangeRow> {
    let mut rows = Vec::new();
    for (set, range_set) in net.config.range_sets.iter().enumerate() {
        for range in &range_set.ranges {
            rows.push(RangeRow {
                set,
                range: range.to_string(),
                used: taken.iter().filter(|ip| range.is_allocatable(**ip)).count() as u128,
                total: range.allocatable_count(),
            });
        }
    }
    rows
}

/// Frees `leaked` under the store lock, after judging each again with fresh evidence
/// gathered while the lock is held: a reservation that changed holder, got a pod object
/// or an attachment since the first look is kept.
fn release_leaked(
    net: &NetworkIpam,
    probe: &Probe<'_>,
    store: &mut DiskStore,
    leaked: &[&Finding],
) -> Result<Vec<IpAddr>> {
    if leaked.is_empty() {
        return Ok(Vec::new());
    }
    // The closure's own errors (datastore, netlink) ride inside the IPAM result.
    with_lock(store, |s| {
        let current = s.reservations()?;
        Ok(probe.judge_all(net, s, current).and_then(|fresh| {
            let mut released = Vec::new();
            for before in leaked {
                let still = fresh.iter().any(|f| {
                    f.ip == before.ip
                        && f.state == State::Leaked
                        && f.container_id == before.container_id
                        && f.ifname == before.ifname
                });
                if still && s.release(before.ip)? {
                    released.push(before.ip);
                }
            }
            Ok(released)
        }))
    })?
}
