//! weftd's /healthz, /readyz and /metrics, scraped inside its node namespace (weftd serves
//! on the loopback of the namespace it programs).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers may fail loudly

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Cluster, wait_until};

const VXLAN: &str = r#"{"clusterCidrs":["10.244.0.0/16"],"backend":{"type":"vxlan"}}"#;

fn http_get(c: &Cluster, i: usize, path: &str) -> Option<(u16, String)> {
    c.nodes[i].ns.run(|| {
        let mut s = TcpStream::connect("127.0.0.1:9962").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        Some((head.split(' ').nth(1)?.parse().ok()?, body.to_string()))
    })
}

/// Samples by series name, from the text exposition.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn health_readiness_and_metrics_of_a_running_weftd() {
    let mut c = Cluster::new(VXLAN, &["198.18.0.10/24", "198.18.0.11/24"], 30);
    c.start_all();
    c.wait_healthy(0, 1);
    c.wait_healthy(1, 1);
    // A reservation of the plugin's store, as `weft-ipam` writes it (host-local layout).
    let subnet = c.nodes[0].subnets()[0];
    let ipam = c.nodes[0].dir.join("ipam/weft");
    std::fs::create_dir_all(&ipam).unwrap();
    let ip = match subnet.network() {
        std::net::IpAddr::V4(n) => std::net::Ipv4Addr::from(u32::from(n) + 5),
        _ => unreachable!(),
    };
    std::fs::write(ipam.join(ip.to_string()), "cid\neth0").unwrap();

    wait_until("readyz answers 200", Duration::from_secs(20), || {
        http_get(&c, 0, "/readyz").is_some_and(|(code, _)| code == 200)
    });
    assert_eq!(http_get(&c, 0, "/healthz").unwrap().0, 200);
    let range = format!("weft_ipam_addresses_used{{range=\"{subnet}\"}}");
    let mut text = String::new();
    wait_until(
        "metrics show the reservation",
        Duration::from_secs(20),
        || {
            text = http_get(&c, 0, "/metrics")
                .map(|(_, b)| b)
                .unwrap_or_default();
            samples(&text).get(&range) == Some(&1.0)
        },
    );
    let m = samples(&text);
    assert_eq!(m["weft_peers"], 1.0, "{text}");
    assert_eq!(m["weft_pods_wired"], 1.0);
    assert_eq!(
        m[&format!("weft_ipam_addresses_capacity{{range=\"{subnet}\"}}")],
        253.0
    );
    assert_eq!(m["weft_datastore_up"], 1.0);
    assert!(m["weft_reconcile_duration_seconds_count"] >= 1.0, "{text}");
    assert_eq!(m["weft_datastore_watch_up{kind=\"networkpolicies\"}"], 1.0);
    assert!(
        m["weft_policy_apply_duration_seconds_count{mode=\"full\"}"] >= 1.0,
        "{text}"
    );
    assert!(m.contains_key("weft_nft_rules"));
    c.close();
}
