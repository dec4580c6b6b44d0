//! etcd store against a real etcd 3.4 started by the test on loopback ports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers may fail loudly

mod common;
mod etcd_guard;

use std::time::{Duration, Instant};

use etcd_guard::EtcdGuard;
use serde_json::json;
use weft_store::subnets;
use weft_store::{Datastore, EtcdOptions, EtcdStore, PutOptions, StoreError, WatchEvent};

/// etcd's minimum lease TTL with default timing is about 1.5 s; 2 s keeps tests honest.
const TTL: Duration = Duration::from_secs(2);

async fn connect(etcd: &EtcdGuard) -> EtcdStore {
    let opts = EtcdOptions {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..EtcdOptions::default()
    };
    EtcdStore::connect(&[etcd.endpoint()], opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_conditions_and_leases() {
    let etcd = EtcdGuard::start();
    common::kv_conditions_and_leases(&connect(&etcd).await, TTL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_put_delete_and_expiry() {
    let etcd = EtcdGuard::start();
    common::watch_sees_put_delete_and_expiry(&connect(&etcd).await, TTL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_stable_and_survive_restart() {
    let etcd = EtcdGuard::start();
    common::claims_are_stable_and_survive_restart(&connect(&etcd).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_bring_back_old_subnets() {
    let etcd = EtcdGuard::start();
    common::hints_bring_back_old_subnets(&connect(&etcd).await).await;
}

/// An idle watch outlives the request timeout: the next change arrives as a Put, not as
/// the Snapshot a silently re-established watch would send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watch_stays_established() {
    let etcd = EtcdGuard::start();
    let store = connect(&etcd).await;
    let mut w = store.watch("nodes").await.unwrap();
    assert!(matches!(
        common::next_event(&mut w).await,
        WatchEvent::Snapshot(_)
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    store
        .put("nodes", "late", &json!(1), PutOptions::default())
        .await
        .unwrap();
    match common::next_event(&mut w).await {
        WatchEvent::Put(e) => assert_eq!(e.key, "late"),
        other => panic!("watch was re-established while idle: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_keeps_and_expiry_frees() {
    let etcd = EtcdGuard::start();
    common::keep_alive_keeps_and_expiry_frees(&connect(&etcd).await, TTL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_race_for_subnets_without_overlap() {
    let etcd = EtcdGuard::start();
    let (a, b) = (connect(&etcd).await, connect(&etcd).await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            common::claim_one(&store, &format!("n{i}")).await
        }));
    }
    let mut exhausted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => {}
            Err(StoreError::Carve(_)) => exhausted += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(exhausted, 4);
    common::assert_no_overlap(&a, 16).await;
}

/// Retries `op` until it succeeds or `within` passes.
async fn eventually<T, F, Fut>(within: Duration, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + within;
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("still failing after {within:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_recovers_after_etcd_restart() {
    let mut etcd = EtcdGuard::start();
    let store = connect(&etcd).await;
    let lease = store.grant_lease(Duration::from_secs(10)).await.unwrap();
    let cfg = common::cluster_cfg();
    let mine = subnets::claim_node_subnets(&store, &cfg, "n1", lease)
        .await
        .unwrap();
    let mut watch = store.watch("nodes").await.unwrap();
    assert!(
        matches!(common::next_event(&mut watch).await, WatchEvent::Snapshot(l) if l.entries.is_empty())
    );

    etcd.stop();
    let down = tokio::time::timeout(Duration::from_secs(10), store.list("nodes")).await;
    assert!(matches!(down, Ok(Err(StoreError::Etcd(_)))), "{down:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    etcd.restart();

    // The same client works again, the lease survived, and so did the claim.
    eventually(Duration::from_secs(15), || store.keep_alive(lease)).await;
    let again = subnets::claim_node_subnets(&store, &cfg, "n1", lease)
        .await
        .unwrap();
    assert_eq!(again, mine);
    // The watch resynced by itself: a fresh snapshot, then live events again.
    store
        .put("nodes", "n2", &json!({"name": "n2"}), PutOptions::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut saw_snapshot = false;
    loop {
        assert!(Instant::now() < deadline, "no event for n2 after restart");
        match common::next_event(&mut watch).await {
            WatchEvent::Snapshot(l) => {
                saw_snapshot = true;
                if l.entries.iter().any(|e| e.key == "n2") {
                    break;
                }
            }
            WatchEvent::Put(e) if e.key == "n2" => break,
            _ => {}
        }
    }
    assert!(
        saw_snapshot,
        "watch must resync with a snapshot after the outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_can_start_before_etcd() {
    let mut etcd = EtcdGuard::start();
    etcd.stop();
    let store = connect(&etcd).await;
    assert!(store.list("nodes").await.is_err());
    etcd.restart();
    let listing = eventually(Duration::from_secs(15), || store.list("nodes")).await;
    assert!(listing.entries.is_empty());
}
