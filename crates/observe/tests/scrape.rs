//! Scrapes a running server over loopback like Prometheus and the kubelet do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_observe::{ApplyMode, Health, Metrics, Observe, RangeUsage, serve};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

/// Parses the exposition: every sample line is `name[{labels}] value` with a numeric
/// value, and belongs to a family declared by a `# TYPE` line before it.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut families = Vec::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            families.iter().any(|f| name.starts_with(f.as_str())),
            "{name} has no TYPE line before it"
        );
        samples.insert(series.to_string(), value);
    }
    samples
}

#[tokio::test(flavor = "current_thread")]
async fn health_readiness_and_metrics_over_http() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let observe = Arc::new(Observe {
        metrics: Metrics::new(),
        health: Health::new(Duration::from_secs(60)),
    });
    tokio::spawn(serve(listener, Arc::clone(&observe)));

    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (status, _, body) = get(addr, "/readyz").await;
    assert_eq!((status, body.as_str()), (503, "starting\n"));
    observe.health.set_ready(Ok(()));
    assert_eq!(get(addr, "/readyz").await.0, 200);

    observe.metrics.set_ipam(&[
        RangeUsage {
            range: "10.244.1.0/24".into(),
            used: 3,
            capacity: 253,
        },
        RangeUsage {
            range: "fd00:10:244:1::/64".into(),
            used: 3,
            capacity: 1 << 20,
        },
    ]);
    observe
        .metrics
        .observe_policy_apply(ApplyMode::Full, 0.03, true);
    let (status, head, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("openmetrics-text"),
        "{head}"
    );
    let samples = parse(&body);
    assert_eq!(samples["weft_pods_wired"], 6.0);
    assert_eq!(
        samples["weft_ipam_addresses_used{range=\"fd00:10:244:1::/64\"}"],
        3.0
    );
    assert_eq!(
        samples["weft_policy_apply_duration_seconds_count{mode=\"full\"}"],
        1.0
    );
    assert_eq!(get(addr, "/nope").await.0, 404);
}
