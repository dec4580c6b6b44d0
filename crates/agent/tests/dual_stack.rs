//! Dual-stack cluster over an IPv4 underlay: IPv6 pod subnets ride the same VXLAN device.

mod common;

use common::Cluster;
use ipnet::IpNet;
use weft_datapath::netlink::IpFamily;

const DUAL: &str = r#"{"clusterCidrs":["10.244.0.0/16","fd00:10:244::/56"],
    "backend":{"type":"vxlan"}}"#;

#[test]
fn dual_stack_vxlan() {
    let mut c = Cluster::new(DUAL, &["198.18.0.10/24", "198.18.0.11/24"], 5);
    c.start_all();
    c.wait_healthy(0, 1);
    c.wait_healthy(1, 1);
    let b = &c.nodes[1];
    let v6: IpNet = b
        .subnets()
        .into_iter()
        .find(|s| s.addr().is_ipv6())
        .unwrap();
    assert_eq!(v6.prefix_len(), 64);
    let conf = common::file_json(&b.dir.join("net.d/10-weft.conflist"));
    assert_eq!(
        conf["plugins"][0]["ipam"]["ranges"][1][0]["subnet"],
        v6.to_string()
    );

    let a = &c.nodes[0];
    let fwd = a.exec(&["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]);
    assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "1");
    let routes = a.weft_routes();
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert!(routes.iter().any(|r| r.dst == v6 && r.onlink));
    let mut nl = a.nl();
    let vx = nl.link_by_name("weft.vxlan").unwrap();
    let neigh6 = nl.neighbours(IpFamily::V6, Some(vx.index)).unwrap();
    assert!(
        neigh6.iter().any(|n| n.permanent && n.ip == v6.network()),
        "{neigh6:?}"
    );

    assert!(a.ping(&b.gateway_v4(), 2), "IPv4 over vxlan");
    let std::net::IpAddr::V6(net6) = v6.network() else {
        unreachable!()
    };
    let gw6 = std::net::Ipv6Addr::from(u128::from(net6) + 1).to_string();
    let ok = a.exec(&["ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", &gw6]);
    assert!(
        ok.status.success(),
        "IPv6 over vxlan to {gw6}: {ok:?}\n{}",
        c.log(0)
    );
    c.close();
}

const DUAL_HOST_GW: &str = r#"{"clusterCidrs":["10.244.0.0/16","fd00:10:244::/56"],
    "backend":{"type":"host-gw"}}"#;

#[test]
fn dual_stack_host_gw_uses_the_underlay_of_each_family() {
    let addrs = [
        "198.18.0.10/24,2001:2::10/64",
        "198.18.0.11/24,2001:2::11/64",
    ];
    let mut c = Cluster::new(DUAL_HOST_GW, &addrs, 5);
    c.start_all();
    c.wait_healthy(0, 1);
    c.wait_healthy(1, 1);
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let routes = a.weft_routes();
    assert_eq!(routes.len(), 2, "{routes:?}");
    let v4 = routes.iter().find(|r| r.dst.addr().is_ipv4()).unwrap();
    let v6 = routes.iter().find(|r| r.dst.addr().is_ipv6()).unwrap();
    assert_eq!(v4.gateway, Some("198.18.0.11".parse().unwrap()));
    assert_eq!(v6.gateway, Some("2001:2::11".parse().unwrap()));
    assert!(a.ping(&b.gateway_v4(), 2));
    let std::net::IpAddr::V6(net6) = v6.dst.network() else {
        unreachable!()
    };
    let gw6 = std::net::Ipv6Addr::from(u128::from(net6) + 1).to_string();
    let ok = a.exec(&["ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", &gw6]);
    assert!(ok.status.success(), "IPv6 host-gw to {gw6}: {ok:?}");
    c.close();
}

#[test]
fn vxlan_over_an_ipv6_underlay() {
    let cfg = r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"vxlan"}}"#;
    let mut c = Cluster::new(cfg, &["2001:2::10/64", "2001:2::11/64"], 5);
    c.start_all();
    c.wait_healthy(0, 1);
    c.wait_healthy(1, 1);
    let a = &c.nodes[0];
    let vx = a.nl().link_by_name("weft.vxlan").unwrap();
    assert_eq!(vx.mtu, 1430, "IPv6 underlay: 1500 - 70");
    let conf = common::file_json(&a.dir.join("net.d/10-weft.conflist"));
    assert_eq!(conf["plugins"][0]["mtu"], 1430);
    let fdb = a.nl().fdb(Some(vx.index)).unwrap();
    let peer: std::net::IpAddr = "2001:2::11".parse().unwrap();
    assert!(fdb.iter().any(|f| f.dst == Some(peer)), "{fdb:?}");
    assert!(
        a.ping(&c.nodes[1].gateway_v4(), 2),
        "IPv4 pods over an IPv6 underlay"
    );
    c.close();
}
