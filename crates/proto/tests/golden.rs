//! Golden files: one internal result → every supported version → compared as JSON values.
//! `UPDATE_GOLDEN=1 cargo test -p weft-proto --test golden` rewrites them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use serde_json::Value;
use weft_proto::{
    CniError, CniResult, CniVersion, Dns, Interface, IpConfig, Route, SUPPORTED, VersionInfo, codes,
};

/// bridge-like dual-stack result: [bridge, host veth, container], both ips on index 2.
fn bridge_dual_stack() -> CniResult {
    CniResult {
        interfaces: vec![
            Interface {
                name: "cni0".into(),
                mac: Some("0a:58:0a:01:00:01".into()),
                ..Default::default()
            },
            Interface {
                name: "veth1a2b3c4d".into(),
                mac: Some("be:11:22:33:44:55".into()),
                mtu: Some(1500),
                ..Default::default()
            },
            Interface {
                name: "eth0".into(),
                mac: Some("0a:58:0a:01:00:05".into()),
                sandbox: Some("/run/netns/blue".into()),
                mtu: Some(1500),
                socket_path: Some("/run/x.sock".into()),
                pci_id: Some("0000:04:00.5".into()),
            },
        ],
        ips: vec![
            IpConfig {
                address: "10.1.0.5/16".parse().unwrap(),
                gateway: Some("10.1.0.1".parse().unwrap()),
                interface: Some(2),
            },
            IpConfig {
                address: "fd00:10:1::5/64".parse().unwrap(),
                gateway: Some("fd00:10:1::1".parse().unwrap()),
                interface: Some(2),
            },
        ],
        routes: vec![
            Route {
                mtu: Some(1450),
                advmss: Some(1400),
                priority: Some(100),
                table: Some(100),
                scope: Some(0),
                ..Route::new(
                    "0.0.0.0/0".parse().unwrap(),
                    Some("10.1.0.1".parse().unwrap()),
                )
            },
            Route::new(
                "::/0".parse().unwrap(),
                Some("fd00:10:1::1".parse().unwrap()),
            ),
        ],
        dns: Dns {
            nameservers: vec!["10.1.0.1".into()],
            domain: Some("cluster.local".into()),
            search: vec!["svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        },
    }
}

/// host-local-like result: no interfaces, no interface index, a route without gw.
fn ipam_only() -> CniResult {
    CniResult {
        ips: vec![IpConfig {
            address: "10.1.2.2/24".parse().unwrap(),
            gateway: Some("10.1.2.1".parse().unwrap()),
            interface: None,
        }],
        routes: vec![Route::new("10.9.0.0/16".parse().unwrap(), None)],
        ..Default::default()
    }
}

fn golden_path(version: CniVersion, case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(version.as_str())
        .join(format!("{case}.json"))
}

fn check(version: CniVersion, case: &str, actual: &Value) {
    let path = golden_path(version, case);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    let expected: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(actual, &expected, "golden mismatch for {}", path.display());
}

#[test]
fn results_match_golden_files() {
    for &v in SUPPORTED {
        check(
            v,
            "bridge_dual_stack",
            &bridge_dual_stack().to_json(v).unwrap(),
        );
        check(v, "ipam_only", &ipam_only().to_json(v).unwrap());
    }
}

#[test]
fn errors_and_version_output_match_golden_files() {
    let err = CniError::new(codes::INVALID_CONFIG, "invalid network name \"a/b\"")
        .with_details("name must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$");
    for &v in SUPPORTED {
        check(v, "error", &err.to_json(v.as_str()));
        check(v, "version", &VersionInfo::for_version(Some(v)).to_json());
    }
}

#[test]
fn golden_files_read_back() {
    // Every golden result parses back, and re-serializing at its own version is stable.
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        return; // the files are being rewritten by the other tests
    }
    for &v in SUPPORTED {
        for case in ["bridge_dual_stack", "ipam_only"] {
            let text = std::fs::read_to_string(golden_path(v, case)).unwrap();
            let json: Value = serde_json::from_str(&text).unwrap();
            let model = CniResult::from_json(&json, CniVersion::V1_1_0).unwrap();
            assert_eq!(model.to_json(v).unwrap(), json, "{v} {case}");
        }
    }
}
