//! The agent loop: claim, publish, watch peers, reconcile by level.
//!
//! Every wake-up (watch event, periodic resync, retry, lease change) recomputes the whole
//! desired state and converges the kernel to it. Datastore trouble never removes anything:
//! the last known peers stay programmed until the store says otherwise.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use tokio::time::Instant;
use weft_cluster::{ClusterConfig, NodeLocalConfig, NodePlan, NodeRecord, derive_mtu};
use weft_store::subnets::KIND_NODES;
use weft_store::{Datastore, LeaseState, WatchEvent, WatchStream};

use weft_observe::{Health, Metrics, Observe};

use crate::cli::{Args, MetricsAddress};
use crate::desired::{local_setup, peer_plan};
use crate::files::{Paths, Status};
use crate::kernel::{Converged, Kernel, Underlay};
use crate::membership::{Membership, same_record};
use crate::peers::PeerView;
use crate::status::StatusBoard;

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(15);

/// Runs weftd until the future is dropped (on SIGTERM). Never tears anything down.
pub async fn run(args: Args) -> Result<()> {
    let text = std::fs::read_to_string(&args.cluster_config)
        .with_context(|| format!("read {}", args.cluster_config.display()))?;
    let cfg: ClusterConfig = serde_json::from_str(&text).context("parse cluster config")?;
    cfg.validate()?;
    let observe = start_observe(&args).await;
    let mut kernel = Kernel::open()?;
    let underlay = wait_for_underlay(&mut kernel, &args.underlay_iface, &observe).await;
    let pod_mtu = derive_mtu(&cfg, underlay.mtu, underlay.primary.addr().is_ipv6())?;
    tracing::info!(node = %args.node_name, underlay = %underlay.primary, pod_mtu, "starting");
    let store = open_store(&args, &observe).await;
    let paths = Paths {
        run_dir: args.run_dir.clone(),
        cni_conf_dir: args.cni_conf_dir.clone(),
        ipam_data_dir: args.ipam_data_dir.clone(),
        policy_socket: args.network_policy.then(|| args.policy_socket()),
    };
    let status = Arc::new(StatusBoard::new(paths.clone(), observe));
    start_policy(&args, &store, &status).await;
    let mut agent = Agent {
        paths,
        status,
        local: local_record(&args.node_name, &underlay),
        args,
        cfg,
        kernel: Arc::new(Mutex::new(kernel)),
        underlay,
        pod_mtu,
        store,
        membership: None,
        published: false,
        node_files: None,
        peers: PeerView::default(),
        errors: Errors::default(),
        backoff: MIN_BACKOFF,
    };
    agent.main_loop().await
}

/// NetworkPolicy runs as its own task; with `--network-policy false` its leftovers go.
async fn start_policy(args: &Args, store: &Arc<dyn Datastore>, status: &Arc<StatusBoard>) {
    if !args.network_policy {
        crate::policy::disable(&args.policy_socket(), status).await;
        return;
    }
    let cfg = crate::policy::PolicyConfig {
        node: args.node_name.clone(),
        socket: args.policy_socket(),
        resync: args.resync(),
    };
    tokio::spawn(crate::policy::run(
        cfg,
        Arc::clone(store),
        Arc::clone(status),
    ));
}

/// Serves health and metrics from the start, so a node stuck waiting for its underlay
/// or datastore shows as live but not ready. A failed bind is logged, not fatal: pods
/// keep being networked without metrics.
async fn start_observe(args: &Args) -> Arc<Observe> {
    // Live as long as the loop turns at least every few resyncs (waits beat too).
    let stale_after = (args.resync() * 6).max(Duration::from_secs(60));
    let observe = Arc::new(Observe {
        metrics: Metrics::new(),
        health: Health::new(stale_after),
    });
    if let MetricsAddress::At(addr) = args.metrics_address {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(%addr, "serving /healthz, /readyz, /metrics");
                let observe = Arc::clone(&observe);
                tokio::spawn(async move {
                    if let Err(e) = weft_observe::serve(listener, observe).await {
                        tracing::error!(error = %e, "metrics server stopped");
                    }
                });
            }
            Err(e) => tracing::error!(%addr, error = %e, "cannot serve metrics"),
        }
    }
    observe
}

/// The underlay may come up after weftd (boot order, a lab still wiring): wait for it.
async fn wait_for_underlay(kernel: &mut Kernel, iface: &str, observe: &Observe) -> Underlay {
    let mut backoff = MIN_BACKOFF;
    loop {
        observe.health.beat();
        match kernel.underlay(iface) {
            Ok(underlay) => return underlay,
            Err(e) => tracing::warn!(error = format!("{e:#}"), "underlay not ready, waiting"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn open_store(args: &Args, observe: &Observe) -> Arc<dyn Datastore> {
    let config = args.store_config();
    let mut backoff = MIN_BACKOFF;
    loop {
        observe.health.beat();
        let opened = match &config {
            Some(config) => config.open().await,
            None => weft_kube::open(args.kubeconfig.as_deref()).await,
        };
        match opened {
            Ok(store) => return store,
            Err(e) => tracing::warn!(error = %e, "cannot open datastore, retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn local_record(name: &str, underlay: &Underlay) -> NodeRecord {
    let mut record = NodeRecord::new(name, underlay.primary.addr());
    record.underlay_prefix_len = Some(underlay.primary.prefix_len());
    record.underlay_secondary = underlay.secondary;
    record
}

/// Problems to report in status.json, by source.
#[derive(Debug, Default)]
struct Errors {
    store: Option<String>,
    kernel: Option<String>,
    plan: Vec<String>,
}

impl Errors {
    fn summary(&self) -> Option<String> {
        let all: Vec<&str> = self
            .store
            .iter()
            .chain(self.kernel.iter())
            .chain(self.plan.iter())
            .map(String::as_str)
            .collect();
        (!all.is_empty()).then(|| all.join("; "))
    }
}

struct Agent {
    args: Args,
    cfg: ClusterConfig,
    paths: Paths,
    status: Arc<StatusBoard>,
    kernel: Arc<Mutex<Kernel>>,
    underlay: Underlay,
    pod_mtu: u32,
    store: Arc<dyn Datastore>,
    membership: Option<Membership>,
    local: NodeRecord,
    published: bool,
    node_files: Option<NodeLocalConfig>,
    peers: PeerView,
    errors: Errors,
    backoff: Duration,
}

impl Agent {
    async fn main_loop(&mut self) -> Result<()> {
        let mut resync = tokio::time::interval(self.args.resync());
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch: Option<WatchStream> = None;
        let mut retry_at: Option<Instant> = Some(Instant::now());
        loop {
            // A change between two iterations is not seen by a fresh receiver: look first.
            self.on_lease_state();
            let mut lease_rx = self.membership.as_ref().map(|m| {
                // A clone of the keeper's receiver starts at the version *it* last saw:
                // mark the current state seen, or `changed()` fires at once, forever.
                let mut rx = m.subscribe();
                rx.borrow_and_update();
                rx
            });
            tokio::select! {
                event = next_event(&mut watch) => match event {
                    Some(event) => self.on_event(event),
                    None => watch = None,
                },
                _ = resync.tick() => {
                    self.store_sync(&mut watch).await;
                }
                _ = sleep_until(retry_at) => {
                    retry_at = None;
                    self.store_sync(&mut watch).await;
                }
                _ = lease_changed(&mut lease_rx) => {
                    self.on_lease_state();
                    self.store_sync(&mut watch).await;
                }
            }
            self.reconcile().await;
            if self.needs_retry(&watch) {
                retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            } else {
                self.backoff = MIN_BACKOFF;
            }
        }
    }

    fn needs_retry(&self, watch: &Option<WatchStream>) -> bool {
        self.membership.is_none() || !self.published || watch.is_none() || !self.peers.known()
    }

    fn on_lease_state(&mut self) {
        match self.membership.as_ref().map(Membership::state) {
            Some(LeaseState::Lost) => {
                tracing::warn!("lease lost: claiming again");
                self.membership = None;
                self.published = false;
            }
            Some(LeaseState::Unreachable { error, .. }) => {
                self.errors.store = Some(format!("datastore unreachable: {error}"));
            }
            _ => {}
        }
    }

    fn on_event(&mut self, event: WatchEvent) {
        if self.peers.apply_event(&event) {
            self.check_own_record();
        }
    }

    /// Level-based view of our own record: if the store lost or changed it, publish again.
    fn check_own_record(&mut self) {
        if self.peers.known()
            && !self
                .peers
                .get(&self.local.name)
                .is_some_and(|r| same_record(r, &self.local))
        {
            self.published = false;
        }
    }

    /// Everything that talks to the datastore; failures are recorded and retried later.
    async fn store_sync(&mut self, watch: &mut Option<WatchStream>) {
        let result = self.store_sync_inner(watch).await;
        self.status
            .observe()
            .metrics
            .set_datastore_up(result.is_ok());
        self.status
            .observe()
            .metrics
            .set_watch_up("nodes", watch.is_some());
        self.errors.store = match result {
            Ok(()) => match self.membership.as_ref().map(Membership::state) {
                Some(LeaseState::Unreachable { error, .. }) => {
                    Some(format!("datastore unreachable: {error}"))
                }
                _ => None,
            },
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "datastore");
                Some(format!("datastore: {e:#}"))
            }
        };
    }

    async fn store_sync_inner(&mut self, watch: &mut Option<WatchStream>) -> Result<()> {
        if self.membership.is_none() {
            let mut hints = self.local.subnets.clone();
            hints.extend(self.paths.previous_subnets());
            let membership = Membership::claim(
                &self.store,
                &self.cfg,
                &self.args.node_name,
                self.args.lease_ttl(),
                &hints,
            )
            .await?;
            if membership.subnets != self.local.subnets {
                self.local.subnets.clone_from(&membership.subnets);
                self.published = false;
            }
            self.membership = Some(membership);
            // Program the local devices first: the record carries the VXLAN MAC.
            self.reconcile().await;
        }
        if watch.is_none() {
            *watch = Some(self.store.watch(KIND_NODES).await?);
        }
        let listing = self.store.list(KIND_NODES).await?;
        self.peers.apply_listing(&listing);
        self.check_own_record();
        self.publish_if_needed().await
    }

    async fn publish_if_needed(&mut self) -> Result<()> {
        let Some(membership) = &self.membership else {
            return Ok(());
        };
        let vxlan = matches!(self.cfg.backend, weft_cluster::Backend::Vxlan { .. });
        if self.published || (vxlan && self.local.vxlan_mac.is_none()) {
            return Ok(());
        }
        membership.publish(&self.store, &self.local).await?;
        tracing::info!(record = ?self.local, "node record published");
        self.peers.insert_own(self.local.clone());
        self.published = true;
        Ok(())
    }

    /// Converges the kernel to the desired state and writes the files.
    async fn reconcile(&mut self) {
        if self.membership.is_none() && self.local.subnets.is_empty() {
            self.write_status(false, 0);
            return;
        }
        let setup = match local_setup(&self.cfg, &self.local, self.pod_mtu, self.underlay.index) {
            Ok(s) => s,
            Err(e) => {
                self.errors.kernel = Some(e.to_string());
                self.write_status(false, 0);
                return;
            }
        };
        let peers: Vec<NodeRecord> = self.peers.records();
        let plan: Option<NodePlan> = match self.peers.known() {
            false => None,
            true => match peer_plan(&self.cfg, &self.local, &peers) {
                Ok((plan, rejected)) => {
                    if rejected != self.errors.plan {
                        rejected.iter().for_each(|r| tracing::error!("{r}"));
                    }
                    self.errors.plan = rejected;
                    Some(plan)
                }
                Err(e) => {
                    self.errors.plan = vec![e.to_string()];
                    None
                }
            },
        };
        let programmed = plan
            .as_ref()
            .map_or(0, |p| peer_count(p, &self.local, &peers));
        let kernel = Arc::clone(&self.kernel);
        let (data_dir, subnets) = (self.paths.ipam_data_dir.clone(), self.local.subnets.clone());
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let mut kernel = kernel.lock().map_err(|_| anyhow!("kernel lock poisoned"))?;
            let converged = kernel.converge(&setup, plan.as_ref());
            Ok((converged, crate::usage::ipam_usage(&data_dir, &subnets)))
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
        let elapsed = started.elapsed().as_secs_f64();
        let ok = match result {
            Ok((converged, usage)) => {
                self.status.observe().metrics.set_ipam(&usage);
                self.after_converge(&converged)
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "programming the node failed");
                self.errors.kernel = Some(format!("kernel: {e:#}"));
                false
            }
        };
        self.status.observe().metrics.observe_reconcile(elapsed, ok);
        let healthy = ok && self.membership.is_some() && self.peers.known() && self.published;
        self.write_status(healthy, programmed);
    }

    fn after_converge(&mut self, converged: &Converged) -> bool {
        self.errors.kernel =
            (!converged.problems.is_empty()).then(|| converged.problems.join("; "));
        if converged.changes > 0 {
            tracing::info!(changes = converged.changes, "reconciled");
        }
        // A VXLAN device that failed this round reports no MAC: keep publishing the old one.
        let vxlan = matches!(self.cfg.backend, weft_cluster::Backend::Vxlan { .. });
        let mac_known = converged.vxlan_mac.is_some() || !vxlan;
        if mac_known && converged.vxlan_mac != self.local.vxlan_mac {
            self.local.vxlan_mac = converged.vxlan_mac;
            self.published = false;
        }
        let files = NodeLocalConfig {
            node: self.local.name.clone(),
            subnets: self.local.subnets.clone(),
            mtu: self.pod_mtu,
            backend: self.cfg.backend,
            cluster_cidrs: self.cfg.cluster_cidrs.clone(),
        };
        if self.node_files.as_ref() != Some(&files) {
            if let Err(e) = self.paths.write_node_files(&files) {
                self.errors.kernel = Some(format!("{e:#}"));
                return false;
            }
            self.node_files = Some(files);
        }
        converged.problems.is_empty()
    }

    fn write_status(&self, healthy: bool, peers: usize) {
        let status = Status {
            node: self.local.name.clone(),
            pid: std::process::id(),
            healthy,
            last_reconcile: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            subnets: self.local.subnets.clone(),
            peers,
            underlay_ip: self.local.underlay_ip,
            backend: self.cfg.backend,
            error: self.errors.summary(),
            policy: None,
        };
        if let Err(e) = self.status.set_routing(status) {
            tracing::warn!(error = format!("{e:#}"), "cannot write status");
        }
    }
}

/// Peers the plan routes to: every other node except the refused ones.
fn peer_count(plan: &NodePlan, local: &NodeRecord, peers: &[NodeRecord]) -> usize {
    let others = peers.iter().filter(|p| p.name != local.name).count();
    others.saturating_sub(plan.rejected.len())
}

async fn next_event(watch: &mut Option<WatchStream>) -> Option<WatchEvent> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn lease_changed(rx: &mut Option<tokio::sync::watch::Receiver<LeaseState>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
