//! Datastore contract tests shared by the embedded and etcd suites.
#![allow(dead_code)] // each suite uses a subset

use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde_json::json;
use weft_cluster::{Backend, ClusterConfig, NodeRecord};
use weft_store::subnets::{self, KIND_SUBNETS};
use weft_store::{
    Condition, Datastore, PutOptions, PutOutcome, StoreError, WatchEvent, WatchStream,
};

pub fn cluster_cfg() -> ClusterConfig {
    ClusterConfig {
        cluster_cidrs: vec![
            "10.244.0.0/20".parse().unwrap(),
            "fd00:10:244::/60".parse().unwrap(),
        ],
        node_prefix_v4: 24,
        node_prefix_v6: 64,
        backend: Backend::default(),
        mtu: None,
    }
}

/// Grants a long lease and claims subnets for `node`.
pub async fn claim_one(store: &dyn Datastore, node: &str) -> Result<Vec<IpNet>, StoreError> {
    let lease = store.grant_lease(Duration::from_secs(60)).await?;
    subnets::claim_node_subnets(store, &cluster_cfg(), node, lease).await
}

pub async fn assert_no_overlap(store: &dyn Datastore, nodes: usize) {
    let leases = subnets::list_subnet_leases(store).await.unwrap();
    // One v4 and one v6 subnet per node that got a v4 subnet (v6 claims come second).
    let v4: Vec<_> = leases
        .iter()
        .filter(|l| l.lease.subnet.addr().is_ipv4())
        .collect();
    assert_eq!(v4.len(), nodes, "{leases:?}");
    for (i, a) in leases.iter().enumerate() {
        for b in leases.iter().skip(i + 1) {
            let (x, y) = (a.lease.subnet, b.lease.subnet);
            assert!(
                !(x.contains(&y.network()) || y.contains(&x.network())),
                "{x} overlaps {y}"
            );
        }
    }
    let mut names: Vec<_> = v4.iter().map(|l| l.lease.node.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), nodes, "a node holds two v4 subnets");
}

pub async fn next_event(w: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("watch event within 10 s")
        .expect("watch stream open")
}

pub async fn kv_conditions_and_leases(store: &dyn Datastore, ttl: Duration) {
    let v1 = json!({"a": 1});
    let v2 = json!({"a": 2});
    let created = store
        .put(
            "pods",
            "default/web-0",
            &v1,
            PutOptions {
                lease: None,
                condition: Condition::Absent,
            },
        )
        .await
        .unwrap();
    let PutOutcome::Written { revision } = created else {
        panic!("{created:?}")
    };
    let again = store
        .put(
            "pods",
            "default/web-0",
            &v2,
            PutOptions {
                lease: None,
                condition: Condition::Absent,
            },
        )
        .await
        .unwrap();
    match again {
        PutOutcome::Conflict { current: Some(e) } => {
            assert_eq!(e.value, v1);
            assert_eq!(e.mod_revision, revision);
        }
        other => panic!("{other:?}"),
    }
    // Stale revision loses, current one wins.
    let stale = PutOptions {
        lease: None,
        condition: Condition::ModRevision(revision - 1),
    };
    assert!(matches!(
        store
            .put("pods", "default/web-0", &v2, stale)
            .await
            .unwrap(),
        PutOutcome::Conflict { .. }
    ));
    let fresh = PutOptions {
        lease: None,
        condition: Condition::ModRevision(revision),
    };
    assert!(matches!(
        store
            .put("pods", "default/web-0", &v2, fresh)
            .await
            .unwrap(),
        PutOutcome::Written { .. }
    ));
    let got = store.get("pods", "default/web-0").await.unwrap().unwrap();
    assert_eq!(got.value, v2);
    assert_eq!(got.create_revision, revision);
    assert!(got.mod_revision > revision);

    store
        .put("pods", "default/web-1", &v1, PutOptions::default())
        .await
        .unwrap();
    store
        .put("namespaces", "default", &v1, PutOptions::default())
        .await
        .unwrap();
    let keys: Vec<String> = store
        .list("pods")
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["default/web-0", "default/web-1"]);

    assert!(
        !store
            .delete("pods", "default/web-1", Condition::ModRevision(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .delete("pods", "default/web-1", Condition::Always)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete("pods", "default/web-1", Condition::Always)
            .await
            .unwrap()
    );
    assert!(store.get("pods", "default/web-1").await.unwrap().is_none());

    // Objects on a revoked lease vanish.
    let lease = store.grant_lease(ttl).await.unwrap();
    store
        .put(
            "pods",
            "leased",
            &v1,
            PutOptions {
                lease: Some(lease),
                condition: Condition::Always,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.get("pods", "leased").await.unwrap().unwrap().lease,
        Some(lease)
    );
    store.revoke_lease(lease).await.unwrap();
    assert!(store.get("pods", "leased").await.unwrap().is_none());
    store.revoke_lease(lease).await.unwrap();
    let ka = store.keep_alive(lease).await;
    assert!(matches!(ka, Err(StoreError::LeaseNotFound(_))), "{ka:?}");
}

pub async fn watch_sees_put_delete_and_expiry(store: &dyn Datastore, ttl: Duration) {
    store
        .put("policies", "pre", &json!(0), PutOptions::default())
        .await
        .unwrap();
    let mut w = store.watch("policies").await.unwrap();
    match next_event(&mut w).await {
        WatchEvent::Snapshot(l) => {
            assert_eq!(l.entries.len(), 1);
            assert_eq!(l.entries[0].key, "pre");
        }
        other => panic!("{other:?}"),
    }
    store
        .put("policies", "p1", &json!({"x": 1}), PutOptions::default())
        .await
        .unwrap();
    match next_event(&mut w).await {
        WatchEvent::Put(e) => {
            assert_eq!((e.key.as_str(), e.value.clone()), ("p1", json!({"x": 1})))
        }
        other => panic!("{other:?}"),
    }
    // Other kinds are not reported.
    store
        .put("pods", "p1", &json!(1), PutOptions::default())
        .await
        .unwrap();
    store
        .delete("policies", "p1", Condition::Always)
        .await
        .unwrap();
    match next_event(&mut w).await {
        WatchEvent::Delete { key, .. } => assert_eq!(key, "p1"),
        other => panic!("{other:?}"),
    }
    let granted = Instant::now();
    let lease = store.grant_lease(ttl).await.unwrap();
    let opts = PutOptions {
        lease: Some(lease),
        condition: Condition::Always,
    };
    store
        .put("policies", "short", &json!(2), opts)
        .await
        .unwrap();
    assert!(matches!(next_event(&mut w).await, WatchEvent::Put(e) if e.key == "short"));
    match next_event(&mut w).await {
        WatchEvent::Delete { key, .. } => assert_eq!(key, "short"),
        other => panic!("{other:?}"),
    }
    assert!(
        granted.elapsed() + Duration::from_millis(50) >= ttl,
        "expired too early"
    );
}

pub async fn keep_alive_keeps_and_expiry_frees(store: &dyn Datastore, ttl: Duration) {
    let cfg = cluster_cfg();
    let keeper = store.grant_lease(ttl).await.unwrap();
    let kept = subnets::claim_node_subnets(store, &cfg, "kept", keeper)
        .await
        .unwrap();
    let dropper = store.grant_lease(ttl).await.unwrap();
    let dropped = subnets::claim_node_subnets(store, &cfg, "dropped", dropper)
        .await
        .unwrap();
    assert_ne!(kept, dropped);
    // Renew for three TTLs; the other lease gets no keep-alive.
    let until = Instant::now() + ttl * 3;
    while Instant::now() < until {
        store.keep_alive(keeper).await.unwrap();
        tokio::time::sleep(ttl / 4).await;
    }
    let holders: Vec<String> = subnets::list_subnet_leases(store)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.lease.node)
        .collect();
    assert!(holders.iter().all(|n| n == "kept"), "{holders:?}");
    assert_eq!(holders.len(), 2);
    let ka = store.keep_alive(dropper).await;
    assert!(matches!(ka, Err(StoreError::LeaseNotFound(_))), "{ka:?}");
    // The freed subnets are handed out again, first-free.
    let newcomer = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let got = subnets::claim_node_subnets(store, &cfg, "new", newcomer)
        .await
        .unwrap();
    assert_eq!(got, dropped);
}

pub async fn claims_are_stable_and_survive_restart(store: &dyn Datastore) {
    let cfg = cluster_cfg();
    let l1 = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let a = subnets::claim_node_subnets(store, &cfg, "a", l1)
        .await
        .unwrap();
    assert_eq!(
        a,
        [
            "10.244.0.0/24".parse::<IpNet>().unwrap(),
            "fd00:10:244::/64".parse().unwrap()
        ]
    );
    assert_eq!(
        subnets::claim_node_subnets(store, &cfg, "a", l1)
            .await
            .unwrap(),
        a
    );
    let lb = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let b = subnets::claim_node_subnets(store, &cfg, "b", lb)
        .await
        .unwrap();
    assert_eq!(b[0].to_string(), "10.244.1.0/24");
    // Agent "a" restarts: new lease, same subnets, now attached to the new lease.
    let l2 = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        subnets::claim_node_subnets(store, &cfg, "a", l2)
            .await
            .unwrap(),
        a
    );
    let e = store
        .get(KIND_SUBNETS, &a[0].to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.lease, Some(l2));
    // Node records.
    let mut rec = NodeRecord::new("a", "198.18.0.1".parse().unwrap());
    rec.subnets = a.clone();
    subnets::publish_node(store, &rec, l2).await.unwrap();
    assert_eq!(subnets::list_nodes(store).await.unwrap(), [rec]);
    // Releasing frees exactly a's subnets.
    let mut released = subnets::release_node_subnets(store, "a").await.unwrap();
    released.sort();
    let mut want = a.clone();
    want.sort();
    assert_eq!(released, want);
    assert!(subnets::remove_node(store, "a").await.unwrap());
    let left = subnets::list_subnet_leases(store).await.unwrap();
    assert!(left.iter().all(|l| l.lease.node == "b"));
}

pub async fn hints_bring_back_old_subnets(store: &dyn Datastore) {
    let cfg = cluster_cfg();
    let la = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    subnets::claim_node_subnets(store, &cfg, "a", la)
        .await
        .unwrap();
    let lb = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let old_b = subnets::claim_node_subnets(store, &cfg, "b", lb)
        .await
        .unwrap();
    // Both leases are lost (say, a long partition); b comes back first and asks for its
    // old subnets, which are free although lower ones are free too.
    store.revoke_lease(la).await.unwrap();
    store.revoke_lease(lb).await.unwrap();
    let lb2 = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let back = subnets::claim_node_subnets_with_hints(store, &cfg, "b", lb2, &old_b)
        .await
        .unwrap();
    assert_eq!(back, old_b);
}
