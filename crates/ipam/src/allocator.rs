//! The allocation decision, over any [`Store`]. The caller holds the store lock.
//!
//! Deviation from host-local, on purpose: a repeated ADD of the same (container id,
//! ifname) returns the addresses it already holds instead of failing, so a runtime retry
//! after a lost reply converges (our idempotency rule, style guide "Idempotency").

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::IpamConfig;
use crate::error::IpamError;
use crate::range::RangeSet;
use crate::store::Store;

/// One address handed to an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The host address with its subnet's prefix length, e.g. `10.1.2.2/24`.
    pub address: IpNet,
    /// Gateway of the range the address came from.
    pub gateway: Option<IpAddr>,
    /// Index of the range set (result `ips` order).
    pub set_index: usize,
}

/// What the allocator decided for one range set.
enum Choice {
    /// The attachment already holds this address (repeated ADD).
    Existing(IpAddr),
    /// A requested address, still to be reserved.
    Requested(IpAddr),
    /// Take the next free address in round-robin order.
    Next,
}

fn unavailable(ip: IpAddr, reason: impl Into<String>) -> IpamError {
    IpamError::RequestedUnavailable {
        ip,
        reason: reason.into(),
    }
}

/// Maps each requested IP to the first range set containing it, checking it can be given.
fn place_requested(
    sets: &[RangeSet],
    requested: &[IpAddr],
    existing: &HashMap<usize, IpAddr>,
    taken: &HashSet<IpAddr>,
) -> Result<HashMap<usize, IpAddr>, IpamError> {
    let mut placed = HashMap::new();
    for &ip in requested {
        let Some((index, range)) = sets
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.range_for(ip).map(|r| (i, r)))
        else {
            return Err(unavailable(ip, "it is not in any configured range"));
        };
        if let Some(reason) = range.reserved_reason(ip) {
            return Err(unavailable(ip, reason));
        }
        if let Some(&held) = existing.get(&index) {
            if held != ip {
                return Err(unavailable(
                    ip,
                    format!("this attachment already holds {held} in range set {index}"),
                ));
            }
        } else if taken.contains(&ip) {
            return Err(unavailable(ip, "it is already reserved"));
        }
        if let Some(other) = placed.insert(index, ip) {
            return Err(unavailable(
                ip,
                format!("{other} was also requested from range set {index}"),
            ));
        }
    }
    Ok(placed)
}

/// Chooses, per set, the existing, requested or next address. Pure, no store access.
fn plan(
    sets: &[RangeSet],
    requested: &[IpAddr],
    held: &[IpAddr],
    taken: &HashSet<IpAddr>,
) -> Result<Vec<Choice>, IpamError> {
    let mut existing = HashMap::new();
    for &ip in held {
        if let Some(index) = sets.iter().position(|s| s.contains(ip)) {
            existing.entry(index).or_insert(ip);
        }
    }
    let requested = place_requested(sets, requested, &existing, taken)?;
    Ok((0..sets.len())
        .map(|i| match (existing.get(&i), requested.get(&i)) {
            (Some(&ip), _) => Choice::Existing(ip),
            (None, Some(&ip)) => Choice::Requested(ip),
            (None, None) => Choice::Next,
        })
        .collect())
}

fn allocation(set: &RangeSet, set_index: usize, ip: IpAddr) -> Result<Allocation, IpamError> {
    let range = set
        .range_for(ip)
        .ok_or_else(|| unavailable(ip, format!("not in range set {set_index}")))?;
    let address = IpNet::new(ip, range.subnet.prefix_len())
        .map_err(|e| IpamError::InvalidConfig(format!("{ip}: {e}")))?;
    Ok(Allocation {
        address,
        gateway: Some(range.gateway),
        set_index,
    })
}

/// Reserves the next free address of `set` in round-robin order.
fn reserve_next<S: Store + ?Sized>(
    set: &RangeSet,
    set_index: usize,
    store: &mut S,
    taken: &mut HashSet<IpAddr>,
    id: &str,
    ifname: &str,
) -> Result<IpAddr, IpamError> {
    let last = store.last_reserved(set_index)?;
    for ip in set.candidates(last) {
        if taken.contains(&ip) {
            continue;
        }
        // The taken set is only a snapshot; the store's atomic reserve is the truth.
        taken.insert(ip);
        if store.reserve(ip, id, ifname, set_index)? {
            return Ok(ip);
        }
    }
    Err(IpamError::Exhausted {
        set_index,
        ranges: set.to_string(),
    })
}

fn reserve_choice<S: Store + ?Sized>(
    cfg: &IpamConfig,
    index: usize,
    choice: &Choice,
    store: &mut S,
    taken: &mut HashSet<IpAddr>,
    id: &str,
    ifname: &str,
) -> Result<(IpAddr, bool), IpamError> {
    let set = cfg
        .range_sets
        .get(index)
        .ok_or_else(|| IpamError::InvalidConfig(format!("no range set {index}")))?;
    match *choice {
        Choice::Existing(ip) => Ok((ip, false)),
        Choice::Requested(ip) => {
            if store.reserve(ip, id, ifname, index)? {
                Ok((ip, true))
            } else {
                Err(unavailable(ip, "it is already reserved"))
            }
        }
        Choice::Next => Ok((reserve_next(set, index, store, taken, id, ifname)?, true)),
    }
}

/// The allocations of a repeated ADD, when `held` covers every range set.
fn existing_allocations(cfg: &IpamConfig, held: &[IpAddr]) -> Option<Vec<Allocation>> {
    cfg.range_sets
        .iter()
        .enumerate()
        .map(|(index, set)| {
            let ip = held.iter().copied().find(|ip| set.contains(*ip))?;
            allocation(set, index, ip).ok()
        })
        .collect()
}

/// Gives (`id`, `ifname`) one address per range set of `cfg`, honouring `requested`.
/// On any error every address reserved by this call is released again (best effort).
/// The caller must hold the store lock and have validated `id` and `ifname`.
pub fn allocate<S: Store + ?Sized>(
    cfg: &IpamConfig,
    store: &mut S,
    id: &str,
    ifname: &str,
    requested: &[IpAddr],
) -> Result<Vec<Allocation>, IpamError> {
    let held = store.find(id, ifname)?;
    if requested.is_empty()
        && let Some(existing) = existing_allocations(cfg, &held)
    {
        // Repeated ADD: answer without scanning the whole store.
        return Ok(existing);
    }
    let mut taken = store.taken()?;
    let choices = plan(&cfg.range_sets, requested, &held, &taken)?;
    let mut reserved_now = Vec::new();
    let mut out = Vec::with_capacity(choices.len());
    for (index, choice) in choices.iter().enumerate() {
        let step = reserve_choice(cfg, index, choice, store, &mut taken, id, ifname).and_then(
            |(ip, fresh)| {
                if fresh {
                    reserved_now.push(ip);
                }
                let set = cfg
                    .range_sets
                    .get(index)
                    .ok_or_else(|| IpamError::InvalidConfig(format!("no range set {index}")))?;
                allocation(set, index, ip)
            },
        );
        match step {
            Ok(a) => out.push(a),
            Err(e) => {
                for ip in reserved_now {
                    // Best effort: the original error is the one worth reporting.
                    let _ = store.release(ip);
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "allocator_tests.rs"]
mod tests;
