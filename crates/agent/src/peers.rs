//! The agent's view of the cluster's node records, fed by listings and watch events.
//!
//! Listings and watch events arrive on different paths, so an older view can show up after
//! a newer one (a watch snapshot taken just before a fresh listing). Store revisions order
//! them: nothing older than what is already known replaces it, so a stale view never
//! removes a live peer's routes.

use std::collections::BTreeMap;

use weft_cluster::NodeRecord;
use weft_store::subnets::parse_node;
use weft_store::{Entry, Listing, WatchEvent};

/// Node records by name, with the store revision each was last written at.
#[derive(Debug, Default)]
pub struct PeerView {
    records: BTreeMap<String, (NodeRecord, i64)>,
    /// Revision of the newest full listing applied.
    revision: i64,
    /// Whether any full listing was applied (before that, the view means nothing).
    known: bool,
}

impl PeerView {
    /// Whether a full listing has been seen.
    pub fn known(&self) -> bool {
        self.known
    }

    /// All records, by name.
    pub fn records(&self) -> Vec<NodeRecord> {
        self.records.values().map(|(r, _)| r.clone()).collect()
    }

    /// One record.
    pub fn get(&self, name: &str) -> Option<&NodeRecord> {
        self.records.get(name).map(|(r, _)| r)
    }

    /// Applies a full listing unless one at least as new was applied already (the same
    /// revision adds nothing, and would hide what this agent just wrote). True if applied.
    pub fn apply_listing(&mut self, listing: &Listing) -> bool {
        if self.known && listing.revision <= self.revision {
            return false;
        }
        self.records = listing
            .entries
            .iter()
            .filter_map(|e| Some((e.key.clone(), (parse_node(e)?, e.mod_revision))))
            .collect();
        self.revision = listing.revision;
        self.known = true;
        true
    }

    /// Applies one watch event; returns whether the view changed.
    pub fn apply_event(&mut self, event: &WatchEvent) -> bool {
        match event {
            WatchEvent::Snapshot(listing) => self.apply_listing(listing),
            WatchEvent::Put(entry) => self.apply_put(entry),
            WatchEvent::Delete { key, revision } => self.apply_delete(key, *revision),
        }
    }

    /// Records what this agent just wrote itself.
    pub fn insert_own(&mut self, record: NodeRecord) {
        let revision = self.records.get(&record.name).map_or(0, |(_, r)| *r);
        self.records.insert(record.name.clone(), (record, revision));
    }

    fn apply_put(&mut self, entry: &Entry) -> bool {
        let newer = self
            .records
            .get(&entry.key)
            .is_none_or(|(_, rev)| entry.mod_revision >= *rev);
        match parse_node(entry) {
            Some(record) if newer => {
                self.records
                    .insert(entry.key.clone(), (record, entry.mod_revision));
                true
            }
            _ => false,
        }
    }

    /// A deletion older than the record's last write is stale (the record came back).
    /// Revision 0 means "unknown" (e.g. best-effort lease expiry) and always applies.
    fn apply_delete(&mut self, key: &str, revision: i64) -> bool {
        match self.records.get(key) {
            Some((_, rev)) if revision != 0 && revision < *rev => false,
            Some(_) => {
                tracing::info!(node = %key, "node record gone");
                self.records.remove(key);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, rev: i64) -> Entry {
        let record = NodeRecord::new(name, "198.18.0.10".parse().unwrap());
        Entry {
            key: name.into(),
            value: serde_json::to_value(record).unwrap(),
            mod_revision: rev,
            create_revision: rev,
            lease: None,
        }
    }

    fn listing(entries: Vec<Entry>, revision: i64) -> Listing {
        Listing { entries, revision }
    }

    #[test]
    fn stale_snapshot_does_not_drop_a_peer() {
        let mut v = PeerView::default();
        assert!(!v.known());
        assert!(v.apply_listing(&listing(vec![entry("a", 3), entry("b", 5)], 5)));
        let stale = WatchEvent::Snapshot(listing(vec![entry("a", 3)], 4));
        assert!(!v.apply_event(&stale));
        assert!(v.get("b").is_some());
        let same = WatchEvent::Snapshot(listing(vec![entry("a", 3)], 5));
        assert!(!v.apply_event(&same));
        let newer = WatchEvent::Snapshot(listing(vec![entry("a", 3)], 6));
        assert!(v.apply_event(&newer));
        assert!(v.get("b").is_none());
    }

    #[test]
    fn puts_and_deletes_are_ordered() {
        let mut v = PeerView::default();
        v.apply_listing(&listing(vec![entry("a", 7)], 7));
        assert!(!v.apply_event(&WatchEvent::Put(entry("a", 6))));
        assert!(!v.apply_event(&WatchEvent::Delete {
            key: "a".into(),
            revision: 5
        }));
        assert!(v.get("a").is_some());
        assert!(v.apply_event(&WatchEvent::Put(entry("b", 8))));
        assert!(v.apply_event(&WatchEvent::Delete {
            key: "a".into(),
            revision: 0
        }));
        assert_eq!(v.records().len(), 1);
    }
}
