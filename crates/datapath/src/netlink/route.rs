//! Routes in any table.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RouteProtocol, RouteScope, RouteType,
};

use super::link::tolerate_missing;
use super::{CREATE_EXCL, CREATE_REPLACE, IpFamily, Netlink};
use crate::error::Result;

/// The main routing table.
pub const TABLE_MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;
/// RTPROT_STATIC, the protocol used when a spec names none.
pub const PROTO_STATIC: u8 = 4;

/// `RTA_TABLE` carries 32-bit ids; the header byte holds RT_TABLE_COMPAT for larger ones.
const RT_TABLE_COMPAT: u8 = 252;

/// Route scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteScopeKind {
    /// Via a gateway or default (`scope global`).
    #[default]
    Universe,
    /// Directly reachable on the link (`scope link`).
    Link,
    /// Local to this host.
    Host,
}

/// A unicast route: what to add or delete, and what [`Netlink::routes`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination; `0.0.0.0/0` or `::/0` is the default route.
    pub dst: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Scope.
    pub scope: RouteScopeKind,
    /// RTNH_F_ONLINK: the gateway is on the link even without a covering subnet route.
    pub onlink: bool,
    /// Routing table; `None` = main.
    pub table: Option<u32>,
    /// Metric (RTA_PRIORITY).
    pub metric: Option<u32>,
    /// Path MTU (RTAX_MTU).
    pub mtu: Option<u32>,
    /// Advertised MSS (RTAX_ADVMSS).
    pub advmss: Option<u32>,
    /// Protocol number (RTPROT_*); `None` = static on add.
    pub proto: Option<u8>,
    /// Preferred source address.
    pub prefsrc: Option<IpAddr>,
}

impl RouteSpec {
    /// A route to `dst` with everything else unset.
    pub fn to(dst: IpNet) -> RouteSpec {
        RouteSpec {
            dst,
            gateway: None,
            oif: None,
            scope: RouteScopeKind::Universe,
            onlink: false,
            table: None,
            metric: None,
            mtu: None,
            advmss: None,
            proto: None,
            prefsrc: None,
        }
    }

    /// Whether `actual` (as read back by [`Netlink::routes`]) is this route: equal
    /// destination, and equal in every optional field this spec sets. Kernel-filled fields
    /// the spec leaves unset (table, protocol, metric) are not compared; `table: None`
    /// means main. Meant for CNI CHECK.
    pub fn is_satisfied_by(&self, actual: &RouteSpec) -> bool {
        fn same<T: PartialEq>(want: Option<T>, got: Option<T>) -> bool {
            want.is_none() || want == got
        }
        self.dst == actual.dst
            && self.scope == actual.scope
            && (!self.onlink || actual.onlink)
            && self.table.unwrap_or(TABLE_MAIN) == actual.table.unwrap_or(TABLE_MAIN)
            && same(self.gateway, actual.gateway)
            && same(self.oif, actual.oif)
            && same(self.metric, actual.metric)
            && same(self.mtu, actual.mtu)
            && same(self.advmss, actual.advmss)
            && same(self.proto, actual.proto)
            && same(self.prefsrc, actual.prefsrc)
    }

    /// Whether this is a default route.
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }
}

impl Netlink {
    /// Adds a route; EEXIST if an equal one exists.
    pub fn add_route(&mut self, route: &RouteSpec) -> Result<()> {
        let op = format!("add route {}", route.dst);
        self.request(
            &op,
            RouteNetlinkMessage::NewRoute(route_message(route)),
            CREATE_EXCL,
        )
    }

    /// Adds a route or replaces the one with the same destination, table and metric.
    pub fn replace_route(&mut self, route: &RouteSpec) -> Result<()> {
        let op = format!("replace route {}", route.dst);
        let msg = route_message(route);
        self.request(&op, RouteNetlinkMessage::NewRoute(msg), CREATE_REPLACE)
    }

    /// Deletes the route matching dst, table, and whichever of gateway, oif and metric are
    /// set; `Ok(false)` if none matched (ESRCH).
    pub fn delete_route(&mut self, route: &RouteSpec) -> Result<bool> {
        let mut msg = route_message(route);
        // "Any scope / any protocol" as `ip route del` does, so a read-back spec matches.
        msg.header.scope = RouteScope::NoWhere;
        msg.header.protocol = RouteProtocol::Unspec;
        msg.header.flags = RouteFlags::empty();
        msg.attributes.retain(|a| {
            !matches!(
                a,
                RouteAttribute::Metrics(_) | RouteAttribute::PrefSource(_)
            )
        });
        let op = format!("delete route {}", route.dst);
        tolerate_missing(self.request(&op, RouteNetlinkMessage::DelRoute(msg), 0))
    }

    /// Unicast routes of one family in `table` (`None` = main).
    pub fn routes(&mut self, family: IpFamily, table: Option<u32>) -> Result<Vec<RouteSpec>> {
        let mut query = RouteMessage::default();
        query.header.address_family = family.to_netlink();
        let replies = self.dump("list routes", RouteNetlinkMessage::GetRoute(query))?;
        let table = table.unwrap_or(TABLE_MAIN);
        Ok(replies
            .iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewRoute(msg) if msg.header.kind == RouteType::Unicast => {
                    parse_route(msg)
                }
                _ => None,
            })
            .filter(|r| r.table.unwrap_or(TABLE_MAIN) == table)
            .collect())
    }
}

fn route_message(route: &RouteSpec) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let header = &mut msg.header;
    header.address_family = IpFamily::of(route.dst.addr()).to_netlink();
    header.destination_prefix_length = route.dst.prefix_len();
    header.kind = RouteType::Unicast;
    header.protocol = RouteProtocol::from(route.proto.unwrap_or(PROTO_STATIC));
    header.scope = match route.scope {
        RouteScopeKind::Universe => RouteScope::Universe,
        RouteScopeKind::Link => RouteScope::Link,
        RouteScopeKind::Host => RouteScope::Host,
    };
    let table = route.table.unwrap_or(TABLE_MAIN);
    header.table = u8::try_from(table).unwrap_or(RT_TABLE_COMPAT);
    if route.onlink {
        header.flags = RouteFlags::Onlink;
    }
    let attrs = &mut msg.attributes;
    attrs.push(RouteAttribute::Table(table));
    if route.dst.prefix_len() > 0 {
        attrs.push(RouteAttribute::Destination(RouteAddress::from(
            route.dst.network(),
        )));
    }
    if let Some(gateway) = route.gateway {
        attrs.push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    }
    if let Some(oif) = route.oif {
        attrs.push(RouteAttribute::Oif(oif));
    }
    if let Some(metric) = route.metric {
        attrs.push(RouteAttribute::Priority(metric));
    }
    if let Some(src) = route.prefsrc {
        attrs.push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    let mut metrics = Vec::new();
    if let Some(mtu) = route.mtu {
        metrics.push(RouteMetric::Mtu(mtu));
    }
    if let Some(advmss) = route.advmss {
        metrics.push(RouteMetric::Advmss(advmss));
    }
    if !metrics.is_empty() {
        attrs.push(RouteAttribute::Metrics(metrics));
    }
    msg
}

fn parse_route(msg: &RouteMessage) -> Option<RouteSpec> {
    let header = &msg.header;
    let mut dst_addr = match IpFamily::from_netlink(header.address_family)? {
        IpFamily::V4 => IpAddr::from([0u8; 4]),
        IpFamily::V6 => IpAddr::from([0u8; 16]),
    };
    let mut route = RouteSpec::to(IpNet::new(dst_addr, 0).ok()?);
    route.table = Some(u32::from(header.table));
    route.proto = Some(u8::from(header.protocol));
    route.onlink = header.flags.contains(RouteFlags::Onlink);
    route.scope = match header.scope {
        RouteScope::Link => RouteScopeKind::Link,
        RouteScope::Host => RouteScopeKind::Host,
        _ => RouteScopeKind::Universe,
    };
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(addr) => dst_addr = route_ip(addr)?,
            RouteAttribute::Gateway(addr) => route.gateway = route_ip(addr),
            RouteAttribute::PrefSource(addr) => route.prefsrc = route_ip(addr),
            RouteAttribute::Oif(oif) => route.oif = Some(*oif),
            RouteAttribute::Priority(metric) => route.metric = Some(*metric),
            RouteAttribute::Table(table) => route.table = Some(*table),
            RouteAttribute::Metrics(metrics) => read_metrics(&mut route, metrics),
            _ => {}
        }
    }
    route.dst = IpNet::new(dst_addr, header.destination_prefix_length).ok()?;
    Some(route)
}

fn read_metrics(route: &mut RouteSpec, metrics: &[RouteMetric]) {
    for metric in metrics {
        match metric {
            RouteMetric::Mtu(mtu) => route.mtu = Some(*mtu),
            RouteMetric::Advmss(advmss) => route.advmss = Some(*advmss),
            _ => {}
        }
    }
}

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trips_through_parser() {
        let mut spec = RouteSpec::to("10.244.1.0/24".parse().unwrap());
        spec.gateway = Some("10.244.1.0".parse().unwrap());
        spec.oif = Some(7);
        spec.onlink = true;
        spec.metric = Some(100);
        spec.mtu = Some(1350);
        spec.advmss = Some(1310);
        spec.table = Some(1000);
        spec.proto = Some(PROTO_STATIC);
        let msg = route_message(&spec);
        assert_eq!(msg.header.table, RT_TABLE_COMPAT);
        assert_eq!(parse_route(&msg), Some(spec));
    }

    #[test]
    fn satisfied_by_ignores_unset_fields() {
        let mut want = RouteSpec::to("0.0.0.0/0".parse().unwrap());
        want.gateway = Some("10.0.0.1".parse().unwrap());
        let mut got = want.clone();
        got.table = Some(TABLE_MAIN);
        got.proto = Some(PROTO_STATIC);
        got.oif = Some(3);
        assert!(want.is_satisfied_by(&got));
        got.gateway = Some("10.0.0.2".parse().unwrap());
        assert!(!want.is_satisfied_by(&got));
        want.gateway = None;
        want.table = Some(100);
        assert!(!want.is_satisfied_by(&got));
    }

    #[test]
    fn default_route_has_no_destination_attribute() {
        let spec = RouteSpec::to("::/0".parse().unwrap());
        assert!(spec.is_default());
        let msg = route_message(&spec);
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
        assert_eq!(parse_route(&msg).unwrap().dst, spec.dst);
    }
}
