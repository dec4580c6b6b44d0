//! Watching the embedded store by polling: cheap (one small file read per tick unless
//! something changed) and works across processes without inotify.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::files::{Files, now_ms};
use crate::types::{Entry, Listing, WATCH_BUFFER, WatchEvent, WatchStream};

/// Starts a polling thread for `kind`; it ends once the returned stream is dropped.
pub(crate) fn spawn(
    files: Arc<Files>,
    kind: String,
    poll: Duration,
) -> std::io::Result<WatchStream> {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    std::thread::Builder::new()
        .name(format!("weft-watch-{kind}"))
        .spawn(move || poll_loop(&files, &kind, poll, &tx))?;
    Ok(WatchStream::new(rx))
}

struct Seen {
    revision: i64,
    next_expiry: Option<u64>,
    entries: BTreeMap<String, Entry>,
}

fn poll_loop(files: &Files, kind: &str, poll: Duration, tx: &mpsc::Sender<WatchEvent>) {
    let mut seen: Option<Seen> = None;
    while !tx.is_closed() {
        if let Err(e) = poll_once(files, kind, tx, &mut seen) {
            tracing::warn!(kind, root = %files.root().display(), error = %e, "embedded store watch");
        }
        std::thread::sleep(poll);
    }
}

fn poll_once(
    files: &Files,
    kind: &str,
    tx: &mpsc::Sender<WatchEvent>,
    seen: &mut Option<Seen>,
) -> Result<(), crate::StoreError> {
    if let Some(s) = seen.as_ref() {
        let expired = s.next_expiry.is_some_and(|e| now_ms() >= e);
        if files.revision()? == s.revision && !expired {
            return Ok(());
        }
    }
    let (listing, next_expiry) = files.list(kind)?;
    let events = match seen.as_ref() {
        None => vec![WatchEvent::Snapshot(listing.clone())],
        Some(s) => changes(&s.entries, &listing),
    };
    *seen = Some(Seen {
        revision: listing.revision,
        next_expiry,
        entries: listing
            .entries
            .into_iter()
            .map(|e| (e.key.clone(), e))
            .collect(),
    });
    for event in events {
        // A send error means the stream was dropped; the loop notices and ends.
        if tx.blocking_send(event).is_err() {
            break;
        }
    }
    Ok(())
}

/// Put for new or rewritten objects, Delete for vanished ones (deleted or expired).
fn changes(before: &BTreeMap<String, Entry>, now: &Listing) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    for entry in &now.entries {
        if before.get(&entry.key).map(|b| b.mod_revision) != Some(entry.mod_revision) {
            events.push(WatchEvent::Put(entry.clone()));
        }
    }
    for key in before.keys() {
        if !now.entries.iter().any(|e| &e.key == key) {
            events.push(WatchEvent::Delete {
                key: key.clone(),
                revision: now.revision,
            });
        }
    }
    events
}
