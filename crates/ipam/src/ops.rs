//! The public IPAM operations. Each takes the store lock for its whole read-modify-write
//! and releases it on every path.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::allocator::{Allocation, allocate};
use crate::config::{IpamConfig, Route};
use crate::dns::Dns;
use crate::error::IpamError;
use crate::names::{validate_container_id, validate_ifname};
use crate::store::disk::DiskStore;
use crate::store::{Holder, Store};

/// What ADD returns to the plugin: one allocation per range set, plus routes and DNS.
#[derive(Debug, Clone, PartialEq)]
pub struct IpamResult {
    /// Addresses in range-set order.
    pub allocations: Vec<Allocation>,
    /// `ipam.routes`, verbatim.
    pub routes: Vec<Route>,
    /// DNS from `resolvConf`, if configured.
    pub dns: Option<Dns>,
}

/// Outcome of [`gc`]: what was removed and what could not be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Released addresses.
    pub removed: Vec<IpAddr>,
    /// Removed leftovers of interrupted writes (file names).
    pub debris: Vec<String>,
    /// Failures; GC keeps going after each.
    pub errors: Vec<String>,
}

/// Usage of one range, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeUsage {
    /// Range set index.
    pub set_index: usize,
    /// The range, human readable.
    pub range: String,
    /// Addresses that can be handed out (excludes network, broadcast, gateway).
    pub total: u128,
    /// Of those, how many are reserved.
    pub used: u128,
}

/// Opens the disk store configured by `cfg` (`<dataDir>/<name>`).
pub fn open_store(cfg: &IpamConfig) -> Result<DiskStore, IpamError> {
    DiskStore::open(&cfg.data_dir, &cfg.network)
}

/// Runs `f` with the store locked, unlocking afterwards even when `f` fails.
pub fn with_lock<S: Store + ?Sized, R>(
    store: &mut S,
    f: impl FnOnce(&mut S) -> Result<R, IpamError>,
) -> Result<R, IpamError> {
    store.lock()?;
    let result = f(store);
    let unlocked = store.unlock();
    let value = result?;
    unlocked?;
    Ok(value)
}

fn validate_attachment(id: &str, ifname: &str) -> Result<(), IpamError> {
    validate_container_id(id)?;
    validate_ifname(ifname)
}

/// ADD: allocates (or, when repeated, returns) the addresses of (`id`, `ifname`).
pub fn add<S: Store + ?Sized>(
    cfg: &IpamConfig,
    store: &mut S,
    id: &str,
    ifname: &str,
    requested: &[IpAddr],
) -> Result<IpamResult, IpamError> {
    validate_attachment(id, ifname)?;
    let allocations = with_lock(store, |s| allocate(cfg, s, id, ifname, requested))?;
    Ok(IpamResult {
        allocations,
        routes: cfg.routes.clone(),
        dns: cfg.dns.clone(),
    })
}

/// DEL: releases what (`id`, `ifname`) holds, or legacy id-only records of `id` when it
/// holds nothing, and removes leftovers of interrupted writes. Nothing found is success.
pub fn del<S: Store + ?Sized>(
    store: &mut S,
    id: &str,
    ifname: &str,
) -> Result<Vec<IpAddr>, IpamError> {
    validate_attachment(id, ifname)?;
    with_lock(store, |s| {
        let released = s.release_attachment(id, ifname);
        // Debris is only garbage; its cleanup must not hide the release result.
        let debris = s.remove_debris();
        let released = released?;
        debris?;
        Ok(released)
    })
}

/// CHECK: returns the addresses held by (`id`, `ifname`) (or legacy records of `id`);
/// [`IpamError::NotReserved`] when there are none.
pub fn check<S: Store + ?Sized>(
    store: &mut S,
    id: &str,
    ifname: &str,
) -> Result<Vec<IpAddr>, IpamError> {
    validate_attachment(id, ifname)?;
    let held = with_lock(store, |s| {
        let exact = s.find(id, ifname)?;
        if !exact.is_empty() {
            return Ok(exact);
        }
        Ok(s.reservations()?
            .into_iter()
            .filter(|r| r.holder == Holder::LegacyId(id.to_owned()))
            .map(|r| r.ip)
            .collect::<Vec<_>>())
    })?;
    if held.is_empty() {
        return Err(IpamError::NotReserved {
            id: id.to_owned(),
            ifname: ifname.to_owned(),
        });
    }
    Ok(held)
}

fn keep_reservation(holder: &Holder, valid: &HashSet<(String, String)>) -> bool {
    match holder {
        Holder::Attachment { id, ifname } => valid.contains(&(id.clone(), ifname.clone())),
        // An id-only record cannot say which interface it belongs to: keep it while any
        // attachment of that container is valid.
        Holder::LegacyId(id) => valid.iter().any(|(valid_id, _)| valid_id == id),
        Holder::Unknown => false,
    }
}

/// GC: releases every reservation whose holder is not in `valid` (container id, ifname),
/// every empty or unreadable record, and every leftover temp file. Keeps going after
/// errors and reports them.
pub fn gc<S: Store + ?Sized>(store: &mut S, valid: &HashSet<(String, String)>) -> GcReport {
    let mut report = GcReport::default();
    let outcome = with_lock(store, |s| {
        match s.remove_debris() {
            Ok(names) => report.debris = names,
            Err(e) => report.errors.push(e.to_string()),
        }
        for reservation in s.reservations()? {
            if keep_reservation(&reservation.holder, valid) {
                continue;
            }
            match s.release(reservation.ip) {
                Ok(true) => report.removed.push(reservation.ip),
                Ok(false) => {}
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        // After the releases, so index entries of released addresses go too.
        match s.compact() {
            Ok(names) => report.debris.extend(names),
            Err(e) => report.errors.push(e.to_string()),
        }
        Ok(())
    });
    if let Err(e) = outcome {
        report.errors.push(e.to_string());
    }
    report
}

/// STATUS: `Ok` when the store is writable and every range set has a free address;
/// otherwise [`IpamError::Unavailable`] saying which check failed.
pub fn status<S: Store + ?Sized>(cfg: &IpamConfig, store: &mut S) -> Result<(), IpamError> {
    with_lock(store, |s| {
        s.check_writable()
            .map_err(|e| IpamError::Unavailable(format!("store not writable: {e}")))?;
        let taken = s.taken()?;
        for (index, set) in cfg.range_sets.iter().enumerate() {
            if set.first_free(None, &taken).is_none() {
                return Err(IpamError::Unavailable(format!(
                    "range set {index} ({set}) has no free address"
                )));
            }
        }
        Ok(())
    })
}

/// Per-range totals and usage, in configuration order.
pub fn usage<S: Store + ?Sized>(
    cfg: &IpamConfig,
    store: &mut S,
) -> Result<Vec<RangeUsage>, IpamError> {
    let taken = with_lock(store, |s| Ok(s.taken()?))?;
    let mut out = Vec::new();
    for (set_index, set) in cfg.range_sets.iter().enumerate() {
        for range in &set.ranges {
            let used = taken.iter().filter(|ip| range.is_allocatable(**ip)).count() as u128;
            out.push(RangeUsage {
                set_index,
                range: range.to_string(),
                total: range.allocatable_count(),
                used,
            });
        }
    }
    Ok(out)
}
