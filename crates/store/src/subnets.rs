//! Cluster operations on any [`Datastore`]: per-node subnet leases and node records.
//!
//! Kinds used: [`KIND_SUBNETS`] (key = subnet in CIDR notation, value = [`SubnetLease`])
//! and [`KIND_NODES`] (key = node name, value = [`NodeRecord`]). Both are attached to the
//! node's store lease, so a node that stops renewing disappears from the cluster.

use ipnet::IpNet;
use weft_cluster::{ClusterConfig, NodeRecord, SubnetLease, choose_subnet_with_hints};

use crate::datastore::Datastore;
use crate::error::StoreError;
use crate::types::{Condition, Entry, LeaseId, PutOptions, PutOutcome};

/// Kind holding one [`SubnetLease`] per leased subnet.
pub const KIND_SUBNETS: &str = "subnets";
/// Kind holding one [`NodeRecord`] per node.
pub const KIND_NODES: &str = "nodes";

/// Claim attempts per CIDR before giving up; each failed attempt means another node won
/// a race, so the cluster as a whole always progresses.
const MAX_CLAIM_ATTEMPTS: u32 = 100;

/// A subnet lease with the store bookkeeping needed to take it over safely.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLease {
    /// What is leased to whom.
    pub lease: SubnetLease,
    /// Revision for compare-and-swap.
    pub mod_revision: i64,
    /// The store lease it is attached to.
    pub store_lease: Option<LeaseId>,
}

/// All current subnet leases. Entries with an unreadable value still count as taken (under
/// an empty node name) so a damaged record never leads to a double allocation.
pub async fn list_subnet_leases(store: &dyn Datastore) -> Result<Vec<StoredLease>, StoreError> {
    let listing = store.list(KIND_SUBNETS).await?;
    Ok(listing.entries.iter().filter_map(stored_lease).collect())
}

fn stored_lease(entry: &Entry) -> Option<StoredLease> {
    let lease = match entry.parse::<SubnetLease>() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(key = %entry.key, error = %e, "unreadable subnet lease, keeping it reserved");
            SubnetLease {
                subnet: entry.key.parse().ok()?,
                node: String::new(),
            }
        }
    };
    Some(StoredLease {
        lease,
        mod_revision: entry.mod_revision,
        store_lease: entry.lease,
    })
}

/// Claims one pod subnet per cluster CIDR for `node`, attached to `lease`.
///
/// A subnet the node already holds (e.g. from before an agent restart, under an older
/// store lease) is kept and moved to `lease`; otherwise the first free one is created with
/// compare-and-swap, retrying when another node wins the race. Safe to call again at any
/// time (idempotent), which is how an agent recovers after its lease expired.
pub async fn claim_node_subnets(
    store: &dyn Datastore,
    cfg: &ClusterConfig,
    node: &str,
    lease: LeaseId,
) -> Result<Vec<IpNet>, StoreError> {
    claim_node_subnets_with_hints(store, cfg, node, lease, &[]).await
}

/// Like [`claim_node_subnets`], preferring free subnets from `hints` (the subnets the node
/// used before, e.g. from its node-local facts file) over the first free ones, so a node
/// whose lease expired during an outage gets its old subnets back if nobody took them.
pub async fn claim_node_subnets_with_hints(
    store: &dyn Datastore,
    cfg: &ClusterConfig,
    node: &str,
    lease: LeaseId,
    hints: &[IpNet],
) -> Result<Vec<IpNet>, StoreError> {
    let mut claimed = Vec::with_capacity(cfg.cluster_cidrs.len());
    for cidr in &cfg.cluster_cidrs {
        let prefix = cfg.node_prefix_for(cidr);
        claimed.push(claim_in_cidr(store, *cidr, prefix, node, lease, hints).await?);
    }
    Ok(claimed)
}

async fn claim_in_cidr(
    store: &dyn Datastore,
    cidr: IpNet,
    node_prefix: u8,
    node: &str,
    lease: LeaseId,
    hints: &[IpNet],
) -> Result<IpNet, StoreError> {
    for _ in 0..MAX_CLAIM_ATTEMPTS {
        let existing = list_subnet_leases(store).await?;
        let plain: Vec<SubnetLease> = existing.iter().map(|s| s.lease.clone()).collect();
        let subnet = choose_subnet_with_hints(cidr, node_prefix, &plain, node, hints)?;
        let key = subnet.to_string();
        let value = serde_json::to_value(SubnetLease {
            subnet,
            node: node.to_string(),
        })?;
        let current = existing.iter().find(|s| s.lease.subnet == subnet);
        let condition = match current {
            Some(c) if c.store_lease == Some(lease) => return Ok(subnet),
            Some(c) => Condition::ModRevision(c.mod_revision),
            None => Condition::Absent,
        };
        let opts = PutOptions {
            lease: Some(lease),
            condition,
        };
        match store.put(KIND_SUBNETS, &key, &value, opts).await? {
            PutOutcome::Written { .. } => return Ok(subnet),
            PutOutcome::Conflict { .. } => {
                tracing::debug!(%subnet, node, "lost subnet race, retrying")
            }
        }
    }
    Err(StoreError::Contention {
        cidr,
        attempts: MAX_CLAIM_ATTEMPTS,
    })
}

/// Releases every subnet `node` holds (e.g. when a node is removed for good). Only deletes
/// leases still held by `node` (compare-and-swap on the revision).
pub async fn release_node_subnets(
    store: &dyn Datastore,
    node: &str,
) -> Result<Vec<IpNet>, StoreError> {
    let mut released = Vec::new();
    for held in list_subnet_leases(store).await? {
        if held.lease.node != node {
            continue;
        }
        let key = held.lease.subnet.to_string();
        if store
            .delete(
                KIND_SUBNETS,
                &key,
                Condition::ModRevision(held.mod_revision),
            )
            .await?
        {
            released.push(held.lease.subnet);
        }
    }
    Ok(released)
}

/// Publishes (creates or replaces) this node's record, attached to `lease`.
pub async fn publish_node(
    store: &dyn Datastore,
    record: &NodeRecord,
    lease: LeaseId,
) -> Result<(), StoreError> {
    let value = serde_json::to_value(record)?;
    let opts = PutOptions {
        lease: Some(lease),
        condition: Condition::Always,
    };
    store.put(KIND_NODES, &record.name, &value, opts).await?;
    Ok(())
}

/// Removes a node's record.
pub async fn remove_node(store: &dyn Datastore, name: &str) -> Result<bool, StoreError> {
    store.delete(KIND_NODES, name, Condition::Always).await
}

/// All node records (unreadable ones are skipped with a warning).
pub async fn list_nodes(store: &dyn Datastore) -> Result<Vec<NodeRecord>, StoreError> {
    let listing = store.list(KIND_NODES).await?;
    Ok(listing.entries.iter().filter_map(parse_node).collect())
}

/// Decodes a node record from a list or watch entry; `None` (with a warning) if unreadable.
pub fn parse_node(entry: &Entry) -> Option<NodeRecord> {
    match entry.parse::<NodeRecord>() {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(key = %entry.key, error = %e, "skipping unreadable node record");
            None
        }
    }
}
