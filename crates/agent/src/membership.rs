//! This node's place in the cluster: its store lease (kept alive in the background), its
//! pod subnets and its published node record.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ipnet::IpNet;
use weft_cluster::{ClusterConfig, NodeRecord};
use weft_store::subnets::{claim_node_subnets_with_hints, publish_node};
use weft_store::{Datastore, LeaseKeeper, LeaseState};

/// Subnets assigned outside weft must lie in the cluster CIDRs weft routes and masquerades
/// by: otherwise kube-controller-manager's `--cluster-cidr` and weft's config disagree.
fn check_assigned(cfg: &ClusterConfig, assigned: Vec<IpNet>) -> Result<Vec<IpNet>> {
    if let Some(outside) = assigned
        .iter()
        .find(|s| !cfg.cluster_cidrs.iter().any(|c| c.contains(*s)))
    {
        anyhow::bail!(
            "podCIDR {outside} is outside the cluster CIDRs {:?} \
             (kube-controller-manager --cluster-cidr must match weft's clusterCidrs)",
            cfg.cluster_cidrs
        );
    }
    if assigned.is_empty() {
        anyhow::bail!("no pod subnets assigned to this node yet");
    }
    Ok(assigned)
}

/// A live claim: the lease keeper and the subnets attached to its lease.
#[derive(Debug)]
pub struct Membership {
    keeper: LeaseKeeper,
    /// Subnets held under the lease, one per cluster CIDR.
    pub subnets: Vec<IpNet>,
}

impl Membership {
    /// Grants a lease and claims one subnet per cluster CIDR under it.
    ///
    /// A subnet the node already holds (an earlier weftd's lease has not expired yet) is
    /// taken over; else one from `hints` (the previous node.json) if still free; else the
    /// first free one.
    pub async fn claim(
        store: &Arc<dyn Datastore>,
        cfg: &ClusterConfig,
        node: &str,
        ttl: Duration,
        hints: &[IpNet],
    ) -> Result<Membership> {
        let lease = store.grant_lease(ttl).await.context("grant lease")?;
        // Kubernetes assigns node subnets itself (Node.spec.podCIDRs); the key-value stores
        // leave it to weft's leasing.
        let subnets = match store
            .assigned_subnets(node)
            .await
            .context("assigned subnets")?
        {
            Some(assigned) => check_assigned(cfg, assigned)?,
            None => claim_node_subnets_with_hints(store.as_ref(), cfg, node, lease, hints)
                .await
                .context("claim subnets")?,
        };
        let keeper = LeaseKeeper::spawn(Arc::clone(store), lease, renew_interval(ttl));
        tracing::info!(%lease, ?subnets, "subnets claimed");
        Ok(Membership { keeper, subnets })
    }

    /// Publishes `record` under this membership's lease.
    pub async fn publish(&self, store: &Arc<dyn Datastore>, record: &NodeRecord) -> Result<()> {
        publish_node(store.as_ref(), record, self.keeper.lease())
            .await
            .context("publish node record")
    }

    /// Receiver for lease state changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<LeaseState> {
        self.keeper.subscribe()
    }

    /// Current lease state.
    pub fn state(&self) -> LeaseState {
        self.keeper.state()
    }
}

/// Renew three times per TTL so one lost renewal never expires the lease.
fn renew_interval(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(200))
}

/// Whether two records say the same thing (fields newer agents add are not compared).
pub fn same_record(a: &NodeRecord, b: &NodeRecord) -> bool {
    a.name == b.name
        && a.underlay_ip == b.underlay_ip
        && a.underlay_prefix_len == b.underlay_prefix_len
        && a.underlay_secondary == b.underlay_secondary
        && a.vxlan_mac == b.vxlan_mac
        && a.subnets == b.subnets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_is_a_third() {
        assert_eq!(
            renew_interval(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            renew_interval(Duration::from_millis(300)),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn record_comparison_ignores_extra() {
        let a = NodeRecord::new("n", "198.18.0.10".parse().unwrap());
        let mut b = a.clone();
        b.extra.insert("zone".into(), serde_json::json!("x"));
        assert!(same_record(&a, &b));
        b.subnets.push("10.244.0.0/24".parse().unwrap());
        assert!(!same_record(&a, &b));
    }
}
