//! IPAM usage of this node's pod subnets, for the metrics: read from the plugin's on-disk
//! store (host-local layout) without taking its lock, so an ADD in progress is never
//! delayed by a scrape; a count that is one reservation behind is fine for a gauge.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use weft_ipam::{DiskStore, Range, Store};
use weft_observe::RangeUsage;

/// Network name of the conflist weftd writes (`"name": "weft"`): the store's directory.
const NETWORK: &str = "weft";

/// Reservations and capacity per subnet (host-local defaults: gateway, network and, on
/// IPv4, broadcast are never handed out).
pub fn ipam_usage(data_dir: &Path, subnets: &[IpNet]) -> Vec<RangeUsage> {
    let taken: Vec<IpAddr> = match DiskStore::open(data_dir, NETWORK) {
        Ok(mut store) => store
            .taken()
            .map(|t| t.into_iter().collect())
            .unwrap_or_default(),
        Err(e) => {
            tracing::debug!(error = %e, "IPAM store not readable yet");
            Vec::new()
        }
    };
    usage(subnets, &taken)
}

fn usage(subnets: &[IpNet], taken: &[IpAddr]) -> Vec<RangeUsage> {
    subnets
        .iter()
        .map(|subnet| RangeUsage {
            range: subnet.to_string(),
            used: taken.iter().filter(|ip| subnet.contains(*ip)).count() as u64,
            capacity: Range::build(*subnet, None, None, None)
                .map(|r| u64::try_from(r.allocatable_count()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_subnet_with_host_local_capacity() {
        let subnets: Vec<IpNet> = vec![
            "10.244.1.0/24".parse().unwrap(),
            "fd00:10:244:1::/120".parse().unwrap(),
        ];
        let taken: Vec<IpAddr> = ["10.244.1.2", "10.244.1.3", "fd00:10:244:1::2", "10.9.9.9"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let u = usage(&subnets, &taken);
        assert_eq!((u[0].used, u[0].capacity), (2, 253));
        assert_eq!((u[1].used, u[1].capacity), (1, 254));
    }

    #[test]
    fn a_missing_store_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let u = ipam_usage(
            &dir.path().join("nope"),
            &["10.244.1.0/24".parse().unwrap()],
        );
        assert_eq!(u[0].used, 0);
    }
}
