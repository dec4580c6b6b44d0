//! Prefix watch that survives etcd outages: list, watch from the listing's revision + 1,
//! and on any break (connection lost, compaction, cancel) back off, then list again and
//! send a fresh snapshot.

use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
use tokio::sync::mpsc;

use super::{list_prefix, to_entry};
use crate::error::StoreError;
use crate::types::{WATCH_BUFFER, WatchEvent, WatchStream};

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts the watcher task; it ends once the returned stream is dropped.
/// `client` (with request timeouts) lists; `streaming` (without) carries the watch.
pub(crate) fn spawn(client: Client, streaming: Client, kind_prefix: String) -> WatchStream {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let clients = Clients { client, streaming };
    tokio::spawn(async move { watch_loop(clients, kind_prefix, tx).await });
    WatchStream::new(rx)
}

struct Clients {
    client: Client,
    streaming: Client,
}

/// Why a watch session ended.
enum SessionEnd {
    /// The consumer dropped the stream: stop for good.
    Closed,
    /// Lost the watch; re-list and resume. `synced` says a snapshot went out first.
    Broken { error: StoreError, synced: bool },
}

async fn watch_loop(clients: Clients, kind_prefix: String, tx: mpsc::Sender<WatchEvent>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match session(&clients, &kind_prefix, &tx).await {
            SessionEnd::Closed => return,
            SessionEnd::Broken { error, synced } => {
                if synced {
                    backoff = MIN_BACKOFF;
                }
                tracing::warn!(prefix = %kind_prefix, %error, ?backoff, "etcd watch lost, resyncing");
            }
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn session(
    clients: &Clients,
    kind_prefix: &str,
    tx: &mpsc::Sender<WatchEvent>,
) -> SessionEnd {
    let broken = |error, synced| SessionEnd::Broken { error, synced };
    let listing = match list_prefix(&clients.client, kind_prefix).await {
        Ok(l) => l,
        Err(e) => return broken(e, false),
    };
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(listing.revision + 1);
    let mut stream = match clients
        .streaming
        .watch_client()
        .watch(kind_prefix, Some(options))
        .await
    {
        Ok(s) => s,
        Err(e) => return broken(e.into(), false),
    };
    if tx.send(WatchEvent::Snapshot(listing)).await.is_err() {
        return SessionEnd::Closed;
    }
    loop {
        let message = tokio::select! {
            _ = tx.closed() => return SessionEnd::Closed,
            m = stream.message() => m,
        };
        let resp = match message {
            Ok(Some(resp)) => resp,
            Ok(None) => return broken(StoreError::Etcd("watch stream ended".into()), true),
            Err(e) => return broken(e.into(), true),
        };
        if resp.canceled() || resp.compact_revision() > 0 {
            let reason = format!(
                "watch canceled (compacted at {}): {}",
                resp.compact_revision(),
                resp.cancel_reason()
            );
            return broken(StoreError::Etcd(reason), true);
        }
        for event in resp.events() {
            let Some(converted) = convert(kind_prefix, event) else {
                continue;
            };
            if tx.send(converted).await.is_err() {
                return SessionEnd::Closed;
            }
        }
    }
}

fn convert(kind_prefix: &str, event: &etcd_client::Event) -> Option<WatchEvent> {
    let kv = event.kv()?;
    match event.event_type() {
        EventType::Put => match to_entry(kind_prefix, kv) {
            Ok(entry) => entry.map(WatchEvent::Put),
            Err(e) => {
                tracing::warn!(error = %e, "skipping undecodable etcd entry");
                None
            }
        },
        EventType::Delete => {
            let key = kv.key_str().ok()?.strip_prefix(kind_prefix)?;
            Some(WatchEvent::Delete {
                key: key.to_string(),
                revision: kv.mod_revision(),
            })
        }
    }
}
