//! NetworkPolicy enforcement: a task next to the routing loop that watches namespaces,
//! pods, network policies and node records, compiles them with `weft_policy` for this node
//! and keeps table `inet weft_policy` in weftd's namespace up to date; plus the claim
//! socket through which the plugin announces a pod's addresses before wiring it. See
//! `/work/policy-contract.md`.
//!
//! Every wake-up drains what is already queued (watch events, claims) and applies once, so
//! a burst of writes costs one nft transaction, usually an element-only one.

mod apply;
mod cache;
mod claims;
mod socket;
mod state;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use weft_datapath::sysctl::{read_sysctl, write_sysctl};
use weft_observe::{ApplyMode, ClaimResult};
use weft_policy::nft::{Ruleset, compile_with_quarantine};
use weft_store::{Datastore, Listing, WatchEvent};

use crate::status::{PolicyStatus, StatusBoard};
use apply::PolicyTable;
use claims::Claim;
use state::{Kind, PolicyState};

/// Messages into the policy task.
pub enum Msg {
    /// A watch event of one kind.
    Watch(Kind, WatchEvent),
    /// A claim and where its answer goes.
    Claim(Claim, oneshot::Sender<Result<(), String>>),
    /// Listings taken to confirm the revision (a failed one ends the round).
    Listed(Vec<(Kind, Result<Listing, String>)>),
}

/// What the policy task needs from the command line.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// This node's name (`spec.nodeName` of its pods).
    pub node: String,
    /// The claim socket path.
    pub socket: PathBuf,
    /// How often the table's presence, the sysctls and a missing socket are checked.
    pub resync: Duration,
}

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// A claimed pod not in the cache is read directly; past this, it is quarantined.
const GET_TIMEOUT: Duration = Duration::from_secs(3);
/// Listings that confirm the revision are taken at most this often (backing off up to
/// [`MAX_BACKOFF`] while the datastore fails).
const CONFIRM_INTERVAL: Duration = Duration::from_millis(200);
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// Listed in status.json before "and N more".
const PROBLEMS_SHOWN: usize = 5;
/// br_netfilter: bridged (same-node) pod traffic passes the IP hooks only with these.
const BRIDGE_NF: [&str; 2] = [
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
];

/// `--network-policy false`: no table, no socket, and status says so.
pub async fn disable(socket: &Path, board: &StatusBoard) {
    if std::fs::remove_file(socket).is_ok() {
        tracing::info!(path = %socket.display(), "removed the policy socket");
    }
    let error = match apply::delete_table().await {
        Ok(()) => None,
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "cannot remove the policy table");
            Some(format!("{e:#}"))
        }
    };
    let status = PolicyStatus {
        enabled: false,
        error,
        ..PolicyStatus::default()
    };
    if let Err(e) = board.set_policy(status) {
        tracing::warn!(error = format!("{e:#}"), "cannot write status");
    }
}

/// Enforces policy until dropped.
pub async fn run(cfg: PolicyConfig, store: Arc<dyn Datastore>, board: Arc<StatusBoard>) {
    let (tx, mut rx) = mpsc::channel(1024);
    for kind in Kind::ALL {
        let board = Arc::clone(&board);
        tokio::spawn(forward_watch(Arc::clone(&store), kind, tx.clone(), board));
    }
    let mut task = Enforcer::new(cfg, store, board, tx);
    task.check_node();
    // status.json says "enabled, revision 0" until the first snapshots are in the kernel.
    task.publish();
    let mut tick = tokio::time::interval(task.cfg.resync);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => {
                if let Some(msg) = msg {
                    task.take(msg);
                }
                while let Ok(msg) = rx.try_recv() {
                    task.take(msg);
                }
            }
            _ = tick.tick() => task.on_tick().await,
            _ = sleep_until(task.confirm_at) => {
                task.confirm_at = None;
                task.start_confirm();
            }
        }
        task.settle().await;
    }
}

/// Feeds one kind's watch into the task, watching again (fresh snapshot) when it ends.
async fn forward_watch(
    store: Arc<dyn Datastore>,
    kind: Kind,
    tx: mpsc::Sender<Msg>,
    board: Arc<StatusBoard>,
) {
    let mut backoff = MIN_BACKOFF;
    let metrics = &board.observe().metrics;
    loop {
        match store.watch(kind.store_kind()).await {
            Ok(mut stream) => {
                backoff = MIN_BACKOFF;
                metrics.set_watch_up(kind.store_kind(), true);
                while let Some(event) = stream.next().await {
                    if tx.send(Msg::Watch(kind, event)).await.is_err() {
                        return;
                    }
                }
                metrics.set_watch_up(kind.store_kind(), false);
                tracing::warn!(kind = kind.store_kind(), "watch ended, watching again");
            }
            Err(e) => tracing::warn!(kind = kind.store_kind(), error = %e, "cannot watch"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Problems by source, for status.json.
#[derive(Debug, Default)]
struct Errors {
    apply: Option<String>,
    socket: Option<String>,
    sysctl: Option<String>,
    store: Option<String>,
}

/// Figures of the last successful apply.
#[derive(Debug, Default, Clone, Copy)]
struct Applied {
    revision: i64,
    at_ms: u64,
    rules: usize,
    sets: usize,
    quarantined: usize,
    local_pods: usize,
}

struct Enforcer {
    cfg: PolicyConfig,
    store: Arc<dyn Datastore>,
    board: Arc<StatusBoard>,
    tx: mpsc::Sender<Msg>,
    state: PolicyState,
    table: PolicyTable,
    /// Claims waiting for the next apply.
    pending: Vec<(Claim, oneshot::Sender<Result<(), String>>)>,
    /// The inventory changed since the last successful apply.
    dirty: bool,
    listening: bool,
    applied: Applied,
    errors: Errors,
    /// When to list the lagging kinds next.
    confirm_at: Option<Instant>,
    /// A listing round is running.
    confirming: bool,
    last_confirm: Option<Instant>,
    confirm_backoff: Duration,
    published: Option<PolicyStatus>,
}

impl Enforcer {
    fn new(
        cfg: PolicyConfig,
        store: Arc<dyn Datastore>,
        board: Arc<StatusBoard>,
        tx: mpsc::Sender<Msg>,
    ) -> Self {
        Enforcer {
            state: PolicyState::new(&cfg.node),
            cfg,
            store,
            board,
            tx,
            table: PolicyTable::default(),
            pending: Vec::new(),
            dirty: true,
            listening: false,
            applied: Applied::default(),
            errors: Errors::default(),
            confirm_at: None,
            confirming: false,
            last_confirm: None,
            confirm_backoff: CONFIRM_INTERVAL,
            published: None,
        }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Watch(kind, event) => self.dirty |= self.state.apply_event(kind, &event),
            Msg::Claim(claim, reply) => self.pending.push((claim, reply)),
            Msg::Listed(listings) => self.on_listed(listings),
        }
    }

    /// Socket and sysctls: things of the node that may need another try.
    fn check_node(&mut self) {
        if !self.listening {
            match socket::bind(&self.cfg.socket) {
                Ok(listener) => {
                    tracing::info!(path = %self.cfg.socket.display(), "policy claim socket listening");
                    tokio::spawn(socket::serve(listener, self.tx.clone()));
                    self.listening = true;
                    self.errors.socket = None;
                }
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "policy claim socket");
                    self.errors.socket = Some(format!("claim socket: {e:#}"));
                }
            }
        }
        self.errors.sysctl = enable_bridge_netfilter();
    }

    async fn on_tick(&mut self) {
        self.check_node();
        if self.table.is_applied() && !apply::table_present().await {
            tracing::warn!("policy table missing, loading it again");
            self.table.forget();
            self.dirty = true;
        }
        self.schedule_confirm();
    }

    /// Applies what changed, answers the waiting claims, and publishes the status.
    async fn settle(&mut self) {
        if !self.state.ready() {
            return;
        }
        let claims = std::mem::take(&mut self.pending);
        let unknown: BTreeSet<String> = claims
            .iter()
            .map(|(c, _)| c.pod_key())
            .filter(|key| !self.state.knows_pod(key))
            .collect();
        self.fetch_pods(unknown).await;
        for (claim, _) in &claims {
            self.state.record_claim(claim.clone());
            self.dirty = true;
        }
        let result = if self.dirty || !self.table.is_applied() {
            self.apply().await
        } else {
            Ok(())
        };
        let metrics = &self.board.observe().metrics;
        for (claim, reply) in claims {
            metrics.count_claim(match &result {
                Err(_) => ClaimResult::Failed,
                Ok(()) if self.state.knows_pod(&claim.pod_key()) => ClaimResult::Applied,
                Ok(()) => ClaimResult::Quarantined,
            });
            // The client may have given up; its pod is programmed all the same.
            let _ = reply.send(result.clone());
        }
        if !self.dirty {
            self.applied.revision = self.applied.revision.max(self.state.synced_revision());
        }
        self.schedule_confirm();
        self.publish();
    }

    /// Claimed pods weftd has not seen: read them directly (concurrently), else their
    /// addresses are quarantined until the watch brings them.
    async fn fetch_pods(&mut self, keys: BTreeSet<String>) {
        let mut reads = tokio::task::JoinSet::new();
        for key in keys {
            let store = Arc::clone(&self.store);
            reads.spawn(async move {
                let kind = Kind::Pods.store_kind();
                let read = tokio::time::timeout(GET_TIMEOUT, store.get(kind, &key)).await;
                (key, read)
            });
        }
        while let Some(joined) = reads.join_next().await {
            let Ok((key, read)) = joined else { continue };
            match read {
                Ok(Ok(Some(entry))) => {
                    self.state.insert_fetched_pod(&entry);
                }
                Ok(Ok(None)) => tracing::warn!(pod = key, "claimed pod unknown: quarantined"),
                Ok(Err(e)) => {
                    tracing::warn!(pod = key, error = %e, "cannot read claimed pod: quarantined");
                }
                Err(_) => tracing::warn!(pod = key, "reading claimed pod timed out: quarantined"),
            }
        }
    }

    /// Plans a listing round for the kinds read less far than the newest event, so the
    /// revision in status.json can move past it.
    fn schedule_confirm(&mut self) {
        if self.confirming || self.confirm_at.is_some() || self.state.lagging().is_empty() {
            return;
        }
        let now = Instant::now();
        let earliest = self.last_confirm.map_or(now, |t| t + self.confirm_backoff);
        self.confirm_at = Some(earliest.max(now));
    }

    /// Lists the lagging kinds on a task of its own: the loop keeps answering claims.
    fn start_confirm(&mut self) {
        let kinds = self.state.lagging();
        if self.confirming || kinds.is_empty() {
            return;
        }
        self.confirming = true;
        self.last_confirm = Some(Instant::now());
        let store = Arc::clone(&self.store);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut listings = Vec::new();
            for kind in kinds {
                let list = tokio::time::timeout(LIST_TIMEOUT, store.list(kind.store_kind())).await;
                let result = match list {
                    Ok(Ok(listing)) => Ok(listing),
                    Ok(Err(e)) => Err(format!("datastore: {e}")),
                    Err(_) => Err("datastore: listing timed out".to_string()),
                };
                let failed = result.is_err();
                listings.push((kind, result));
                if failed {
                    break;
                }
            }
            // Send fails only when the task is gone.
            let _ = tx.send(Msg::Listed(listings)).await;
        });
    }

    fn on_listed(&mut self, listings: Vec<(Kind, Result<Listing, String>)>) {
        self.confirming = false;
        let mut failure = None;
        for (kind, result) in listings {
            match result {
                Ok(listing) => self.dirty |= self.state.apply_listing(kind, &listing),
                Err(e) => {
                    tracing::warn!(error = %e, "confirming the policy revision");
                    failure = Some(e);
                }
            }
        }
        self.confirm_backoff = match failure {
            Some(_) => (self.confirm_backoff * 2).min(MAX_BACKOFF),
            None => CONFIRM_INTERVAL,
        };
        self.errors.store = failure;
    }

    async fn apply(&mut self) -> Result<(), String> {
        let revision = self.state.synced_revision();
        let view = self.state.view();
        let quarantined = view.quarantined.len();
        let local_pods = view.local_pods;
        let node = self.cfg.node.clone();
        // Compiling a big cluster takes tens of milliseconds: not on the async thread,
        // which the routing loop shares.
        let compiled = tokio::task::spawn_blocking(move || {
            compile_with_quarantine(&view.cluster, &node, &view.quarantined)
        })
        .await;
        let ruleset = match compiled {
            Ok(ruleset) => ruleset,
            Err(e) => return Err(self.apply_failed(format!("policy compile task: {e}"))),
        };
        let (rules, sets) = (rule_count(&ruleset), ruleset.sets.len());
        let started = std::time::Instant::now();
        let result = self.table.apply(ruleset).await;
        let mode = match &result {
            Ok(apply::Applied::Elements) => Some(ApplyMode::Delta),
            Ok(apply::Applied::Unchanged) => None,
            Ok(apply::Applied::Table) | Err(_) => Some(ApplyMode::Full),
        };
        if let Some(mode) = mode {
            let seconds = started.elapsed().as_secs_f64();
            let metrics = &self.board.observe().metrics;
            metrics.observe_policy_apply(mode, seconds, result.is_ok());
        }
        match result {
            Ok(how) => {
                if how != apply::Applied::Unchanged {
                    tracing::info!(?how, revision, quarantined, "policy applied");
                }
                self.dirty = false;
                self.errors.apply = None;
                self.applied = Applied {
                    revision: self.applied.revision.max(revision),
                    at_ms: unix_ms(),
                    rules,
                    sets,
                    quarantined,
                    local_pods,
                };
                Ok(())
            }
            Err(e) => Err(self.apply_failed(format!("{e:#}"))),
        }
    }

    fn apply_failed(&mut self, text: String) -> String {
        tracing::error!(error = %text, "policy apply failed");
        self.errors.apply = Some(text.clone());
        text
    }

    fn publish(&mut self) {
        let status = PolicyStatus {
            enabled: true,
            revision: self.applied.revision,
            applied_at_ms: self.applied.at_ms,
            policies: self.state.policy_count(),
            pods: self.applied.local_pods,
            rules: self.applied.rules,
            sets: self.applied.sets,
            quarantined: self.applied.quarantined,
            invalid: self.state.problems().len(),
            error: self.error_summary(),
        };
        if self.published.as_ref() == Some(&status) {
            return;
        }
        match self.board.set_policy(status.clone()) {
            Ok(()) => self.published = Some(status),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot write status"),
        }
    }

    fn error_summary(&self) -> Option<String> {
        let problems = self.state.problems();
        let mut parts: Vec<String> = Vec::new();
        if !problems.is_empty() {
            let shown: Vec<&str> = problems
                .iter()
                .take(PROBLEMS_SHOWN)
                .map(String::as_str)
                .collect();
            let more = problems.len().saturating_sub(PROBLEMS_SHOWN);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            parts.push(format!(
                "{} invalid object(s) skipped: {}{tail}",
                problems.len(),
                shown.join("; ")
            ));
        }
        let errors = &self.errors;
        parts.extend(
            [&errors.apply, &errors.socket, &errors.sysctl, &errors.store]
                .into_iter()
                .flatten()
                .cloned(),
        );
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

fn rule_count(ruleset: &Ruleset) -> usize {
    ruleset.chains.iter().map(|c| c.rules.len()).sum()
}

/// Sets the br_netfilter switches in weftd's own namespace; the problem, if any.
fn enable_bridge_netfilter() -> Option<String> {
    let mut problems = Vec::new();
    for key in BRIDGE_NF {
        if read_sysctl(None, key).is_ok_and(|v| v == "1") {
            continue;
        }
        match write_sysctl(None, key, "1") {
            Ok(()) => tracing::info!(key, "enabled br_netfilter for same-node pod traffic"),
            Err(e) => problems.push(format!("{key}: {e}")),
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "same-node pod traffic is not filtered: {}",
            problems.join(", ")
        )
    })
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
