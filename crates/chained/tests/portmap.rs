//! `weft-portmap` after the reference `bridge` + `host-local` (a mixed chain), with real
//! traffic: a responder in the pod, clients on a simulated remote node (198.18.0.0/24 over
//! a veth), on the node itself (node address and localhost), and in the pod (hairpin).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test helpers may fail loudly

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use weft_datapath::{Netlink, NetnsFd, VethSpec};
use weft_runtime::{Attachment, Runtime, request_conf};
use weft_testns::TestNs;

const NODE_V4: &str = "198.18.0.1";
const NODE_V6: &str = "fd18::1";
const TIMEOUT: Duration = Duration::from_secs(3);

struct Lab {
    node: TestNs,
    remote: TestNs,
    dir: tempfile::TempDir,
    rt: Runtime,
}

fn lab(tag: &str) -> Lab {
    let node = TestNs::new(&format!("{tag}-node")).expect("creating namespaces needs root");
    let remote = TestNs::new(&format!("{tag}-rem")).unwrap();
    let node_fd = NetnsFd::open(node.path()).unwrap();
    let remote_fd = NetnsFd::open(remote.path()).unwrap();
    let mut nl = Netlink::open_in(&node_fd).unwrap();
    let up = nl
        .create_veth(&VethSpec {
            name: "up0",
            peer_name: "up0",
            peer_netns: Some(&remote_fd),
            mtu: None,
            mac: None,
            peer_mac: None,
            group: None,
        })
        .unwrap();
    nl.add_addr(up.index, "198.18.0.1/24".parse().unwrap(), true)
        .unwrap();
    nl.add_addr(up.index, "fd18::1/64".parse().unwrap(), true)
        .unwrap();
    nl.set_up(up.index, true).unwrap();
    let mut rnl = Netlink::open_in(&remote_fd).unwrap();
    let rup = rnl.link_by_name("up0").unwrap();
    rnl.add_addr(rup.index, "198.18.0.2/24".parse().unwrap(), true)
        .unwrap();
    rnl.add_addr(rup.index, "fd18::2/64".parse().unwrap(), true)
        .unwrap();
    rnl.set_up(rup.index, true).unwrap();
    let dir = tempdir();
    let rt = runtime(&node, &dir.path().join("cache"));
    Lab {
        node,
        remote,
        dir,
        rt,
    }
}

impl Lab {
    fn list(&self, name: &str, subnets: &[&str], portmap: Value) -> Value {
        let mut bridge = ref_bridge("pm0", subnets, &self.dir.path().join("ipam"));
        bridge["isDefaultGateway"] = json!(true);
        conflist(name, vec![bridge, portmap])
    }

    fn nft_table(&self) -> String {
        let out = self
            .node
            .exec(std::process::Command::new("nft").args(["list", "table", "inet", "weft_portmap"]))
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn portmap() -> Value {
    json!({"type": "weft-portmap", "capabilities": {"portMappings": true}})
}

fn with_ports(att: &mut Attachment, ports: Value) {
    att.capability_args.insert("portMappings".into(), ports);
}

/// Serves `tag` to every TCP connection on port 80 and answers every UDP datagram on
/// port 53 with `tag`, from sockets created inside the pod namespace.
fn serve(pod: &TestNs, tag: &'static str) {
    // `[::]` sockets are dual-stack (net.ipv6.bindv6only=0 in a new namespace).
    let (tcp, udp) = pod.run(|| {
        (
            TcpListener::bind("[::]:80").unwrap(),
            UdpSocket::bind("[::]:53").unwrap(),
        )
    });
    std::thread::spawn(move || {
        for mut s in tcp.incoming().flatten() {
            let _ = s.write_all(tag.as_bytes());
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(tag.as_bytes(), from);
        }
    });
}

fn tcp_get(ns: &TestNs, to: &str) -> Result<String, String> {
    ns.run(|| {
        let addr: SocketAddr = to.parse().unwrap();
        let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    })
}

fn udp_get(ns: &TestNs, to: &str) -> Result<String, String> {
    ns.run(|| {
        let addr: SocketAddr = to.parse().unwrap();
        let bind = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let s = UdpSocket::bind(bind).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.send_to(b"hi", addr).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        let n = s.recv(&mut buf).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

#[test]
fn hostports_reach_the_pod_from_everywhere_and_del_leaves_nothing() {
    let lab = lab("pm");
    let pod = TestNs::new("pm-pod").unwrap();
    serve(&pod, "pod1");
    let list = lab.list("pmnet", &["10.80.0.0/24", "fd80::/64"], portmap());
    let mut att = attachment("pm1", &pod);
    with_ports(
        &mut att,
        json!([
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}
        ]),
    );
    let result = lab.rt.add(&list, &att).unwrap();
    // The output is the main plugin's result, unchanged.
    assert_eq!(result["ips"].as_array().unwrap().len(), 2);
    let gw = "10.80.0.1";
    for (from, to) in [
        (&lab.remote, format!("{NODE_V4}:8080")),
        (&lab.remote, format!("[{NODE_V6}]:8080")),
        (&lab.node, format!("{NODE_V4}:8080")),
        (&lab.node, "127.0.0.1:8080".to_string()),
        (&lab.node, format!("[{NODE_V6}]:8080")),
        (&pod, format!("{NODE_V4}:8080")),
        (&pod, format!("{gw}:8080")),
        (&pod, format!("[{NODE_V6}]:8080")),
    ] {
        assert_eq!(tcp_get(from, &to).as_deref(), Ok("pod1"), "TCP to {to}");
    }
    for to in [format!("{NODE_V4}:5353"), format!("[{NODE_V6}]:5353")] {
        assert_eq!(
            udp_get(&lab.remote, &to).as_deref(),
            Ok("pod1"),
            "UDP to {to}"
        );
    }
    let ct = lab
        .node
        .exec(std::process::Command::new("conntrack").args([
            "-L",
            "-p",
            "udp",
            "--orig-port-dst",
            "5353",
        ]))
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ct.stdout).contains("dport=5353"),
        "flows are tracked"
    );
    lab.rt.check(&list, &att).unwrap();

    // A repeated ADD of the plugin alone is accepted and changes nothing.
    let before = lab.nft_table();
    assert_eq!(
        run_alone(&lab.rt, &list, 1, "ADD", &att, Some(&result)),
        result
    );
    assert_eq!(lab.nft_table(), before);

    // DEL without runtimeConfig and without prevResult removes every mapping.
    let bare = Attachment {
        capability_args: Default::default(),
        ..att.clone()
    };
    let (_, del) = request_conf(&list, &list["plugins"][1], &bare, None).unwrap();
    assert!(del.get("runtimeConfig").is_none() && del.get("prevResult").is_none());
    for _ in 0..2 {
        run_alone(&lab.rt, &list, 1, "DEL", &bare, None);
    }
    let table = lab.nft_table();
    assert!(!table.contains("comment \"pm1 "), "{table}");
    // The UDP flows of the removed mapping were flushed from conntrack.
    let ct = lab
        .node
        .exec(std::process::Command::new("conntrack").args([
            "-L",
            "-p",
            "udp",
            "--orig-port-dst",
            "5353",
        ]))
        .unwrap();
    let flows = String::from_utf8_lossy(&ct.stdout).into_owned();
    assert!(!flows.contains("dport=5353"), "{flows}");
    assert!(!table.contains("8080"), "{table}");
    assert!(tcp_get(&lab.remote, &format!("{NODE_V4}:8080")).is_err());
    assert!(
        lab.rt.check(&list, &att).is_err(),
        "CHECK notices the missing mappings"
    );
    lab.rt.del(&list, &att).unwrap();
}

#[test]
fn a_taken_host_port_is_refused_and_nothing_changes() {
    let lab = lab("pmc");
    let pod1 = TestNs::new("pmc-pod1").unwrap();
    let pod2 = TestNs::new("pmc-pod2").unwrap();
    serve(&pod1, "pod1");
    let list = lab.list("pmc", &["10.81.0.0/24"], portmap());
    let ports = json!([{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]);
    let mut a1 = attachment("pmc1", &pod1);
    with_ports(&mut a1, ports.clone());
    let mut a2 = attachment("pmc2", &pod2);
    with_ports(
        &mut a2,
        json!([
            {"hostPort": 9000, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}
        ]),
    );
    lab.rt.add(&list, &a1).unwrap();
    let before = lab.nft_table();
    let err = lab.rt.add(&list, &a2).unwrap_err().to_string();
    assert!(err.contains("tcp/8081") && err.contains("pmc1"), "{err}");
    assert_eq!(lab.nft_table(), before, "a refused ADD changes nothing");
    // The runtime's cleanup DEL of the refused pod must not touch the holder's mapping.
    lab.rt.del(&list, &a2).unwrap();
    assert_eq!(
        tcp_get(&lab.remote, &format!("{NODE_V4}:8081")).as_deref(),
        Ok("pod1")
    );
    // A hostIP-specific mapping of the same port on another address is not a conflict.
    let mut a3 = attachment("pmc3", &pod2);
    with_ports(
        &mut a3,
        json!([{"hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": NODE_V4}]),
    );
    lab.rt.add(&list, &a3).unwrap();
    lab.rt.check(&list, &a3).unwrap();
    lab.rt.del(&list, &a3).unwrap();
    lab.rt.del(&list, &a1).unwrap();
}

#[test]
fn gc_removes_mappings_of_attachments_no_longer_listed() {
    let lab = lab("pmg");
    let pod1 = TestNs::new("pmg-pod1").unwrap();
    let pod2 = TestNs::new("pmg-pod2").unwrap();
    serve(&pod1, "pod1");
    serve(&pod2, "pod2");
    let list = lab.list("pmg", &["10.82.0.0/24"], portmap());
    let mut a1 = attachment("pmg1", &pod1);
    with_ports(&mut a1, json!([{"hostPort": 8082, "containerPort": 80}]));
    let mut a2 = attachment("pmg2", &pod2);
    with_ports(&mut a2, json!([{"hostPort": 8083, "containerPort": 80}]));
    lab.rt.add(&list, &a1).unwrap();
    lab.rt.add(&list, &a2).unwrap();
    assert_eq!(
        tcp_get(&lab.remote, "198.18.0.1:8083").as_deref(),
        Ok("pod2")
    );
    // GC is a 1.1.0 verb the reference bridge does not speak: run it on portmap alone.
    let gc_list = json!({"cniVersion": "1.1.0", "name": "pmg", "plugins": [portmap()]});
    // Mappings of another network are never collected.
    let other = json!({"cniVersion": "1.1.0", "name": "other", "plugins": [portmap()]});
    lab.rt.gc(&other, &[]).unwrap();
    assert_eq!(
        tcp_get(&lab.remote, "198.18.0.1:8083").as_deref(),
        Ok("pod2")
    );
    lab.rt
        .gc(&gc_list, &[("pmg1".into(), "eth0".into())])
        .unwrap();
    assert_eq!(
        tcp_get(&lab.remote, "198.18.0.1:8082").as_deref(),
        Ok("pod1")
    );
    assert!(tcp_get(&lab.remote, "198.18.0.1:8083").is_err());
    assert!(!lab.nft_table().contains("8083"));
    lab.rt.del(&list, &a2).unwrap();
    lab.rt.del(&list, &a1).unwrap();
    assert!(!lab.nft_table().contains("comment \"pmg"));
}

#[test]
fn refuses_bad_configs_and_passes_through_without_mappings() {
    let lab = lab("pmb");
    let pod = TestNs::new("pmb-pod").unwrap();
    let att = attachment("pmb1", &pod);
    // Without prevResult (first in the chain) ADD fails.
    let alone = json!({"cniVersion": "1.0.0", "name": "pmb", "plugins": [portmap()]});
    let mut with = att.clone();
    with_ports(&mut with, json!([{"hostPort": 8084, "containerPort": 80}]));
    assert!(lab.rt.add(&alone, &with).is_err());
    // No mappings: the main plugin's result passes through unchanged.
    let list = lab.list("pmb", &["10.83.0.0/24"], portmap());
    let main_only = conflist("pmb", vec![list["plugins"][0].clone()]);
    let result = lab.rt.add(&list, &att).unwrap();
    assert_eq!(result["ips"][0]["address"], "10.83.0.2/24");
    let _ = main_only;
    lab.rt.del(&list, &att).unwrap();
    for (conf, ports) in [
        (
            json!({"markMasqBit": 32}),
            json!([{"hostPort": 8084, "containerPort": 80}]),
        ),
        (
            json!({"markMasqBit": 1, "externalSetMarkChain": "KUBE_MARK_MASQ"}),
            json!([{"hostPort": 8084, "containerPort": 80}]),
        ),
        (json!({}), json!([{"hostPort": 0, "containerPort": 80}])),
        (
            json!({"conditionsV4": ["-s", "1.2.3.4"]}),
            json!([{"hostPort": 8084, "containerPort": 80}]),
        ),
    ] {
        let mut pm = portmap();
        for (k, v) in conf.as_object().unwrap() {
            pm[k] = v.clone();
        }
        let list = lab.list("pmb", &["10.83.0.0/24"], pm);
        let mut a = att.clone();
        with_ports(&mut a, ports.clone());
        assert!(lab.rt.add(&list, &a).is_err(), "{conf} {ports}");
        lab.rt.del(&list, &a).unwrap();
    }
    // conditions in nftables syntax are applied: only the remote node's subnet is mapped.
    serve(&pod, "podb");
    let mut pm = portmap();
    pm["conditionsV4"] = json!(["ip saddr 198.18.0.0/24"]);
    let list = lab.list("pmb", &["10.83.0.0/24"], pm);
    let mut a = att.clone();
    with_ports(&mut a, json!([{"hostPort": 8085, "containerPort": 80}]));
    lab.rt.add(&list, &a).unwrap();
    assert_eq!(
        tcp_get(&lab.remote, "198.18.0.1:8085").as_deref(),
        Ok("podb")
    );
    assert!(tcp_get(&lab.node, "127.0.0.1:8085").is_err());
    lab.rt.del(&list, &a).unwrap();
}
