//! The persistence boundary of the allocator.
//!
//! Every method except `lock`/`unlock`/`check_writable` must be called with the lock
//! held; the operations in [`crate::ops`] take it around each read-modify-write.

pub mod disk;
mod disk_index;
pub mod mem;

use std::collections::HashSet;
use std::net::IpAddr;

use crate::error::StoreError;

/// Who holds a reservation, as recorded by the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Holder {
    /// The normal record: container id and interface name.
    Attachment {
        /// Container id.
        id: String,
        /// Interface name inside the container.
        ifname: String,
    },
    /// Written by old host-local versions: only the container id.
    LegacyId(String),
    /// Empty or unreadable record (e.g. left by host-local's create-then-write crash).
    Unknown,
}

impl Holder {
    /// Parses the content of a reservation file: `<id>\r\n<ifname>` or a legacy `<id>`.
    /// Surrounding whitespace is ignored, as host-local does.
    pub fn parse(content: &str) -> Holder {
        let content = content.trim();
        match content.split_once("\r\n") {
            Some((id, ifname))
                if !id.is_empty() && !ifname.is_empty() && !ifname.contains('\n') =>
            {
                Holder::Attachment {
                    id: id.to_owned(),
                    ifname: ifname.to_owned(),
                }
            }
            Some(_) => Holder::Unknown,
            None if content.is_empty() || content.contains('\n') => Holder::Unknown,
            None => Holder::LegacyId(content.to_owned()),
        }
    }

    /// True for the record of exactly (`id`, `ifname`).
    pub fn is_attachment(&self, id: &str, ifname: &str) -> bool {
        matches!(self, Holder::Attachment { id: i, ifname: n } if i == id && n == ifname)
    }
}

/// One reserved address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The reserved address.
    pub ip: IpAddr,
    /// Its holder.
    pub holder: Holder,
}

/// What the allocator needs from persistence. Implementations: [`mem::MemStore`] for
/// tests, [`disk::DiskStore`] for host-local's on-disk layout.
pub trait Store {
    /// Takes the exclusive lock (blocking). Held for every read-modify-write.
    fn lock(&mut self) -> Result<(), StoreError>;
    /// Releases the lock.
    fn unlock(&mut self) -> Result<(), StoreError>;
    /// Atomically reserves `ip` for (`id`, `ifname`) and records it as the last address
    /// reserved in range set `set_index`. Returns `false` (and changes nothing) when the
    /// address is already held by anyone.
    fn reserve(
        &mut self,
        ip: IpAddr,
        id: &str,
        ifname: &str,
        set_index: usize,
    ) -> Result<bool, StoreError>;
    /// The last address reserved in range set `set_index`, if known.
    fn last_reserved(&mut self, set_index: usize) -> Result<Option<IpAddr>, StoreError>;
    /// Every reservation, including legacy and unreadable records.
    fn reservations(&mut self) -> Result<Vec<Reservation>, StoreError>;
    /// Only the reserved addresses; stores may answer this cheaper than `reservations`.
    fn taken(&mut self) -> Result<HashSet<IpAddr>, StoreError> {
        Ok(self.reservations()?.into_iter().map(|r| r.ip).collect())
    }
    /// Drops the reservation of `ip` whoever holds it. Returns `false` if there was none.
    fn release(&mut self, ip: IpAddr) -> Result<bool, StoreError>;
    /// Removes leftovers of interrupted writes (e.g. temp files); returns their names.
    fn remove_debris(&mut self) -> Result<Vec<String>, StoreError>;
    /// Slower housekeeping for GC (e.g. pruning stale index entries); returns the names
    /// of removed items.
    fn compact(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    /// Checks that the store can take new reservations (STATUS).
    fn check_writable(&mut self) -> Result<(), StoreError>;

    /// Addresses held by exactly (`id`, `ifname`).
    fn find(&mut self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
        Ok(self
            .reservations()?
            .into_iter()
            .filter(|r| r.holder.is_attachment(id, ifname))
            .map(|r| r.ip)
            .collect())
    }

    /// Releases what (`id`, `ifname`) holds; when it holds nothing, releases legacy
    /// id-only records of `id` (host-local's DEL fallback). Returns the released addresses.
    /// Continues after a failed release and reports the first error at the end.
    fn release_attachment(&mut self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
        let all = self.reservations()?;
        let mut targets: Vec<IpAddr> = all
            .iter()
            .filter(|r| r.holder.is_attachment(id, ifname))
            .map(|r| r.ip)
            .collect();
        if targets.is_empty() {
            targets = all
                .iter()
                .filter(|r| r.holder == Holder::LegacyId(id.to_owned()))
                .map(|r| r.ip)
                .collect();
        }
        let mut released = Vec::new();
        let mut first_error = None;
        for ip in targets {
            match self.release(ip) {
                Ok(true) => released.push(ip),
                Ok(false) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(released),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_parsing() {
        assert_eq!(
            Holder::parse("abc\r\neth0"),
            Holder::Attachment {
                id: "abc".into(),
                ifname: "eth0".into()
            }
        );
        assert_eq!(Holder::parse("abc\n"), Holder::LegacyId("abc".into()));
        assert_eq!(Holder::parse(""), Holder::Unknown);
        assert_eq!(Holder::parse("  \n"), Holder::Unknown);
        assert_eq!(Holder::parse("a\r\n"), Holder::LegacyId("a".into()));
        assert_eq!(Holder::parse("a\nb"), Holder::Unknown);
        assert_eq!(Holder::parse("\r\neth0"), Holder::LegacyId("eth0".into()));
    }
}
