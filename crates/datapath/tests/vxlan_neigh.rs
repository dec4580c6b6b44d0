//! Privileged: VXLAN device, permanent neighbours and `self` FDB entries.

mod common;

use common::ip;

use weft_datapath::netlink::IpFamily;
use weft_datapath::{VethSpec, VxlanSpec};

#[test]
fn vxlan_with_fdb_and_neighbours() {
    let mut n = common::ns("vxlan");
    let underlay =
        n.nl.create_veth(&VethSpec {
            name: "weftu0",
            peer_name: "weftu1",
            peer_netns: None,
            mtu: None,
            mac: None,
            peer_mac: None,
            group: None,
        })
        .unwrap();
    n.nl.add_addr(underlay.index, "198.18.0.1/24".parse().unwrap(), false)
        .unwrap();
    n.nl.set_up(underlay.index, true).unwrap();

    let vx_mac = [0x02, 0x11, 0, 0, 0, 1];
    let vx =
        n.nl.create_vxlan(&VxlanSpec {
            name: "weftvx0",
            vni: 42,
            local: Some(ip("198.18.0.1")),
            port: 4789,
            learning: false,
            underlay: Some(underlay.index),
            mtu: Some(1450),
            mac: Some(vx_mac),
        })
        .unwrap();
    assert_eq!(vx.kind.as_deref(), Some("vxlan"));
    assert_eq!(
        (vx.mtu, vx.mac, vx.link),
        (1450, Some(vx_mac), Some(underlay.index))
    );
    n.nl.set_up(vx.index, true).unwrap();
    let details =
        n.ns.exec(std::process::Command::new("ip").args(["-d", "link", "show", "weftvx0"]))
            .unwrap();
    let details = String::from_utf8_lossy(&details.stdout);
    assert!(
        details.contains("id 42") && details.contains("dstport 4789"),
        "{details}"
    );
    assert!(details.contains("nolearning"), "{details}");

    let remote_mac = [0x02, 0xaa, 0, 0, 0, 2];
    let vtep = ip("198.18.0.2");
    n.nl.add_fdb(vx.index, remote_mac, vtep).unwrap();
    assert!(
        n.nl.add_fdb(vx.index, remote_mac, vtep)
            .unwrap_err()
            .is_exists()
    );
    n.nl.replace_fdb(vx.index, remote_mac, vtep).unwrap();
    let fdb = n.nl.fdb(Some(vx.index)).unwrap();
    let entry = fdb.iter().find(|e| e.mac == remote_mac).unwrap();
    assert_eq!(entry.dst, Some(vtep));
    assert!(entry.own && entry.permanent, "{entry:?}");

    let remote_ip = ip("10.244.1.0");
    n.nl.add_neighbour(vx.index, remote_ip, remote_mac).unwrap();
    assert!(
        n.nl.add_neighbour(vx.index, remote_ip, remote_mac)
            .unwrap_err()
            .is_exists()
    );
    n.nl.replace_neighbour(vx.index, remote_ip, remote_mac)
        .unwrap();
    let neigh = n.nl.neighbours(IpFamily::V4, Some(vx.index)).unwrap();
    assert_eq!(neigh.len(), 1);
    assert_eq!(
        (neigh[0].ip, neigh[0].mac, neigh[0].permanent),
        (remote_ip, Some(remote_mac), true)
    );

    let v6_ip = ip("fd00:244:1::");
    n.nl.add_neighbour(vx.index, v6_ip, remote_mac).unwrap();
    let neigh6 = n.nl.neighbours(IpFamily::V6, Some(vx.index)).unwrap();
    assert!(neigh6.iter().any(|x| x.ip == v6_ip && x.permanent));

    assert!(n.nl.delete_neighbour(vx.index, remote_ip).unwrap());
    assert!(!n.nl.delete_neighbour(vx.index, remote_ip).unwrap());
    assert!(n.nl.delete_fdb(vx.index, remote_mac, Some(vtep)).unwrap());
    assert!(!n.nl.delete_fdb(vx.index, remote_mac, Some(vtep)).unwrap());
    assert!(
        n.nl.fdb(Some(vx.index))
            .unwrap()
            .iter()
            .all(|e| e.mac != remote_mac)
    );
    common::close(vec![n]);
}
