//! `status.json` has two writers: the routing loop (every resync) and the policy task
//! (after every policy apply). Each keeps its own part here; every update rewrites the
//! whole file from both parts, under one lock, so neither overwrites the other's news and
//! the temporary file of one write is never reused by a concurrent one.

use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use serde::Serialize;
use weft_observe::Observe;

use crate::files::{Paths, Status};

/// The `policy` section of status.json (policy contract).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// Whether weftd enforces NetworkPolicy (`--network-policy`).
    pub enabled: bool,
    /// Highest datastore revision of the watched kinds whose effect is in the kernel.
    pub revision: i64,
    /// Unix time (milliseconds) of the last successful apply.
    pub applied_at_ms: u64,
    /// Valid NetworkPolicy objects compiled.
    pub policies: usize,
    /// Pods on this node (claimed or by `spec.nodeName`).
    pub pods: usize,
    /// Rules in the group chains of the applied table.
    pub rules: usize,
    /// Sets in the applied table.
    pub sets: usize,
    /// Addresses quarantined (claimed by pods not known yet).
    pub quarantined: usize,
    /// Objects skipped because they could not be read (invalid policies, malformed pods).
    pub invalid: usize,
    /// What is wrong, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct Parts {
    routing: Option<Status>,
    policy: Option<PolicyStatus>,
}

/// The shared writer of status.json.
#[derive(Debug)]
pub struct StatusBoard {
    paths: Paths,
    parts: Mutex<Parts>,
    observe: Arc<Observe>,
}

impl StatusBoard {
    /// A board writing into `paths.run_dir` and reporting to `observe`.
    pub fn new(paths: Paths, observe: Arc<Observe>) -> Self {
        StatusBoard {
            paths,
            parts: Mutex::new(Parts::default()),
            observe,
        }
    }

    /// Metrics and health, for the parts of weftd that measure themselves.
    pub fn observe(&self) -> &Observe {
        &self.observe
    }

    /// Replaces the routing part and rewrites the file.
    pub fn set_routing(&self, status: Status) -> Result<()> {
        let mut parts = self.lock()?;
        self.observe.metrics.set_peers(status.peers);
        self.observe.health.beat();
        parts.routing = Some(status);
        self.update_readiness(&parts);
        self.write(&parts)
    }

    /// Replaces the policy part and rewrites the file (once the routing part exists: the
    /// node's identity fields come from it).
    pub fn set_policy(&self, policy: PolicyStatus) -> Result<()> {
        let mut parts = self.lock()?;
        let metrics = &self.observe.metrics;
        metrics.set_policy_table(policy.rules, policy.sets);
        metrics.set_policy_objects("networkpolicies", policy.policies);
        metrics.set_policy_objects("local-pods", policy.pods);
        metrics.set_policy_invalid(policy.invalid);
        parts.policy = Some(policy);
        self.update_readiness(&parts);
        self.write(&parts)
    }

    /// Ready once the node is programmed and, with NetworkPolicy on, the first ruleset is
    /// in the kernel: before that a new pod's ADD would wait on the claim socket.
    fn update_readiness(&self, parts: &Parts) {
        let ready = match (&parts.routing, &parts.policy) {
            (None, _) => Err("not programmed yet".to_string()),
            (Some(r), _) if !r.healthy => Err(r
                .error
                .clone()
                .unwrap_or_else(|| "node not programmed yet".to_string())),
            (Some(_), Some(p)) if p.enabled && p.applied_at_ms == 0 => {
                Err("NetworkPolicy not applied yet".to_string())
            }
            _ => Ok(()),
        };
        self.observe.health.set_ready(ready);
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Parts>> {
        self.parts
            .lock()
            .map_err(|_| anyhow!("status lock poisoned"))
    }

    fn write(&self, parts: &Parts) -> Result<()> {
        let Some(routing) = &parts.routing else {
            return Ok(());
        };
        let mut status = routing.clone();
        status.policy.clone_from(&parts.policy);
        self.paths.write_status(&status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing() -> Status {
        Status {
            node: "n1".into(),
            pid: 1,
            healthy: true,
            last_reconcile: 2,
            subnets: vec!["10.244.1.0/24".parse().unwrap()],
            peers: 0,
            underlay_ip: "198.18.0.10".parse().unwrap(),
            backend: weft_cluster::Backend::default(),
            error: None,
            policy: None,
        }
    }

    #[test]
    fn both_parts_end_up_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let observe = Arc::new(Observe {
            metrics: weft_observe::Metrics::new(),
            health: weft_observe::Health::new(std::time::Duration::from_secs(60)),
        });
        let board = StatusBoard::new(
            Paths {
                run_dir: dir.path().to_path_buf(),
                cni_conf_dir: dir.path().join("net.d"),
                ipam_data_dir: dir.path().join("ipam"),
                policy_socket: None,
            },
            Arc::clone(&observe),
        );
        let file = dir.path().join(crate::files::STATUS_JSON);
        let policy = PolicyStatus {
            enabled: true,
            revision: 7,
            ..PolicyStatus::default()
        };
        board.set_policy(policy.clone()).unwrap();
        assert!(!file.exists(), "no identity yet");
        board.set_routing(routing()).unwrap();
        let read = || -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
        };
        assert_eq!(read()["policy"]["revision"], 7);
        assert_eq!(read()["policy"]["appliedAtMs"], 0);
        assert!(read()["policy"].get("error").is_none());
        board
            .set_policy(PolicyStatus {
                revision: 9,
                error: Some("x/p: bad".into()),
                ..policy
            })
            .unwrap();
        assert_eq!(read()["policy"]["revision"], 9);
        assert_eq!(read()["policy"]["error"], "x/p: bad");
        assert_eq!(read()["healthy"], true);
        assert_eq!(
            observe.health.ready(),
            Err("NetworkPolicy not applied yet".to_string())
        );
        board
            .set_policy(PolicyStatus {
                applied_at_ms: 1,
                ..PolicyStatus::default()
            })
            .unwrap();
        assert!(observe.health.ready().is_ok());
        assert!(observe.metrics.render().contains("weft_peers 0"));
    }
}
