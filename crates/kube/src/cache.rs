//! One shared informer per kind: a kube-rs watcher (list, then watch; resumes from the last
//! resourceVersion after a disconnect; relists after 410 Gone) feeding a cache that serves
//! `list` and fans changes out to every `watch` stream.
//!
//! One API watch per kind however many consumers, so a node costs the API server one
//! cluster-wide watch per kind, as client-go's shared informers do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::utils::StreamBackoff;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use weft_store::{Entry, Listing, WatchEvent, WatchStream};

use crate::backoff::WatchBackoff;
use crate::kinds::{Kind, revision_of};

/// Events kept for slow consumers; one that falls further behind gets a fresh snapshot.
const FANOUT_BUFFER: usize = 1024;
/// Events buffered per watch stream before its forwarder waits for the consumer.
const STREAM_BUFFER: usize = 256;

/// Backoff settings of the watchers (see [`WatchBackoff`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// First delay after an error.
    pub min: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Error-free time after which the delay starts from `min` again.
    pub quiet: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            min: Duration::from_millis(800),
            max: Duration::from_secs(30),
            quiet: Duration::from_secs(120),
        }
    }
}

/// The cached state of one kind.
#[derive(Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    /// Objects of a relist in progress (between `Init` and `InitDone`).
    pending: Option<BTreeMap<String, Entry>>,
    /// Whether a full list has completed (before that, `entries` means nothing).
    synced: bool,
    /// Highest resourceVersion seen; after a relist at least one more than before, so a
    /// consumer ordering listings by revision takes every relist as new.
    revision: i64,
    /// Sequence number of the last fanned-out event.
    seq: u64,
}

impl State {
    fn listing(&self) -> Listing {
        Listing {
            entries: self.entries.values().cloned().collect(),
            revision: self.revision,
        }
    }
}

struct Shared {
    kind: Kind,
    state: Mutex<State>,
    events: broadcast::Sender<(u64, WatchEvent)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is replaced whole or changed by one insert/remove: a panic elsewhere
        // cannot leave it half-written, so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running informer for one kind; stops when dropped.
pub(crate) struct KindCache {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for KindCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KindCache {
    /// Starts watching `api` (all namespaces) in the background.
    pub(crate) fn start(kind: Kind, api: Api<DynamicObject>, backoff: BackoffConfig) -> Self {
        // resourceVersion=0 lists come from the API server's watch cache, not etcd: what
        // client-go informers do, and what keeps thousands of nodes relisting affordable.
        let config = watcher::Config::default().any_semantic();
        let backoff = WatchBackoff::new(backoff.min, backoff.max, backoff.quiet);
        let stream = StreamBackoff::new(watcher::watcher(api, config), backoff);
        Self::from_stream(kind, stream)
    }

    /// Feeds the cache from any stream of watcher events.
    fn from_stream<S>(kind: Kind, stream: S) -> Self
    where
        S: futures_util::Stream<Item = Result<Event<DynamicObject>, watcher::Error>>
            + Send
            + 'static,
    {
        let (events, _) = broadcast::channel(FANOUT_BUFFER);
        let shared = Arc::new(Shared {
            kind,
            state: Mutex::new(State::default()),
            events,
        });
        let task = tokio::spawn(run(Arc::clone(&shared), Box::pin(stream)));
        KindCache { shared, task }
    }

    /// The cached listing, once the first list completed.
    pub(crate) fn listing(&self) -> Option<Listing> {
        let state = self.shared.lock();
        state.synced.then(|| state.listing())
    }

    /// A cached entry, once the first list completed (`Some(None)`: known absent).
    pub(crate) fn get(&self, key: &str) -> Option<Option<Entry>> {
        let state = self.shared.lock();
        state.synced.then(|| state.entries.get(key).cloned())
    }

    /// A new watch stream: the current snapshot (or the first one, when the list
    /// completes), then changes.
    pub(crate) fn subscribe(&self) -> WatchStream {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let (initial, events) = {
            let state = self.shared.lock();
            // Subscribing under the lock: no event between the snapshot and the first
            // received one can be missed.
            let events = self.shared.events.subscribe();
            let initial = state.synced.then(|| (state.seq, state.listing()));
            (initial, events)
        };
        tokio::spawn(forward(Arc::downgrade(&self.shared), initial, events, tx));
        WatchStream::from_receiver(rx)
    }
}

async fn run<S>(shared: Arc<Shared>, mut stream: S)
where
    S: futures_util::Stream<Item = Result<Event<DynamicObject>, watcher::Error>> + Unpin,
{
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => apply(&shared, event),
            Err(e) => {
                tracing::warn!(kind = shared.kind.name(), error = %e, "kubernetes watch failed, retrying")
            }
        }
    }
}

fn entry_of(kind: Kind, object: &DynamicObject) -> Option<Entry> {
    let json: Value = serde_json::to_value(object).ok()?;
    let (key, value) = kind.entry_of(&json)?;
    Some(Entry {
        key,
        value,
        mod_revision: revision_of(&json),
        create_revision: 0,
        lease: None,
    })
}

fn key_of(kind: Kind, object: &DynamicObject) -> Option<String> {
    let name = object.metadata.name.as_deref()?;
    Some(
        match (kind.namespaced(), object.metadata.namespace.as_deref()) {
            (true, Some(ns)) => format!("{ns}/{name}"),
            (true, None) => return None,
            (false, _) => name.to_string(),
        },
    )
}

fn object_revision(object: &DynamicObject) -> i64 {
    object
        .metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// Applies one watcher event to the cache and fans out what consumers must see.
fn apply(shared: &Shared, event: Event<DynamicObject>) {
    let kind = shared.kind;
    let mut state = shared.lock();
    let out = match event {
        Event::Init => {
            state.pending = Some(BTreeMap::new());
            None
        }
        Event::InitApply(object) => {
            let entry = entry_of(kind, &object);
            if let (Some(pending), Some(entry)) = (state.pending.as_mut(), entry) {
                pending.insert(entry.key.clone(), entry);
            }
            None
        }
        Event::InitDone => {
            let entries = state.pending.take().unwrap_or_default();
            let newest = entries.values().map(|e| e.mod_revision).max().unwrap_or(0);
            state.revision = match state.synced {
                true => newest.max(state.revision + 1),
                false => newest.max(state.revision),
            };
            state.entries = entries;
            state.synced = true;
            tracing::info!(
                kind = kind.name(),
                objects = state.entries.len(),
                "kubernetes list synced"
            );
            Some(WatchEvent::Snapshot(state.listing()))
        }
        Event::Apply(object) => {
            let revision = object_revision(&object);
            state.revision = state.revision.max(revision);
            match entry_of(kind, &object) {
                Some(entry) => upsert(&mut state, entry),
                // Not representable (a Node that lost its addresses): gone for weft.
                None => key_of(kind, &object).and_then(|key| remove(&mut state, key, revision)),
            }
        }
        Event::Delete(object) => {
            let revision = object_revision(&object);
            state.revision = state.revision.max(revision);
            key_of(kind, &object).and_then(|key| remove(&mut state, key, revision))
        }
    };
    if let Some(event) = out {
        state.seq += 1;
        // No receivers is fine: nobody watches right now.
        let _ = shared.events.send((state.seq, event));
    }
}

/// Stores `entry`; a change only if its value differs (Node heartbeats and pod condition
/// updates do not change what weft stores, so consumers are not woken for them).
fn upsert(state: &mut State, entry: Entry) -> Option<WatchEvent> {
    if state
        .entries
        .get(&entry.key)
        .is_some_and(|old| old.value == entry.value)
    {
        return None;
    }
    state.entries.insert(entry.key.clone(), entry.clone());
    Some(WatchEvent::Put(entry))
}

fn remove(state: &mut State, key: String, revision: i64) -> Option<WatchEvent> {
    state.entries.remove(&key)?;
    Some(WatchEvent::Delete { key, revision })
}

/// Copies fanned-out events into one consumer's stream. A consumer that fell so far behind
/// that events were dropped gets a fresh snapshot instead (level-based consumers only need
/// the latest state), and events it already has in that snapshot are skipped.
///
/// It holds the cache weakly: once the store is dropped, the stream ends (`None`).
async fn forward(
    shared: Weak<Shared>,
    initial: Option<(u64, Listing)>,
    mut events: broadcast::Receiver<(u64, WatchEvent)>,
    tx: mpsc::Sender<WatchEvent>,
) {
    let mut seen = 0;
    if let Some((seq, listing)) = initial {
        if tx.send(WatchEvent::Snapshot(listing)).await.is_err() {
            return;
        }
        seen = seq;
    }
    loop {
        let received = tokio::select! {
            _ = tx.closed() => return,
            r = events.recv() => r,
        };
        let event = match received {
            Ok((seq, _)) if seq <= seen => continue,
            Ok((seq, event)) => {
                seen = seq;
                event
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let state = shared.lock();
                seen = state.seq;
                WatchEvent::Snapshot(state.listing())
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use tokio::sync::mpsc::UnboundedSender;

    use super::*;

    type Feed = UnboundedSender<Result<Event<DynamicObject>, watcher::Error>>;

    fn cache() -> (KindCache, Feed) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            Some((item, rx))
        });
        (KindCache::from_stream(Kind::Namespaces, stream), tx)
    }

    fn ns(name: &str, rv: u64, team: &str) -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "resourceVersion": rv.to_string(),
                         "labels": {"team": team}}}))
        .unwrap()
    }

    async fn next(w: &mut WatchStream) -> Option<WatchEvent> {
        tokio::time::timeout(Duration::from_millis(300), w.next())
            .await
            .ok()
            .flatten()
    }

    fn team(view: &BTreeMap<String, Entry>, key: &str) -> Value {
        view[key].value["metadata"]["labels"]["team"].clone()
    }

    #[tokio::test]
    async fn relists_replace_and_unchanged_objects_are_quiet() {
        let (cache, feed) = cache();
        let mut watch = cache.subscribe();
        assert!(cache.listing().is_none());
        for event in [
            Event::Init,
            Event::InitApply(ns("a", 5, "x")),
            Event::InitApply(ns("b", 7, "x")),
            Event::InitDone,
            Event::Apply(ns("a", 9, "x")),
            Event::Apply(ns("a", 10, "y")),
            Event::Init,
            Event::InitApply(ns("a", 10, "y")),
            Event::InitDone,
        ] {
            feed.send(Ok(event)).unwrap();
        }
        let Some(WatchEvent::Snapshot(first)) = next(&mut watch).await else {
            panic!("snapshot first")
        };
        assert_eq!((first.entries.len(), first.revision), (2, 7));
        let Some(WatchEvent::Put(a)) = next(&mut watch).await else {
            panic!("put")
        };
        assert_eq!(
            a.mod_revision, 10,
            "the resourceVersion-only change was quiet"
        );
        let Some(WatchEvent::Snapshot(relisted)) = next(&mut watch).await else {
            panic!("relist snapshot")
        };
        assert_eq!(relisted.entries.len(), 1);
        assert_eq!(
            relisted.revision, 11,
            "a relist is newer than anything before"
        );
        assert_eq!(cache.get("b"), Some(None));
    }

    #[tokio::test]
    async fn dropping_the_cache_ends_its_streams() {
        let (cache, feed) = cache();
        feed.send(Ok(Event::Init)).unwrap();
        feed.send(Ok(Event::InitDone)).unwrap();
        let mut watch = cache.subscribe();
        assert!(matches!(
            next(&mut watch).await,
            Some(WatchEvent::Snapshot(_))
        ));
        drop(cache);
        let end = tokio::time::timeout(Duration::from_secs(2), watch.next()).await;
        assert_eq!(end.unwrap(), None);
    }

    #[tokio::test]
    async fn a_consumer_that_falls_behind_gets_a_fresh_snapshot() {
        let (cache, feed) = cache();
        feed.send(Ok(Event::Init)).unwrap();
        feed.send(Ok(Event::InitDone)).unwrap();
        let mut slow = cache.subscribe();
        let total = (FANOUT_BUFFER + STREAM_BUFFER) as u64 * 2;
        for i in 1..=total {
            let name = format!("ns-{}", i % 50);
            feed.send(Ok(Event::Apply(ns(&name, i, &i.to_string()))))
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut view = BTreeMap::new();
        let mut snapshots = 0;
        while let Some(event) = next(&mut slow).await {
            match event {
                WatchEvent::Snapshot(l) => {
                    snapshots += 1;
                    view = l.entries.into_iter().map(|e| (e.key.clone(), e)).collect();
                }
                WatchEvent::Put(e) => {
                    view.insert(e.key.clone(), e);
                }
                WatchEvent::Delete { key, .. } => {
                    view.remove(&key);
                }
            }
        }
        assert!(snapshots >= 2, "lagged without a resync snapshot");
        let truth: BTreeMap<String, Entry> = cache
            .listing()
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.key.clone(), e))
            .collect();
        assert_eq!(view, truth);
        let last = format!("ns-{}", total % 50);
        assert_eq!(team(&view, &last), json!(total.to_string()));
    }
}
