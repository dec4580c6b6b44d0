//! In-memory [`Store`] for unit and property tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use crate::error::StoreError;
use crate::store::{Holder, Reservation, Store};

/// A [`Store`] kept in memory. It also checks the lock discipline: calling a data method
/// without holding the lock returns an error, so allocator bugs show up in tests.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    /// Current reservations.
    pub reservations: BTreeMap<IpAddr, Holder>,
    /// `last_reserved_ip.<set>` equivalents.
    pub last: HashMap<usize, IpAddr>,
    locked: bool,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn require_lock(&self, what: &str) -> Result<(), StoreError> {
        if self.locked {
            Ok(())
        } else {
            Err(StoreError::new(
                format!("{what} without lock"),
                std::io::Error::other("lock not held"),
            ))
        }
    }
}

impl Store for MemStore {
    fn lock(&mut self) -> Result<(), StoreError> {
        if self.locked {
            return Err(StoreError::new(
                "lock",
                std::io::Error::other("already locked"),
            ));
        }
        self.locked = true;
        Ok(())
    }

    fn unlock(&mut self) -> Result<(), StoreError> {
        self.locked = false;
        Ok(())
    }

    fn reserve(
        &mut self,
        ip: IpAddr,
        id: &str,
        ifname: &str,
        set_index: usize,
    ) -> Result<bool, StoreError> {
        self.require_lock("reserve")?;
        if self.reservations.contains_key(&ip) {
            return Ok(false);
        }
        let holder = Holder::Attachment {
            id: id.to_owned(),
            ifname: ifname.to_owned(),
        };
        self.reservations.insert(ip, holder);
        self.last.insert(set_index, ip);
        Ok(true)
    }

    fn last_reserved(&mut self, set_index: usize) -> Result<Option<IpAddr>, StoreError> {
        self.require_lock("last_reserved")?;
        Ok(self.last.get(&set_index).copied())
    }

    fn reservations(&mut self) -> Result<Vec<Reservation>, StoreError> {
        self.require_lock("reservations")?;
        Ok(self
            .reservations
            .iter()
            .map(|(ip, holder)| Reservation {
                ip: *ip,
                holder: holder.clone(),
            })
            .collect())
    }

    fn taken(&mut self) -> Result<HashSet<IpAddr>, StoreError> {
        self.require_lock("taken")?;
        Ok(self.reservations.keys().copied().collect())
    }

    fn release(&mut self, ip: IpAddr) -> Result<bool, StoreError> {
        self.require_lock("release")?;
        Ok(self.reservations.remove(&ip).is_some())
    }

    fn remove_debris(&mut self) -> Result<Vec<String>, StoreError> {
        self.require_lock("remove_debris")?;
        Ok(Vec::new())
    }

    fn check_writable(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
