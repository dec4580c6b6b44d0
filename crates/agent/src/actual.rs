//! Pure translation between kernel objects (as the datapath crate reads them back) and
//! the plan entries of `weft_cluster`, so "what is programmed" can be diffed against
//! "what should be". Only entries weftd owns are translated.

use ipnet::IpNet;
use weft_cluster::{FdbPlan, MacAddr, NeighbourPlan, RoutePlan, VXLAN_DEVICE};
use weft_datapath::{FdbEntry, Neighbour, RouteSpec};

use crate::desired::ROUTE_PROTO;

/// Routes weftd programmed (marked with [`ROUTE_PROTO`]) as plan entries. A route via the
/// VXLAN device names it; any other output device is left out (host-gw plans name none).
pub fn owned_routes(routes: &[RouteSpec], vxlan_index: Option<u32>) -> Vec<RoutePlan> {
    routes
        .iter()
        .filter(|r| r.proto == Some(ROUTE_PROTO))
        .filter_map(|r| {
            Some(RoutePlan {
                dst: r.dst,
                via: r.gateway?,
                device: match (r.oif, vxlan_index) {
                    (Some(oif), Some(vx)) if oif == vx => Some(VXLAN_DEVICE.to_string()),
                    _ => None,
                },
                onlink: r.onlink,
            })
        })
        .collect()
}

/// Owned routes without a gateway cannot be expressed as plan entries; they are stale by
/// definition (weftd never makes them) and are removed by destination.
pub fn owned_routes_without_gateway(routes: &[RouteSpec]) -> Vec<IpNet> {
    routes
        .iter()
        .filter(|r| r.proto == Some(ROUTE_PROTO) && r.gateway.is_none())
        .map(|r| r.dst)
        .collect()
}

/// The kernel route for a plan entry.
pub fn route_spec(plan: &RoutePlan, vxlan_index: Option<u32>) -> RouteSpec {
    let mut spec = RouteSpec::to(plan.dst);
    spec.gateway = Some(plan.via);
    spec.oif = plan.device.as_ref().and(vxlan_index);
    spec.onlink = plan.onlink;
    spec.proto = Some(ROUTE_PROTO);
    spec
}

/// Permanent neighbours on the VXLAN device (the device is weftd's, so all are owned).
/// An entry without a MAC gets the zero MAC, which no plan wants, so it is replaced.
pub fn owned_neighbours(neighbours: &[Neighbour]) -> Vec<NeighbourPlan> {
    neighbours
        .iter()
        .filter(|n| n.permanent)
        .map(|n| NeighbourPlan {
            device: VXLAN_DEVICE.to_string(),
            ip: n.ip,
            mac: MacAddr(n.mac.unwrap_or_default()),
        })
        .collect()
}

/// Unicast `self` FDB entries with a remote destination on the VXLAN device.
pub fn owned_fdb(entries: &[FdbEntry]) -> Vec<FdbPlan> {
    entries
        .iter()
        .filter(|e| e.own && e.mac != [0; 6] && e.mac[0] & 1 == 0)
        .filter_map(|e| {
            Some(FdbPlan {
                device: VXLAN_DEVICE.to_string(),
                mac: MacAddr(e.mac),
                dst: e.dst?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, gw: Option<&str>, oif: u32, proto: u8, onlink: bool) -> RouteSpec {
        let mut r = RouteSpec::to(dst.parse().unwrap());
        r.gateway = gw.map(|g| g.parse().unwrap());
        r.oif = Some(oif);
        r.proto = Some(proto);
        r.onlink = onlink;
        r
    }

    #[test]
    fn routes_round_trip_and_foreign_ignored() {
        let vx = route("10.244.1.0/24", Some("10.244.1.0"), 5, ROUTE_PROTO, true);
        let gw = route("10.244.2.0/24", Some("198.18.0.12"), 2, ROUTE_PROTO, false);
        let kernel = route("198.18.0.0/24", None, 2, 2, false);
        let other = route("10.9.0.0/16", Some("198.18.0.1"), 2, 4, false);
        let plans = owned_routes(&[vx.clone(), gw.clone(), kernel, other], Some(5));
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].device.as_deref(), Some(VXLAN_DEVICE));
        assert!(plans[0].onlink);
        assert_eq!(plans[1].device, None);
        let back = route_spec(&plans[0], Some(5));
        assert!(back.is_satisfied_by(&vx));
        assert_eq!(route_spec(&plans[1], Some(5)).oif, None);
    }

    #[test]
    fn neighbours_and_fdb() {
        let n = [
            Neighbour {
                index: 5,
                ip: "10.244.1.0".parse().unwrap(),
                mac: Some([2, 0, 0, 0, 0, 2]),
                permanent: true,
            },
            Neighbour {
                index: 5,
                ip: "10.244.9.9".parse().unwrap(),
                mac: None,
                permanent: false,
            },
        ];
        let plans = owned_neighbours(&n);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].mac, MacAddr([2, 0, 0, 0, 0, 2]));
        let entry = |mac: [u8; 6], dst: Option<&str>| FdbEntry {
            index: 5,
            mac,
            dst: dst.map(|d| d.parse().unwrap()),
            permanent: true,
            own: true,
        };
        let fdb = owned_fdb(&[
            entry([2, 0, 0, 0, 0, 2], Some("198.18.0.11")),
            entry([0; 6], Some("198.18.0.12")),
            entry([0x33, 0x33, 0, 0, 0, 1], None),
        ]);
        assert_eq!(fdb.len(), 1);
        assert_eq!(
            fdb[0].dst,
            "198.18.0.11".parse::<std::net::IpAddr>().unwrap()
        );
    }
}
