//! One watched kind's objects, ordered by store revision.
//!
//! Objects arrive on three paths that can overtake each other: the watch (snapshot, then
//! puts and deletes), listings taken to confirm the revision (see `state`), and direct
//! reads of a claimed pod. Each object keeps the revision it was written at, so nothing
//! older than what is cached replaces it, and a put older than the newest listing cannot
//! bring back an object that listing no longer had.

use std::collections::BTreeMap;

use weft_store::{Entry, Listing};

/// An object as read: its parsed form or why it could not be read, plus its revision.
type Slot<T> = (Result<T, String>, i64);

/// Objects of one kind by store key.
#[derive(Debug)]
pub struct KindCache<T> {
    entries: BTreeMap<String, Slot<T>>,
    /// Revision of the newest listing applied: everything up to it is known.
    listed: i64,
    loaded: bool,
}

impl<T> Default for KindCache<T> {
    fn default() -> Self {
        KindCache {
            entries: BTreeMap::new(),
            listed: 0,
            loaded: false,
        }
    }
}

/// What a listing changed.
#[derive(Debug)]
pub struct ListingChange<T> {
    /// Whether any object was added, rewritten or removed.
    pub changed: bool,
    /// The objects that are gone.
    pub removed: Vec<(String, Result<T, String>)>,
}

impl<T> KindCache<T> {
    /// Whether a listing was applied.
    pub fn loaded(&self) -> bool {
        self.loaded
    }

    /// Revision of the newest listing applied.
    pub fn listed(&self) -> i64 {
        self.listed
    }

    /// Replaces the cache with `listing` unless a listing at least as new was applied.
    /// Objects whose revision did not change keep their parsed form (`parse` runs, and
    /// logs, only for new versions).
    pub fn apply_listing(
        &mut self,
        listing: &Listing,
        parse: impl Fn(&Entry) -> Result<T, String>,
    ) -> ListingChange<T> {
        if self.loaded && listing.revision <= self.listed {
            return ListingChange {
                changed: false,
                removed: Vec::new(),
            };
        }
        let mut old = std::mem::take(&mut self.entries);
        let mut changed = false;
        for entry in &listing.entries {
            let slot = match old.remove(&entry.key) {
                Some(slot) if slot.1 == entry.mod_revision => slot,
                _ => {
                    changed = true;
                    (parse(entry), entry.mod_revision)
                }
            };
            self.entries.insert(entry.key.clone(), slot);
        }
        changed |= !old.is_empty();
        self.listed = listing.revision;
        self.loaded = true;
        ListingChange {
            changed,
            removed: old.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        }
    }

    /// Applies a put unless the cache has this version or a newer one. True if applied.
    pub fn apply_put(
        &mut self,
        entry: &Entry,
        parse: impl Fn(&Entry) -> Result<T, String>,
    ) -> bool {
        let newer = match self.entries.get(&entry.key) {
            Some((_, rev)) => entry.mod_revision > *rev,
            // Absent although the newest listing came after this write: deleted since.
            None => entry.mod_revision > self.listed,
        };
        if newer {
            self.entries
                .insert(entry.key.clone(), (parse(entry), entry.mod_revision));
        }
        newer
    }

    /// Applies a delete unless the object was written again after it (revision 0 means
    /// "unknown", e.g. a best-effort lease expiry, and always applies). Returns what was
    /// removed.
    pub fn apply_delete(&mut self, key: &str, revision: i64) -> Option<Result<T, String>> {
        match self.entries.get(key) {
            Some((_, rev)) if revision != 0 && revision < *rev => None,
            Some(_) => self.entries.remove(key).map(|(v, _)| v),
            None => None,
        }
    }

    /// Whether `key` is cached (readable or not).
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The readable objects.
    pub fn valid(&self) -> impl Iterator<Item = &T> {
        self.entries.values().filter_map(|(v, _)| v.as_ref().ok())
    }

    /// The unreadable objects: key and reason.
    pub fn invalid(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .filter_map(|(k, (v, _))| v.as_ref().err().map(|e| (k.as_str(), e.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, rev: i64) -> Entry {
        Entry {
            key: key.into(),
            value: serde_json::json!(rev),
            mod_revision: rev,
            create_revision: rev,
            lease: None,
        }
    }

    fn parse(e: &Entry) -> Result<i64, String> {
        match e.value.as_i64() {
            Some(v) if v >= 0 => Ok(v),
            _ => Err(format!("{}: negative", e.key)),
        }
    }

    fn listing(entries: Vec<Entry>, revision: i64) -> Listing {
        Listing { entries, revision }
    }

    #[test]
    fn stale_events_do_not_win() {
        let mut c = KindCache::default();
        assert!(!c.loaded());
        let ch = c.apply_listing(&listing(vec![entry("a", 3), entry("b", 5)], 6), parse);
        assert!(ch.changed && ch.removed.is_empty() && c.loaded());
        assert!(!c.apply_put(&entry("a", 3), parse), "same version");
        assert!(c.apply_put(&entry("a", 7), parse));
        // b deleted at 8 and written again at 9; the delete arrives late.
        assert!(c.apply_put(&entry("b", 9), parse));
        assert!(c.apply_delete("b", 8).is_none());
        assert!(c.contains("b"));
        // A put older than the listing, for an object the listing did not have.
        assert!(!c.apply_put(&entry("z", 4), parse));
        assert!(c.apply_delete("a", 0).is_some());
        assert_eq!(c.valid().count(), 1);
    }

    #[test]
    fn listings_replace_and_report_removals_once() {
        let mut c = KindCache::default();
        c.apply_listing(&listing(vec![entry("a", 3), entry("b", 5)], 6), parse);
        let older = c.apply_listing(&listing(vec![], 5), parse);
        assert!(!older.changed, "an older listing is ignored");
        let same = c.apply_listing(&listing(vec![entry("a", 3), entry("b", 5)], 9), parse);
        assert!(!same.changed);
        assert_eq!(c.listed(), 9);
        let ch = c.apply_listing(&listing(vec![entry("b", 5)], 10), parse);
        assert!(ch.changed);
        assert_eq!(ch.removed.len(), 1);
        assert_eq!(ch.removed[0].0, "a");
    }

    #[test]
    fn unreadable_objects_are_kept_apart() {
        let mut c = KindCache::default();
        let mut bad = entry("bad", 2);
        bad.value = serde_json::json!(-1);
        c.apply_listing(&listing(vec![entry("a", 1), bad], 3), parse);
        assert_eq!(c.valid().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(
            c.invalid().collect::<Vec<_>>(),
            vec![("bad", "bad: negative")]
        );
        // Fixed by a new version.
        assert!(c.apply_put(&entry("bad", 4), parse));
        assert_eq!(c.invalid().count(), 0);
    }
}
