//! Embedded store: basics, CAS claims across threads and processes, watch, TTL expiry.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers may fail loudly

mod common;

use std::time::Duration;

use serde_json::json;
use weft_store::{Datastore, EmbeddedOptions, EmbeddedStore, StoreError};

fn store(dir: &std::path::Path) -> EmbeddedStore {
    let opts = EmbeddedOptions {
        poll_interval: Duration::from_millis(20),
    };
    EmbeddedStore::open_with(dir, opts).unwrap()
}

#[tokio::test]
async fn kv_conditions_and_leases() {
    let dir = tempfile::tempdir().unwrap();
    common::kv_conditions_and_leases(&store(dir.path()), Duration::from_secs(1)).await;
}

#[tokio::test]
async fn watch_sees_put_delete_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    common::watch_sees_put_delete_and_expiry(&store(dir.path()), Duration::from_millis(300)).await;
}

#[tokio::test]
async fn claims_are_stable_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    common::claims_are_stable_and_survive_restart(&store(dir.path())).await;
}

#[tokio::test]
async fn hints_bring_back_old_subnets() {
    let dir = tempfile::tempdir().unwrap();
    common::hints_bring_back_old_subnets(&store(dir.path())).await;
}

#[tokio::test]
async fn keep_alive_keeps_and_expiry_frees() {
    let dir = tempfile::tempdir().unwrap();
    common::keep_alive_keeps_and_expiry_frees(&store(dir.path()), Duration::from_secs(1)).await;
}

#[test]
fn concurrent_claims_from_threads_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    // 20 nodes race for the 16 /24s of a /20: 16 win distinct subnets, 4 see exhaustion.
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let s = store(&path);
                    common::claim_one(&s, &format!("t{i}")).await
                })
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let exhausted = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Carve(_))))
        .count();
    assert_eq!(exhausted, 4, "{results:?}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(common::assert_no_overlap(&store(&path), 16));
}

const CHILD_ENV: &str = "WEFT_STORE_TEST_CHILD_DIR";

/// Runs inside child processes started by `concurrent_claims_from_processes_never_overlap`.
#[test]
fn child_claimer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let id = std::env::var("WEFT_STORE_TEST_CHILD_ID").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = store(std::path::Path::new(&dir));
        for n in 0..3 {
            common::claim_one(&s, &format!("p{id}-{n}")).await.unwrap();
        }
    });
}

#[test]
fn concurrent_claims_from_processes_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|i| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "child_claimer",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, dir.path())
                .env("WEFT_STORE_TEST_CHILD_ID", i.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(common::assert_no_overlap(&store(dir.path()), 12));
}

#[tokio::test]
async fn rejects_bad_names_and_dead_leases() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let v = json!(1);
    assert!(matches!(
        s.put("Bad/Kind", "k", &v, Default::default()).await,
        Err(StoreError::InvalidName { .. })
    ));
    assert!(matches!(
        s.get("pods", "").await,
        Err(StoreError::InvalidName { .. })
    ));
    let opts = weft_store::PutOptions {
        lease: Some(weft_store::LeaseId(999)),
        ..Default::default()
    };
    assert!(matches!(
        s.put("pods", "k", &v, opts).await,
        Err(StoreError::LeaseNotFound(_))
    ));
}
