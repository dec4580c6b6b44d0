//! Privileged: bridge + veth (peer created directly in the pod namespace), addresses,
//! routes, read-back, ping, errno mapping and delete idempotency.

mod common;

use common::{ip, net};

use weft_datapath::netlink::IpFamily;
use weft_datapath::{BridgePortFlags, RouteScopeKind, RouteSpec, VethSpec};

#[test]
fn pod_wiring_round_trip() {
    let mut host = common::ns("host");
    let mut pod = common::ns("pod");
    let own_ns = std::fs::read_link("/proc/thread-self/ns/net").unwrap();

    let br = host.nl.create_bridge("weftbr0", Some(1400)).unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert!(br.up, "LinkBridge::new sets the bridge up");
    host.nl
        .add_addr(br.index, net("10.99.0.1/24"), false)
        .unwrap();
    host.nl.add_addr(br.index, net("fd99::1/64"), true).unwrap();

    let peer_mac = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01];
    let veth = host
        .nl
        .create_veth(&VethSpec {
            name: "weftv0",
            peer_name: "eth0",
            peer_netns: Some(&pod.fd),
            mtu: Some(1400),
            mac: None,
            peer_mac: Some(peer_mac),
            group: Some(0x7765_6674),
        })
        .unwrap();
    assert_eq!(veth.kind.as_deref(), Some("veth"));
    assert_eq!(veth.group, 0x7765_6674, "group set in the creating message");
    assert!(
        veth.link_netnsid.is_some(),
        "peer must live in another netns"
    );
    host.nl.set_master(veth.index, Some(br.index)).unwrap();
    host.nl
        .set_bridge_port(
            veth.index,
            BridgePortFlags {
                hairpin: Some(true),
                learning: Some(true),
            },
        )
        .unwrap();
    host.nl.set_up(veth.index, true).unwrap();
    let veth = host.nl.link_by_index(veth.index).unwrap();
    assert_eq!(veth.master, Some(br.index));
    let port = veth.bridge_port.unwrap();
    assert_eq!((port.hairpin, port.learning), (Some(true), Some(true)));
    assert!(veth.up);
    assert!(host.nl.find_link("eth0").unwrap().is_none());

    let eth0 = pod.nl.link_by_name("eth0").unwrap();
    assert_eq!(eth0.mac, Some(peer_mac));
    assert_eq!(eth0.mtu, 1400);
    assert_eq!(veth.link, Some(eth0.index));
    assert!(pod.nl.find_link("weftv0").unwrap().is_none());
    pod.nl
        .add_addr(eth0.index, net("10.99.0.2/24"), false)
        .unwrap();
    pod.nl
        .add_addr(eth0.index, net("fd99::2/64"), true)
        .unwrap();
    pod.nl.set_up(eth0.index, true).unwrap();

    let v6 = pod.nl.addrs(Some(eth0.index), Some(IpFamily::V6)).unwrap();
    let pod_v6 = v6.iter().find(|a| a.addr == net("fd99::2/64")).unwrap();
    assert!(pod_v6.nodad && !pod_v6.tentative, "{pod_v6:?}");
    let v4 = pod.nl.addrs(Some(eth0.index), Some(IpFamily::V4)).unwrap();
    assert_eq!(v4.len(), 1);
    assert_eq!(v4[0].addr, net("10.99.0.2/24"));

    let mut default_v4 = RouteSpec::to(net("0.0.0.0/0"));
    default_v4.gateway = Some(ip("10.99.0.1"));
    default_v4.oif = Some(eth0.index);
    pod.nl.add_route(&default_v4).unwrap();
    let mut default_v6 = RouteSpec::to(net("::/0"));
    default_v6.gateway = Some(ip("fd99::1"));
    default_v6.oif = Some(eth0.index);
    pod.nl.add_route(&default_v6).unwrap();
    let mut onlink = RouteSpec::to(net("10.244.1.0/24"));
    onlink.gateway = Some(ip("10.123.0.1"));
    onlink.oif = Some(eth0.index);
    onlink.onlink = true;
    onlink.metric = Some(50);
    onlink.mtu = Some(1350);
    onlink.advmss = Some(1300);
    pod.nl.add_route(&onlink).unwrap();

    let routes = pod.nl.routes(IpFamily::V4, None).unwrap();
    let got = routes
        .iter()
        .find(|r| r.dst == net("10.244.1.0/24"))
        .unwrap();
    assert_eq!(got.gateway, onlink.gateway);
    assert!(got.onlink);
    assert_eq!(
        (got.metric, got.mtu, got.advmss),
        (Some(50), Some(1350), Some(1300))
    );
    let got = routes.iter().find(|r| r.is_default()).unwrap();
    assert_eq!(
        (got.gateway, got.oif),
        (default_v4.gateway, Some(eth0.index))
    );
    let connected = routes
        .iter()
        .find(|r| r.dst == net("10.99.0.0/24"))
        .unwrap();
    assert_eq!(connected.scope, RouteScopeKind::Link);
    let routes6 = pod.nl.routes(IpFamily::V6, None).unwrap();
    assert!(
        routes6
            .iter()
            .any(|r| r.is_default() && r.gateway == default_v6.gateway)
    );

    // Carrier reaches the bridge port asynchronously; ping once it forwards.
    common::wait_until("host veth oper up", || {
        host.nl.link_by_index(veth.index).unwrap().oper_up
    });
    common::wait_until("pod eth0 oper up", || {
        pod.nl.link_by_index(eth0.index).unwrap().oper_up
    });
    common::run_ok(&pod.ns, &["ping", "-c1", "-W1", "10.99.0.1"]);
    common::run_ok(&pod.ns, &["ping", "-6", "-c1", "-W1", "fd99::1"]);
    common::run_ok(&host.ns, &["ping", "-c1", "-W1", "10.99.0.2"]);

    // errno mapping for ensure_* callers
    assert!(
        pod.nl
            .add_addr(eth0.index, net("10.99.0.2/24"), false)
            .unwrap_err()
            .is_exists()
    );
    pod.nl
        .replace_addr(eth0.index, net("10.99.0.2/24"), false)
        .unwrap();
    assert!(
        host.nl
            .create_bridge("weftbr0", None)
            .unwrap_err()
            .is_exists()
    );
    let clash = VethSpec {
        name: "weftv1",
        peer_name: "eth0",
        peer_netns: Some(&pod.fd),
        mtu: None,
        mac: None,
        peer_mac: None,
        group: None,
    };
    let err = host.nl.create_veth(&clash).unwrap_err();
    assert!(err.is_exists(), "peer name taken in pod: {err}");
    assert!(
        host.nl.find_link("weftv1").unwrap().is_none(),
        "nothing half-created"
    );
    assert!(pod.nl.add_route(&onlink).unwrap_err().is_exists());
    pod.nl.replace_route(&onlink).unwrap();
    assert!(host.nl.link_by_name("nosuch0").unwrap_err().is_not_found());
    assert!(host.nl.set_up(999_999, true).unwrap_err().is_not_found());

    // tolerant deletes
    let read_back = routes6.iter().find(|r| r.is_default()).unwrap();
    assert!(default_v6.is_satisfied_by(read_back));
    assert!(pod.nl.delete_route(&default_v6).unwrap());
    assert!(!pod.nl.delete_route(&default_v6).unwrap());
    assert!(pod.nl.delete_route(&onlink).unwrap());
    assert!(!pod.nl.delete_route(&onlink).unwrap());
    assert!(pod.nl.delete_addr(eth0.index, net("10.99.0.2/24")).unwrap());
    assert!(!pod.nl.delete_addr(eth0.index, net("10.99.0.2/24")).unwrap());
    assert!(host.nl.delete_link(veth.index).unwrap());
    assert!(!host.nl.delete_link(veth.index).unwrap());
    assert!(!host.nl.delete_link_by_name("weftv0").unwrap());
    assert!(
        pod.nl.find_link("eth0").unwrap().is_none(),
        "peer goes with its veth"
    );

    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        own_ns
    );
    common::close(vec![host, pod]);
}

#[test]
fn link_attribute_changes() {
    let mut n = common::ns("attrs");
    let a =
        n.nl.create_veth(&VethSpec {
            name: "weftva",
            peer_name: "weftvb",
            peer_netns: None,
            mtu: None,
            mac: None,
            peer_mac: None,
            group: None,
        })
        .unwrap();
    assert!(!a.up, "LinkVeth::new does not set up");
    let mac = [0x02, 0, 0, 0, 0, 0x42];
    n.nl.set_mtu(a.index, 1300).unwrap();
    n.nl.set_mac(a.index, mac).unwrap();
    n.nl.set_promisc(a.index, true).unwrap();
    n.nl.set_alias(a.index, "weft:ctr-1/eth0").unwrap();
    assert_eq!(
        n.nl.link_by_index(a.index).unwrap().alias.as_deref(),
        Some("weft:ctr-1/eth0")
    );
    n.nl.set_alias(a.index, "").unwrap();
    assert_eq!(n.nl.link_by_index(a.index).unwrap().alias, None);
    let a = n.nl.link_by_name("weftva").unwrap();
    assert_eq!((a.mtu, a.mac, a.promisc), (1300, Some(mac), true));
    let b = n.nl.link_by_name("weftvb").unwrap();
    assert_eq!(a.link, Some(b.index));
    assert_eq!(a.link_netnsid, None);
    let names: Vec<String> = n.nl.links().unwrap().into_iter().map(|l| l.name).collect();
    assert!(names.iter().any(|x| x == "lo") && names.iter().any(|x| x == "weftvb"));
    assert!(n.nl.link_by_name("bad/name").is_err());
    common::close(vec![n]);
}
