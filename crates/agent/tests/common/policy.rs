//! NetworkPolicy test kit: Kubernetes objects written to the cluster's embedded store,
//! claims sent on a node's socket, the policy table read back, pod-to-pod pings.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use weft_datapath::{NetnsFd, run_in_netns};
use weft_store::{
    Condition, Datastore, EmbeddedStore, EtcdOptions, EtcdStore, PutOptions, PutOutcome,
    StoreError, StoreFuture,
};

use super::{Cluster, Node, poll};

/// The cluster's store (embedded, or etcd reached from inside the fabric namespace) plus
/// a runtime to drive it from a test thread.
pub struct Store {
    rt: tokio::runtime::Runtime,
    store: Box<dyn Datastore>,
    /// Where every request runs (etcd listens inside the fabric namespace).
    ns: Option<NetnsFd>,
}

impl Store {
    pub fn open(c: &Cluster) -> Store {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        match &c.etcd {
            None => Store {
                rt,
                store: Box::new(EmbeddedStore::open(c.store_dir()).unwrap()),
                ns: None,
            },
            Some(url) => {
                let endpoints = vec![url.clone()];
                let connect = EtcdStore::connect(&endpoints, EtcdOptions::default());
                let fabric = NetnsFd::open(c.fabric.path()).unwrap();
                let etcd = run_in_netns(&fabric, || rt.block_on(connect))
                    .unwrap()
                    .unwrap();
                Store {
                    rt,
                    store: Box::new(etcd),
                    ns: Some(fabric),
                }
            }
        }
    }

    fn block<T: Send>(&self, request: StoreFuture<'_, T>) -> Result<T, StoreError> {
        match &self.ns {
            Some(ns) => run_in_netns(ns, || self.rt.block_on(request)).unwrap(),
            None => self.rt.block_on(request),
        }
    }

    /// Writes an object; returns the store revision of the write.
    pub fn put(&self, kind: &str, key: &str, value: &Value) -> i64 {
        let out = self
            .block(self.store.put(kind, key, value, PutOptions::default()))
            .unwrap();
        match out {
            PutOutcome::Written { revision } => revision,
            PutOutcome::Conflict { .. } => panic!("unconditional put conflicted"),
        }
    }

    /// Deletes an object; returns a store revision at or after the deletion.
    pub fn delete(&self, kind: &str, key: &str) -> i64 {
        assert!(
            self.block(self.store.delete(kind, key, Condition::Always))
                .unwrap(),
            "{kind} {key} was not there"
        );
        self.block(self.store.list(kind)).unwrap().revision
    }

    pub fn namespace(&self, name: &str, labels: Value) -> i64 {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": name, "labels": labels}});
        self.put("namespaces", name, &ns)
    }

    /// A pod object as the API server has it (no IPs until `ips` is given).
    pub fn pod(&self, ns: &str, name: &str, node: &str, labels: Value, ips: &[&str]) -> i64 {
        let pod_ips: Vec<Value> = ips.iter().map(|ip| json!({ "ip": ip })).collect();
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "none"}]}});
        if !ips.is_empty() {
            pod["status"] = json!({ "podIP": ips[0], "podIPs": pod_ips });
        }
        self.put("pods", &format!("{ns}/{name}"), &pod)
    }

    pub fn policy(&self, ns: &str, name: &str, spec: Value) -> i64 {
        let p = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": name, "namespace": ns}, "spec": spec});
        self.put("networkpolicies", &format!("{ns}/{name}"), &p)
    }
}

impl Cluster {
    /// Waits until every node's status says its policy table reflects `revision`.
    pub fn wait_policy_revision(&self, revision: i64) {
        for (i, node) in self.nodes.iter().enumerate() {
            let ok = poll(Duration::from_secs(10), || {
                node.status()
                    .and_then(|s| s["policy"]["revision"].as_i64())
                    .is_some_and(|r| r >= revision)
            });
            assert!(
                ok,
                "{}: policy revision never reached {revision}: {:?}\nlog:\n{}",
                node.name,
                node.status().map(|s| s["policy"].clone()),
                self.log(i)
            );
        }
    }

    /// Does a ping from pod `from` (index in `pods`) reach `target`?
    pub fn pod_ping(&self, from: usize, target: &str, count: u32) -> bool {
        let c = count.to_string();
        self.pods[from]
            .exec(Command::new("ping").args(["-c", &c, "-i", "0.2", "-W", "1", target]))
            .unwrap()
            .status
            .success()
    }
}

impl Node {
    /// `nft list <what> inet weft_policy [name]` in the node namespace, or the error.
    pub fn nft_list(&self, what: &str, name: Option<&str>) -> Result<String, String> {
        let mut args = vec!["nft", "list", what, "inet", "weft_policy"];
        args.extend(name);
        let out = self.exec(&args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn quarantine4(&self) -> String {
        self.nft_list("set", Some("wp_quarantine4")).unwrap()
    }

    pub fn socket_path(&self) -> std::path::PathBuf {
        self.dir.join("run/policy.sock")
    }

    /// Sends one request line on the node's claim socket and returns the answer.
    pub fn claim_raw(&self, line: &str) -> Value {
        let mut stream = UnixStream::connect(self.socket_path()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        stream.write_all(line.as_bytes()).unwrap();
        stream.write_all(b"\n").unwrap();
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer:?}: {e}"))
    }

    pub fn claim(&self, ns: &str, name: &str, ips: &[&str]) -> Value {
        let req = json!({"op": "claim", "namespace": ns, "name": name,
                         "containerId": format!("c-{name}"), "ips": ips});
        self.claim_raw(&req.to_string())
    }

    pub fn policy_status(&self) -> Value {
        self.status()
            .map(|s| s["policy"].clone())
            .unwrap_or(Value::Null)
    }
}
