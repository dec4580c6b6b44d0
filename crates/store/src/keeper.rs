//! Keeping a store lease alive in the background and telling the agent when it is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::datastore::Datastore;
use crate::error::StoreError;
use crate::types::LeaseId;

/// What the keeper knows about its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// Last renewal succeeded.
    Alive,
    /// Renewals fail (store unreachable) since this instant; the lease may still be alive
    /// on the server. Nothing local should be torn down because of this.
    Unreachable {
        /// When the first failed renewal happened.
        since: Instant,
        /// The last error.
        error: String,
    },
    /// The store says the lease is gone: grant a new one and claim again. The keeper stops.
    Lost,
}

/// Renews a lease every `interval` until dropped.
#[derive(Debug)]
pub struct LeaseKeeper {
    lease: LeaseId,
    state: watch::Receiver<LeaseState>,
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Starts renewing `lease` every `interval` (use about a third of the TTL).
    pub fn spawn(store: Arc<dyn Datastore>, lease: LeaseId, interval: Duration) -> Self {
        let (tx, rx) = watch::channel(LeaseState::Alive);
        let task = tokio::spawn(renew_loop(store, lease, interval, tx));
        LeaseKeeper {
            lease,
            state: rx,
            task,
        }
    }

    /// The lease being kept.
    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    /// Current state.
    pub fn state(&self) -> LeaseState {
        self.state.borrow().clone()
    }

    /// A receiver to `changed().await` on.
    pub fn subscribe(&self) -> watch::Receiver<LeaseState> {
        self.state.clone()
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn renew_loop(
    store: Arc<dyn Datastore>,
    lease: LeaseId,
    interval: Duration,
    tx: watch::Sender<LeaseState>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let next = match store.keep_alive(lease).await {
            Ok(_) => LeaseState::Alive,
            Err(StoreError::LeaseNotFound(_)) => {
                tracing::warn!(%lease, "store lease lost");
                tx.send_replace(LeaseState::Lost);
                return;
            }
            Err(e) => {
                tracing::warn!(%lease, error = %e, "lease renewal failed, retrying");
                let since = match &*tx.borrow() {
                    LeaseState::Unreachable { since, .. } => *since,
                    _ => Instant::now(),
                };
                LeaseState::Unreachable {
                    since,
                    error: e.to_string(),
                }
            }
        };
        tx.send_if_modified(|cur| {
            let changed = *cur != next;
            *cur = next;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedStore;

    #[tokio::test]
    async fn keeps_then_reports_loss() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Datastore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
        let keeper = LeaseKeeper::spawn(Arc::clone(&store), lease, Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(keeper.state(), LeaseState::Alive);
        store.keep_alive(lease).await.unwrap();
        store.revoke_lease(lease).await.unwrap();
        let mut rx = keeper.subscribe();
        tokio::time::timeout(
            Duration::from_secs(2),
            rx.wait_for(|s| *s == LeaseState::Lost),
        )
        .await
        .unwrap()
        .unwrap();
    }
}
