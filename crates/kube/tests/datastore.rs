//! The kubernetes datastore against a fake API server replaying recorded responses, through
//! kube-rs's real client and watcher.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers may fail loudly

mod fake_api;

use std::time::Duration;

use fake_api::{End, FakeApi, Reply};
use serde_json::{Value, json};
use weft_cluster::NodeRecord;
use weft_kube::{BackoffConfig, KubeOptions, KubeStore};
use weft_store::{
    Condition, Datastore, PutOptions, PutOutcome, StoreError, WatchEvent, WatchStream,
};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fast_backoff() -> KubeOptions {
    KubeOptions {
        backoff: BackoffConfig {
            min: Duration::from_millis(50),
            max: Duration::from_millis(400),
            quiet: Duration::from_secs(60),
        },
        ..KubeOptions::default()
    }
}

fn store(api: &FakeApi) -> KubeStore {
    KubeStore::new(api.client(), fast_backoff())
}

async fn next(watch: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(15), watch.next())
        .await
        .expect("no watch event within 15 s")
        .expect("watch stream ended")
}

fn keys(event: &WatchEvent) -> Vec<String> {
    match event {
        WatchEvent::Snapshot(l) => l.entries.iter().map(|e| e.key.clone()).collect(),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

fn record(value: &Value) -> NodeRecord {
    serde_json::from_value(value.clone()).unwrap()
}

#[tokio::test]
async fn nodes_snapshot_changes_resume_and_relist_after_gone() {
    let api = FakeApi::start().await;
    let nodes = "/api/v1/nodes";
    let lists = vec![
        Reply::ok(fixture("nodes-list-1.json")),
        Reply::ok(fixture("nodes-list-2.json")),
    ];
    api.route("GET", nodes, false, lists);
    let watches = vec![
        Reply::watch(&fixture("nodes-watch-1.jsonl"), End::Drop),
        Reply::watch(&fixture("nodes-watch-2.jsonl"), End::Close),
        Reply::watch("", End::Hang),
    ];
    api.route("GET", nodes, true, watches);
    let store = store(&api);
    let mut watch = store.watch("nodes").await.unwrap();

    let first = next(&mut watch).await;
    assert_eq!(keys(&first), ["node-a", "node-b"]);
    let WatchEvent::Snapshot(listing) = &first else {
        unreachable!()
    };
    let a = record(&listing.entries[0].value);
    assert_eq!(a.underlay_ip.to_string(), "198.18.0.11");
    assert_eq!(a.underlay_secondary.unwrap().to_string(), "2001:2::11/128");
    assert_eq!(a.subnets.len(), 2);
    assert_eq!(listing.entries[1].mod_revision, 950);
    assert!(record(&listing.entries[1].value).vxlan_mac.is_none());

    // MODIFIED with weft's annotations; the heartbeat-only MODIFIED after it is no change.
    let WatchEvent::Put(b) = next(&mut watch).await else {
        panic!("expected put")
    };
    assert_eq!((b.key.as_str(), b.mod_revision), ("node-b", 1010));
    let b = record(&b.value);
    assert_eq!(b.vxlan_mac.unwrap().to_string(), "02:aa:bb:cc:00:0b");
    assert_eq!(b.underlay_prefix_len, Some(24));

    // The connection dropped mid-event: resumed from the bookmark, no relist.
    let WatchEvent::Put(c) = next(&mut watch).await else {
        panic!("expected put")
    };
    assert_eq!(c.key, "node-c");
    assert!(record(&c.value).subnets.is_empty(), "no podCIDRs yet");
    assert_eq!(
        next(&mut watch).await,
        WatchEvent::Delete {
            key: "node-b".into(),
            revision: 1110
        }
    );

    // 410 Gone: relisted, fresh snapshot, newer than everything seen before.
    let again = next(&mut watch).await;
    assert_eq!(keys(&again), ["node-a", "node-c"]);
    let WatchEvent::Snapshot(relisted) = &again else {
        unreachable!()
    };
    assert!(relisted.revision > 1110, "{}", relisted.revision);
    assert_eq!(record(&relisted.entries[1].value).subnets.len(), 1);

    // list is served by the informer; a second watcher starts at the current state.
    assert_eq!(store.list("nodes").await.unwrap(), relisted.clone());
    let mut second = store.watch("nodes").await.unwrap();
    assert_eq!(next(&mut second).await, again);

    // One informer for both watchers, and the open watch causes no further lists.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.count("GET", nodes, false), 2);
    let watch_rvs: Vec<String> = api
        .requests()
        .iter()
        .filter(|r| r.path == nodes && r.is_watch())
        .map(|r| r.param("resourceVersion").unwrap_or_default().to_string())
        .collect();
    assert_eq!(watch_rvs, ["1000", "1050", "1300"]);
}

#[tokio::test]
async fn pods_are_watched_cluster_wide_and_readable_by_policy() {
    let api = FakeApi::start().await;
    let pods = "/api/v1/pods";
    api.route(
        "GET",
        pods,
        false,
        vec![Reply::ok(fixture("pods-list.json"))],
    );
    let watch_reply = Reply::watch(&fixture("pods-watch.jsonl"), End::Hang);
    api.route("GET", pods, true, vec![watch_reply]);
    let web = "/api/v1/namespaces/shop/pods/web-7d9f8-abcde";
    api.route("GET", web, false, vec![Reply::ok(fixture("pod-web.json"))]);
    let store = store(&api);
    let mut watch = store.watch("pods").await.unwrap();

    let snapshot = next(&mut watch).await;
    assert_eq!(
        keys(&snapshot),
        ["shop/db-5c6b7-fghij", "shop/web-7d9f8-abcde"]
    );
    let WatchEvent::Snapshot(listing) = &snapshot else {
        unreachable!()
    };
    let pod = weft_policy::k8s::pod_from_object(&listing.entries[1].key, &listing.entries[1].value)
        .unwrap();
    assert_eq!(pod.node, "node-a");
    assert_eq!(pod.ips[0].to_string(), "10.244.1.5");
    assert_eq!(
        pod.resolve_named_port("http", &weft_policy::model::Protocol::Tcp),
        Some(8080)
    );
    assert!(listing.entries[1].value["spec"].get("volumes").is_none());

    // A status-only change is not an event; the label change is.
    let WatchEvent::Put(web_pod) = next(&mut watch).await else {
        panic!("expected put")
    };
    assert_eq!(web_pod.mod_revision, 2120);
    assert_eq!(web_pod.value["metadata"]["labels"]["tier"], "front");
    let WatchEvent::Put(pending) = next(&mut watch).await else {
        panic!("expected put")
    };
    assert_eq!(pending.key, "shop/api-6f5d4-klmno");
    assert!(
        weft_policy::k8s::pod_from_object(&pending.key, &pending.value)
            .unwrap()
            .ips
            .is_empty()
    );
    assert_eq!(
        next(&mut watch).await,
        WatchEvent::Delete {
            key: "shop/db-5c6b7-fghij".into(),
            revision: 2140
        }
    );

    // get asks the API server directly (a pod the watch has not delivered yet).
    let got = store.get("pods", "shop/web-7d9f8-abcde").await.unwrap();
    assert_eq!(got.unwrap().value, web_pod.value);
    assert_eq!(store.get("pods", "shop/nope").await.unwrap(), None);
    assert!(store.get("pods", "no-namespace").await.is_err());
}

#[tokio::test]
async fn namespaces_and_policies_list_before_and_after_sync() {
    let api = FakeApi::start().await;
    let namespaces = "/api/v1/namespaces";
    let policies = "/apis/networking.k8s.io/v1/networkpolicies";
    for (path, list) in [
        (namespaces, "namespaces-list.json"),
        (policies, "networkpolicies-list.json"),
    ] {
        api.route("GET", path, false, vec![Reply::ok(fixture(list))]);
        api.route("GET", path, true, vec![Reply::watch("", End::Hang)]);
    }
    let store = store(&api);

    let ns = store.list("namespaces").await.unwrap();
    let names: Vec<&str> = ns.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(names, ["default", "shop"]);
    assert_eq!(ns.entries[1].value["metadata"]["labels"]["team"], "shop");
    let shop = weft_policy::k8s::namespace_from_object("shop", &ns.entries[1].value).unwrap();
    assert_eq!(shop.name, "shop");

    let mut watch = store.watch("networkpolicies").await.unwrap();
    let snapshot = next(&mut watch).await;
    assert_eq!(keys(&snapshot), ["shop/db-from-web"]);
    let WatchEvent::Snapshot(listing) = snapshot else {
        unreachable!()
    };
    let entry = &listing.entries[0];
    assert!(entry.value["metadata"].get("annotations").is_none());
    weft_policy::k8s::policy_from_object(&entry.key, &entry.value).unwrap();
    // Synced now: list comes from the informer, not another LIST request.
    let lists = api.count("GET", policies, false);
    assert_eq!(store.list("networkpolicies").await.unwrap(), listing);
    assert_eq!(api.count("GET", policies, false), lists);

    assert!(store.list("subnets").await.is_err());
}

#[tokio::test]
async fn put_node_applies_only_weft_annotations() {
    let api = FakeApi::start().await;
    let node_b = "/api/v1/nodes/node-b";
    api.route(
        "PATCH",
        node_b,
        false,
        vec![Reply::ok(fixture("node-b.json"))],
    );
    api.route(
        "GET",
        node_b,
        false,
        vec![Reply::ok(fixture("node-b.json"))],
    );
    api.route(
        "GET",
        "/api/v1/nodes/node-c",
        false,
        vec![Reply::ok(fixture("node-c.json"))],
    );
    let store = store(&api);

    let mut record = NodeRecord::new("node-b", "198.18.0.12".parse().unwrap());
    record.underlay_prefix_len = Some(24);
    record.vxlan_mac = Some("02:aa:bb:cc:00:0b".parse().unwrap());
    record.subnets = vec!["10.244.2.0/24".parse().unwrap()];
    let value = serde_json::to_value(&record).unwrap();
    let outcome = store
        .put("nodes", "node-b", &value, PutOptions::default())
        .await
        .unwrap();
    assert_eq!(outcome, PutOutcome::Written { revision: 1010 });

    let patch = api.requests().pop().unwrap();
    assert_eq!(patch.method, "PATCH");
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(patch.param("fieldManager"), Some("weftd"));
    assert_eq!(patch.param("force"), Some("true"));
    let body: Value = serde_json::from_str(&patch.body).unwrap();
    assert_eq!(
        body,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-b",
            "annotations": {"weft.dev/vxlan-mac": "02:aa:bb:cc:00:0b",
                            "weft.dev/underlay": "198.18.0.12/24"}}})
    );

    // Writes Kubernetes owns are refused; a record under another name too.
    let mut wrong = record.clone();
    wrong.name = "node-x".into();
    let wrong = serde_json::to_value(&wrong).unwrap();
    assert!(
        store
            .put("nodes", "node-b", &wrong, PutOptions::default())
            .await
            .is_err()
    );
    let cas = PutOptions {
        condition: Condition::Absent,
        ..PutOptions::default()
    };
    assert!(store.put("nodes", "node-b", &value, cas).await.is_err());
    let refused = store
        .put("pods", "x/a", &json!({}), PutOptions::default())
        .await;
    assert!(matches!(refused, Err(StoreError::Unsupported { .. })));

    // Delete removes weft's annotations (an apply with none), only where there are some.
    assert!(
        store
            .delete("nodes", "node-b", Condition::Always)
            .await
            .unwrap()
    );
    let removal = api.requests().pop().unwrap();
    assert_eq!(removal.method, "PATCH");
    let body: Value = serde_json::from_str(&removal.body).unwrap();
    assert_eq!(body["metadata"]["annotations"], json!({}));
    let patches = api.count("PATCH", node_b, false);
    assert!(
        !store
            .delete("nodes", "node-c", Condition::Always)
            .await
            .unwrap()
    );
    assert_eq!(api.count("PATCH", node_b, false), patches);
    assert_eq!(api.count("PATCH", "/api/v1/nodes/node-c", false), 0);
}

#[tokio::test]
async fn assigned_subnets_are_the_pod_cidrs_and_leases_are_no_ops() {
    let api = FakeApi::start().await;
    api.route(
        "GET",
        "/api/v1/nodes/node-a",
        false,
        vec![Reply::ok(fixture("node-a.json"))],
    );
    api.route(
        "GET",
        "/api/v1/nodes/node-c",
        false,
        vec![Reply::ok(fixture("node-c.json"))],
    );
    api.route(
        "GET",
        "/api/v1/nodes/node-x",
        false,
        vec![Reply::not_found("nodes", "node-x")],
    );
    let store = store(&api);

    let subnets = store.assigned_subnets("node-a").await.unwrap().unwrap();
    let texts: Vec<String> = subnets.iter().map(ToString::to_string).collect();
    assert_eq!(texts, ["10.244.1.0/24", "fd00:10:244:1::/64"]);
    let err = store.assigned_subnets("node-c").await.unwrap_err();
    assert!(err.to_string().contains("no podCIDRs yet"), "{err}");
    let err = store.assigned_subnets("node-x").await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");

    let lease = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    assert!(store.keep_alive(lease).await.unwrap() >= Duration::from_secs(30));
    store.revoke_lease(lease).await.unwrap();
    assert!(
        api.requests().len() == 3,
        "leases talk to nobody: {:?}",
        api.requests()
    );
}

#[tokio::test]
async fn open_reads_a_kubeconfig() {
    let api = FakeApi::start().await;
    api.route(
        "GET",
        "/api/v1/namespaces",
        false,
        vec![Reply::ok(fixture("namespaces-list.json"))],
    );
    api.route(
        "GET",
        "/api/v1/namespaces",
        true,
        vec![Reply::watch("", End::Hang)],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: lab\n\
         clusters:\n- name: lab\n  cluster:\n    server: {}\n\
         contexts:\n- name: lab\n  context:\n    cluster: lab\n    user: weftd\n\
         users:\n- name: weftd\n  user:\n    token: not-a-secret\n",
        api.url()
    );
    std::fs::write(&path, kubeconfig).unwrap();
    let store = weft_kube::open(Some(&path)).await.unwrap();
    assert_eq!(store.list("namespaces").await.unwrap().entries.len(), 2);
    assert!(
        weft_kube::open(Some(&dir.path().join("missing")))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_watch_that_is_always_gone_does_not_cause_a_relist_storm() {
    let api = FakeApi::start().await;
    let nodes = "/api/v1/nodes";
    api.route(
        "GET",
        nodes,
        false,
        vec![Reply::ok(fixture("nodes-list-1.json"))],
    );
    let gone = r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1000 (1200)","reason":"Expired","code":410}}"#;
    api.route("GET", nodes, true, vec![Reply::watch(gone, End::Close)]);
    let store = store(&api);
    let mut watch = store.watch("nodes").await.unwrap();
    assert_eq!(keys(&next(&mut watch).await), ["node-a", "node-b"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // 50 ms doubling to 400 ms (jittered down to 75 %) fits at most 8 relists in 1.5 s;
    // resetting after each successful relist would have made about 30.
    let lists = api.count("GET", nodes, false);
    assert!((3..=8).contains(&lists), "{lists} lists in 1.5 s");
    // Every relist is a fresh snapshot to the consumer.
    let mut snapshots = 1;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(100), watch.next()).await
    {
        assert!(matches!(event, WatchEvent::Snapshot(_)), "{event:?}");
        snapshots += 1;
    }
    assert!(
        snapshots >= lists - 1,
        "{snapshots} snapshots for {lists} lists"
    );
}
